"""``medviewer demo-data DIR --eval-set N``: held-out labelled images for the demo models.

``DIR/eval/ct_slices.csv`` lists single-slice DICOM files (axial slices of fresh chest phantoms) and
``DIR/eval/patches.csv`` PNG patches (cut from fresh synthetic slides at the demo patch model's 2 µm per
pixel, 64 x 64), both with the columns ``path,label`` that ``medviewer evaluate`` reads. Labels come from the
same rules the demo models were trained with (``ct_truth``, ``patch_truth``), half of each set per class.

The phantoms and slides use seeds no training run uses, so the sets are held out from both models whatever
``--seed`` is given. ``eval/provenance.json`` says where each image came from (phantom seed and slice with
its lesions, or slide seed, level-0 box and tumour fraction), so a wrong label can be traced.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.core.patient import PatientInfo
from medviewer.demo.ct_phantom import CtGeometry, make_chest_phantom
from medviewer.demo.ct_truth import LESION, NORMAL, slice_truth
from medviewer.demo.dicom_writer import SeriesIdentity, ct_slice_dataset, deterministic_uid
from medviewer.demo.patch_truth import PATCH_MPP, PATCH_PIXELS, TUMOUR, patch_labels, tumour_fraction
from medviewer.demo.slide_phantom import SlideGeometry, write_demo_slide

#: Seed streams of the held-out phantoms and slides: disjoint from the demo set's own seeds and from the seeds
#: the demo models' training scripts use.
CT_STREAM = 7_000_003
SLIDE_SEED_BASE = 7_000_000
EVAL_SLIDE = SlideGeometry(width=10240, height=8192, mpp=0.5)
#: Normal slices drawn per phantom, so normal slices come from many phantoms rather than a few.
NORMALS_PER_PHANTOM = 2
#: Stops a request that cannot be met (the rules leave too few images) from running for ever.
MAX_SOURCES = 2000


def write_eval_sets(out: Path, count: int, seed: int) -> dict[str, Any]:
    """Write ``count`` labelled CT slices and ``count`` labelled patches under ``out``/eval."""
    if count < 2:
        raise ValueError(f"an evaluation set needs at least 2 images (one per class), not {count}")
    folder = out / "eval"
    folder.mkdir(parents=True, exist_ok=True)
    ct_rows, ct_sources = _ct_slices(folder, count, seed)
    patch_rows, patch_sources = _patches(folder, count, seed)
    _write_csv(folder / "ct_slices.csv", ct_rows)
    _write_csv(folder / "patches.csv", patch_rows)
    provenance = {"seed": seed, "ct_slices": ct_sources, "patches": patch_sources}
    (folder / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return provenance


def _wanted(count: int) -> dict[int, int]:
    """Images per label (1: the abnormal class, 0: normal); an odd count gives normal the extra one."""
    return {1: count // 2, 0: count - count // 2}


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)


# CT slices ----------------------------------------------------------------------------------------------------


def _ct_geometry(index: int) -> CtGeometry:
    """The two demo CTs' geometries: every fourth phantom at the main CT's (0.7 mm pixels, 2.5 mm slices, slow
    to make), the others at the second CT's (1.4 mm, 5 mm)."""
    from medviewer.demo.generate import MAIN_CT, SECOND_CT

    return MAIN_CT if index % 4 == 0 else SECOND_CT


def _ct_identity(seed: int) -> SeriesIdentity:
    patient = PatientInfo(
        patient_id=f"MV-EVAL-{seed:05d}",
        name="EVAL^PHANTOM",
        birth_date="19700101",
        study_uid=deterministic_uid("medviewer-eval", seed, "study"),
        study_date="20240101",
        study_description="CT CHEST (synthetic evaluation slices)",
    )
    return SeriesIdentity(
        patient=patient,
        series_uid="",
        frame_of_reference_uid=deterministic_uid("medviewer-eval", seed, "frame"),
        accession=f"EVAL{seed:05d}",
        series_description="Evaluation slice",
    )


