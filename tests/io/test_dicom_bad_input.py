"""Damaged and hostile DICOM input: a typed error that names the file, quickly, and never a crash."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from medviewer.core.errors import CorruptFileError, MedviewerError, UnsupportedFileError
from medviewer.io import list_series, open_volume
from tests.support.paths import pydicom_file


@pytest.fixture(autouse=True)
def within_ten_seconds() -> Iterator[None]:
    start = time.monotonic()
    yield
    assert time.monotonic() - start < 10


def test_a_file_truncated_in_its_pixel_data_is_a_corrupt_file_error_naming_it(tmp_path: Path):
    data = pydicom_file("CT_small.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) - 5000])
    with pytest.raises(CorruptFileError) as caught:
        open_volume(path)
    assert caught.value.path == path and str(path) in str(caught.value)
    assert "truncated" in caught.value.reason


def test_a_file_truncated_in_its_header_is_a_typed_error_naming_it(tmp_path: Path):
    data = pydicom_file("CT_small.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:700])
    with pytest.raises(MedviewerError) as caught:
        open_volume(path)
    assert caught.value.path == path


def test_non_dicom_files_in_a_series_folder_are_skipped_and_counted(xa30i_dir: Path, tmp_path: Path):
    folder = tmp_path / "series"
    shutil.copytree(xa30i_dir, folder)
    (folder / "notes.txt").write_text("scanned on the old machine\n")
    (folder / "renamed.dcm").write_text("this is text renamed to .dcm\n")
    volume = open_volume(folder)
    assert volume.shape == (128, 128, 96)
    assert volume.warnings == ["2 file(s) are not DICOM images; they were skipped"]


def test_declared_sizes_beyond_memory_are_refused_before_allocating(tmp_path: Path):
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.Rows = ds.Columns = 65535
    ds.NumberOfFrames = 1_000_000  # 8 PB declared, a few kB on disk
    path = tmp_path / "huge.dcm"
    ds.save_as(path)
    with pytest.raises(UnsupportedFileError) as caught:
        open_volume(path)
    assert caught.value.path == path
    assert "65535 x 65535 pixels x 1000000 frames" in caught.value.reason
    assert "GiB of memory" in caught.value.reason
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.move(path, folder / "huge.dcm")
    with pytest.raises(UnsupportedFileError) as caught:
        list_series(folder)
    assert caught.value.path == folder / "huge.dcm"


def _shorten_pixel_data(source: Path, target: Path) -> None:
    ds = pydicom.dcmread(source)
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    ds.save_as(target)


def test_pixel_data_shorter_than_declared_is_a_corrupt_file_error_naming_it(tmp_path: Path):
    path = tmp_path / "short.dcm"
    _shorten_pixel_data(pydicom_file("CT_small.dcm"), path)
    with pytest.raises(CorruptFileError) as caught:
        open_volume(path)
    assert caught.value.path == path
    assert caught.value.reason == "the pixel data holds 16384 bytes, but the header declares 32768"


def test_a_short_file_inside_a_series_fails_the_series_naming_that_file(xa30i_dir: Path, tmp_path: Path):
    folder = tmp_path / "series"
    shutil.copytree(xa30i_dir, folder)
    damaged = sorted(folder.iterdir())[50]
    _shorten_pixel_data(damaged, damaged)
    assert list_series(folder)[0].slices == 96  # the headers are fine
    with pytest.raises(CorruptFileError) as caught:
        open_volume(folder)
    assert caught.value.path == damaged


def test_compressed_pixel_data_that_cannot_be_decoded_is_a_corrupt_file_error(tmp_path: Path):
    ds = pydicom.dcmread(pydicom_file("MR_small_RLE.dcm"))
    ds.PixelData = ds.PixelData[:200] + bytes(200)
    path = tmp_path / "broken_rle.dcm"
    ds.save_as(path)
    with pytest.raises(CorruptFileError) as caught:
        open_volume(path)
    assert caught.value.path == path and "cannot be decoded" in caught.value.reason
