"""list_series and series choice in a folder holding several series; the pixel offset the scan keeps."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom

from medviewer.io import SeriesInfo, list_series, open_volume
from medviewer.io.dicom_series import DicomFile
from tests.support.paths import pydicom_file, real_file


def test_a_folder_of_two_series_lists_both_and_opens_either(ct2_dir: Path, tmp_path: Path):
    folder = tmp_path / "study"
    shutil.copytree(real_file("dcm_qa_stc/2_epiRT_ascending"), folder / "epi")
    shutil.copytree(ct2_dir, folder / "ct")
    epi, ct = list_series(folder)
    assert isinstance(epi, SeriesInfo)
    assert (epi.modality, epi.orientation, epi.slices, epi.frames, epi.time_points) == ("MR", "axial", 8, 24, 3)
    assert (epi.rows, epi.columns, len(epi.files), epi.key) == (64, 64, 24, epi.series_uid)
    assert epi.label == "epiRT ascending: axial 8 slices, 3 time points"
    assert (ct.modality, ct.slices, ct.rows, ct.columns, ct.time_points) == ("CT", 4, 16, 16, 1)
    assert {f.name for f in ct.files} == {"17106", "17136", "17166", "17196"}
    largest = open_volume(folder)
    assert largest.shape == (8, 64, 64)
    assert "the folder holds 2 series; showing the largest" in largest.warnings
    chosen = open_volume(folder, series_uid=ct.series_uid)
    assert chosen.modality == "CT" and chosen.shape == (165, 16, 16)
    assert chosen.metadata["series_uid"] == ct.series_uid


def test_the_scan_keeps_where_pixel_data_starts(tmp_path: Path):
    """pydicom leaves the file at the PixelData tag after stop_before_pixels; the fast path relies on it."""
    for path in (real_file("dcm_qa_ts/1.dcm"), real_file("dcm_qa_ts/2.dcm"), pydicom_file("CT_small.dcm")):
        dicom_file = DicomFile.read(path)
        with open(path, "rb") as handle:
            handle.seek(dicom_file.pixel_offset)
            assert handle.read(4) == b"\xe0\x7f\x10\x00"
        assert "PixelData" not in dicom_file.header
        assert pydicom.dcmread(path).PixelData  # the file does hold pixels after that offset