def _ct_slices(folder: Path, count: int, seed: int) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """Single-slice DICOM files, one series each, so each file opens as an image of its own."""
    wanted = _wanted(count)
    names = {LESION: "lesion", NORMAL: "normal"}
    identity = _ct_identity(seed)
    (folder / "ct_slices").mkdir(exist_ok=True)
    rows: list[tuple[str, str]] = []
    sources: list[dict[str, Any]] = []
    index = 0
    while wanted[LESION] or wanted[NORMAL]:
        index += 1
        if index > MAX_SOURCES:
            raise RuntimeError(f"{MAX_SOURCES} phantoms gave too few labelled slices")
        rng = np.random.default_rng([CT_STREAM, seed, index])
        geometry = _ct_geometry(index)
        hu, lesions = make_chest_phantom(rng, geometry, 3)
        labels = [slice_truth(geometry, lesions, k, hu[k])[0] for k in range(geometry.shape[0])]
        lesion_slices = [k for k, label in enumerate(labels) if label == LESION]
        normal_slices = [k for k, label in enumerate(labels) if label == NORMAL]
        chosen = list(rng.permutation(lesion_slices)[: wanted[LESION]])
        chosen += list(rng.permutation(normal_slices)[: min(wanted[NORMAL], NORMALS_PER_PHANTOM)])
        for k in sorted(int(k) for k in chosen):
            label = labels[k]
            wanted[label] -= 1
            number = len(rows) + 1
            series = replace(identity, series_uid=deterministic_uid("medviewer-eval", seed, "series", number))
            name = f"ct_slices/s{number:04d}.dcm"
            ct_slice_dataset(hu[k], geometry, k, series, 1).save_as(folder / name, enforce_file_format=True)
            rows.append((name, names[label]))
            sources.append(
                {
                    "path": name,
                    "label": names[label],
                    "phantom": [CT_STREAM, seed, index],
                    "slice_index": k,
                    "slice_z_mm": round(geometry.slice_z(k), 3),
                    "lesions": [
                        {"center_lps_mm": [round(c, 3) for c in lesion.center_lps_mm], "radius_mm": lesion.radius_mm}
                        for lesion in lesions
                    ],
                }
            )
    return rows, sources


# Slide patches ------------------------------------------------------------------------------------------------


def _patch_spec() -> Any:
    """A grid spec at the demo patch model's pixel size and shape: the grid a slide run would cut."""
    from medviewer.ai.package import ModelSpec

    return ModelSpec(
        target="slide_patch",
        shape=(PATCH_PIXELS, PATCH_PIXELS),
        channels=3,
        spacing_mm=None,
        mpp=PATCH_MPP,
        intensity=None,
        activation="softmax",
        classes=("normal", "tumour"),
        explain=None,
        diagnostic_use=False,
    )


def _patches(folder: Path, count: int, seed: int) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """PNG patches of fresh slides, as a slide run reads them; each slide is deleted once cut."""
    from PIL import Image

    from medviewer.ai.slide_run import patch_grid, patch_pixels
    from medviewer.io import open_slide

    wanted = _wanted(count)
    names = {TUMOUR: "tumour", 0: "normal"}
    spec = _patch_spec()
    (folder / "patches").mkdir(exist_ok=True)
    rows: list[tuple[str, str]] = []
    sources: list[dict[str, Any]] = []
    index = 0
    while wanted[TUMOUR] or wanted[0]:
        index += 1
        if index > MAX_SOURCES:
            raise RuntimeError(f"{MAX_SOURCES} slides gave too few labelled patches")
        slide_seed = SLIDE_SEED_BASE + seed * 1000 + index
        path = folder / f"eval-slide-{index}.tiff"
        polygons = write_demo_slide(path, slide_seed, EVAL_SLIDE, tumour_count=2, levels=3)
        try:
            with open_slide(path) as slide:
                grid = patch_grid(slide, spec)
                fraction = tumour_fraction(polygons, grid.origin, grid.patch_size_level0, grid.rows, grid.columns)
                labels = patch_labels(fraction)
                rng = np.random.default_rng([SLIDE_SEED_BASE, seed, index])
                cells = grid.tissue_cells()
                tumour = [cell for cell in cells if labels[cell] == TUMOUR]
                normal = [cell for cell in cells if labels[cell] == 0]
                # Normal patches spread over several slides, as tumour patches are.
                take_normal = min(wanted[0], max(1, len(tumour)), len(normal))
                chosen = [tumour[i] for i in rng.permutation(len(tumour))[: wanted[TUMOUR]]]
                chosen += [normal[i] for i in rng.permutation(len(normal))[:take_normal]]
                for row, column in sorted(chosen):
                    label = int(labels[row, column])
                    wanted[label] -= 1
                    name = f"patches/p{len(rows) + 1:04d}.png"
                    Image.fromarray(patch_pixels(slide, grid, row, column)).save(folder / name)
                    rows.append((name, names[label]))
                    sources.append(
                        {
                            "path": name,
                            "label": names[label],
                            "slide_seed": slide_seed,
                            "box_level0": [round(v, 3) for v in grid.box(row, column)],
                            "tumour_fraction": round(float(fraction[row, column]), 4),
                        }
                    )
        finally:
            path.unlink(missing_ok=True)
    return rows, sources
