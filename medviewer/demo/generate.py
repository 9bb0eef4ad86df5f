"""``medviewer demo-data DIR``: two demo patients' CT studies, the CT as NIfTI, a slide, and the truth."""

from __future__ import annotations

import datetime
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.core.patient import PatientInfo
from medviewer.demo.ct_phantom import CtGeometry, make_chest_phantom
from medviewer.demo.dicom_writer import SeriesIdentity, deterministic_uid, write_ct_series, write_nifti
from medviewer.demo.slide_phantom import SlideGeometry, write_demo_slide

GROUND_TRUTH_FORMAT = "medviewer-demo-ground-truth"
GROUND_TRUTH_VERSION = 1
GIVEN_NAMES = ("ADA", "BORIS", "CLARA", "DMITRI", "ELENA", "FARID", "GRETA", "HUGO", "IRIS", "JONAS")
MAIN_CT = CtGeometry(shape=(120, 512, 512), pixel_mm=0.7, slice_mm=2.5)
SECOND_CT = CtGeometry(shape=(48, 256, 256), pixel_mm=1.4, slice_mm=5.0)
DEMO_SLIDE = SlideGeometry(width=20480, height=15360, mpp=0.5)


def _demo_patient(seed: int, index: int, rng: np.random.Generator) -> PatientInfo:
    given = GIVEN_NAMES[(seed + index * 3) % len(GIVEN_NAMES)]
    study_day = datetime.date(2024, 1, 1) + datetime.timedelta(days=int(rng.integers(0, 700)))
    birth = datetime.date(1940, 1, 1) + datetime.timedelta(days=int(rng.integers(0, 40 * 365)))
    return PatientInfo(
        patient_id=f"MV-{seed:05d}-{index}",
        name=f"DEMO^{given}",
        birth_date=birth.strftime("%Y%m%d"),
        study_uid=deterministic_uid("medviewer-demo", seed, index, "study"),
        study_date=study_day.strftime("%Y%m%d"),
        study_description="CT CHEST (synthetic demo)",
    )


def generate_ct_study(
    folder: Path,
    seed: int,
    index: int,
    geometry: CtGeometry,
    lesion_count: int,
    patient: PatientInfo | None = None,
    nifti_path: Path | None = None,
) -> dict[str, Any]:
    """Write one patient's CT series (and optionally its NIfTI); returns its ground-truth entry."""
    rng = np.random.default_rng([seed, index])
    patient = patient or _demo_patient(seed, index, rng)
    identity = SeriesIdentity(
        patient=patient,
        series_uid=deterministic_uid("medviewer-demo", seed, index, "series"),
        frame_of_reference_uid=deterministic_uid("medviewer-demo", seed, index, "frame"),
        accession=f"ACC{seed:05d}{index}",
        series_description="Chest phantom 2.5 mm" if geometry.slice_mm < 4 else "Chest phantom 5 mm",
    )
    hu, lesions = make_chest_phantom(rng, geometry, lesion_count)
    write_ct_series(folder, hu, geometry, identity)
    if nifti_path is not None:
        write_nifti(nifti_path, hu, geometry)
    return {
        "folder": folder.name,
        "series_instance_uid": identity.series_uid,
        "size_xyz": [geometry.shape[2], geometry.shape[1], geometry.shape[0]],
        "spacing_mm": [geometry.pixel_mm, geometry.pixel_mm, geometry.slice_mm],
        "lesions": [
            {
                "center_lps_mm": [round(c, 3) for c in lesion.center_lps_mm],
                "radius_mm": lesion.radius_mm,
                "hu": lesion.hu,
            }
            for lesion in lesions
        ],
    }


def generate_demo_data(out: Path, seed: int = 0) -> dict[str, Any]:
    """Write the whole demo set into ``out`` and return the ground truth that was saved with it."""
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    rng = np.random.default_rng([seed, 99])
    lesion_count = int(rng.integers(2, 5))
    ct = generate_ct_study(out / "ct", seed, 1, MAIN_CT, lesion_count, nifti_path=out / "ct.nii.gz")
    ct["nifti"] = "ct.nii.gz"
    ct2 = generate_ct_study(out / "ct2", seed, 2, SECOND_CT, 1)
    tumours = write_demo_slide(out / "slide.tiff", seed, DEMO_SLIDE)
    truth = {
        "format": GROUND_TRUTH_FORMAT,
        "version": GROUND_TRUTH_VERSION,
        "seed": seed,
        "ct": ct,
        "ct2": ct2,
        "slide": {
            "file": "slide.tiff",
            "mpp": DEMO_SLIDE.mpp,
            "level0_size": [DEMO_SLIDE.width, DEMO_SLIDE.height],
            "tumour_regions": [{"polygon_level0_px": poly.tolist()} for poly in tumours],
        },
    }
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    truth["seconds"] = round(time.perf_counter() - started, 1)
    return truth
