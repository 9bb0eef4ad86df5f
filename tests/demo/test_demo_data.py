"""Demo data: real DICOM, NIfTI and pyramidal TIFF files with the tissues and truth they promise."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import openslide
import pydicom
import pytest

from medviewer.demo.ct_phantom import CtGeometry
from medviewer.demo.generate import GROUND_TRUTH_FORMAT, generate_ct_study
from medviewer.demo.slide_phantom import SlideGeometry, write_demo_slide
from medviewer.io import open_volume

SMALL_CT = CtGeometry(shape=(24, 128, 128), pixel_mm=2.8, slice_mm=10.0)


def digest_tree(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_same_seed_gives_identical_files_and_another_seed_another_patient(tmp_path):
    truths = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        truths[name] = generate_ct_study(
            tmp_path / name / "ct", seed, 1, SMALL_CT, 2, nifti_path=tmp_path / name / "ct.nii.gz"
        )
        write_demo_slide(tmp_path / name / "slide.tiff", seed, SlideGeometry(2048, 1536, 0.5), levels=3)
    assert digest_tree(tmp_path / "a") == digest_tree(tmp_path / "b")
    assert digest_tree(tmp_path / "a") != digest_tree(tmp_path / "c")
    assert truths["a"] == truths["b"]
    assert truths["a"]["lesions"] != truths["c"]["lesions"]
    ids = {pydicom.dcmread(next((tmp_path / n / "ct").iterdir())).PatientID for n in "ac"}
    assert len(ids) == 2


def test_ct_is_a_real_dicom_series_with_hounsfield_tissues(demo_dir: Path, ground_truth: dict):
    files = sorted((demo_dir / "ct").glob("*.dcm"))
    assert len(files) == 120
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    assert {h.SOPClassUID for h in headers} == {pydicom.uid.CTImageStorage}
    assert len({h.SeriesInstanceUID for h in headers}) == 1
    assert len({h.StudyInstanceUID for h in headers}) == 1
    assert len({h.SOPInstanceUID for h in headers}) == 120
    assert headers[0].SeriesInstanceUID == ground_truth["ct"]["series_instance_uid"]
    assert all(h.Modality == "CT" and float(h.RescaleIntercept) == -1024 for h in headers)

    volume = open_volume(demo_dir / "ct")
    assert volume.shape == (120, 512, 512)
    assert volume.array.dtype == np.int16
    np.testing.assert_allclose(volume.spacing, (0.7, 0.7, 2.5))
    hu = volume.array
    assert abs(float(hu[:, :20, :20].mean()) + 1000) < 5  # air in the corners

    def share(low: float, high: float) -> float:
        return float(((hu >= low) & (hu <= high)).mean())

    assert share(-900, -800) > 0.05  # lung
    assert share(-130, -70) > 0.02  # fat
    assert share(10, 70) > 0.10  # soft tissue
    assert share(700, 3000) > 0.003  # bone


def test_ground_truth_lesions_sit_where_the_truth_says(demo_dir: Path, ground_truth: dict):
    assert ground_truth["format"] == GROUND_TRUTH_FORMAT
    volume = open_volume(demo_dir / "ct")
    lesions = ground_truth["ct"]["lesions"]
    assert len(lesions) >= 2
    for lesion in lesions:
        z, y, x = np.rint(volume.world_to_index(lesion["center_lps_mm"])).astype(int)
        core = volume.array[z, y - 2 : y + 3, x - 2 : x + 3].astype(float)
        assert abs(core.mean() - lesion["hu"]) < 15
        # Just outside the sphere, in the plane of its centre, is lung.
        outside = int(np.ceil((lesion["radius_mm"] + 3) / volume.spacing[0]))
        assert volume.array[z, y, x + outside] < -700


def test_nifti_holds_the_same_voxels_in_the_same_place(demo_dir: Path):
    dicom = open_volume(demo_dir / "ct")
    nifti = open_volume(demo_dir / "ct.nii.gz")
    np.testing.assert_array_equal(nifti.array, dicom.array)
    np.testing.assert_allclose(nifti.spacing, dicom.spacing, atol=1e-5)
    np.testing.assert_allclose(nifti.origin, dicom.origin, atol=1e-3)
    np.testing.assert_allclose(nifti.direction, dicom.direction, atol=1e-6)


def test_second_study_belongs_to_another_patient(demo_dir: Path):
    first = open_volume(demo_dir / "ct")
    second = open_volume(demo_dir / "ct2")
    assert second.shape[0] < first.shape[0]
    assert second.patient.patient_id != first.patient.patient_id
    assert second.patient.study_uid != first.patient.study_uid


def test_slide_is_a_pyramidal_tiff_openslide_reads_with_mpp(demo_dir: Path, ground_truth: dict):
    slide = openslide.OpenSlide(str(demo_dir / "slide.tiff"))
    width, height = slide.dimensions
    assert width >= 20000 and height >= 15000
    assert slide.level_count >= 3
    assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.5)
    assert ground_truth["slide"]["level0_size"] == [width, height]
    assert len(ground_truth["slide"]["tumour_regions"]) >= 1

    level = slide.level_count - 2
    downsample = slide.level_downsamples[level]
    image = np.asarray(slide.read_region((0, 0), level, slide.level_dimensions[level]).convert("RGB")).astype(float)
    from skimage.draw import polygon2mask

    tumour = np.zeros(image.shape[:2], bool)
    for region in ground_truth["slide"]["tumour_regions"]:
        poly = np.asarray(region["polygon_level0_px"]) / downsample
        tumour |= polygon2mask(image.shape[:2], poly[:, ::-1])
    brightness = image.mean(axis=2)
    tissue = brightness < 225
    assert tissue.mean() > 0.15  # there is tissue, and background around it
    assert tissue[tumour].mean() > 0.95  # tumours lie inside tissue
    # Tumour is darker (denser nuclei) than the rest of the tissue.
    assert brightness[tumour].mean() < brightness[tissue & ~tumour].mean() - 15
