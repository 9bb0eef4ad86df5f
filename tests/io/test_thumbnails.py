"""Patient-panel thumbnails: what they show, and that the disk cache is reused, renewed and never in the way."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels import pixel_array

from medviewer.core.display import apply_window, shrink_to_fit
from medviewer.core.errors import CorruptFileError, PathNotFoundError, UnsupportedFileError
from medviewer.core.volume import Volume
from medviewer.io import list_series, open_volume, thumbnails
from medviewer.io.preview import ICON_SIZE
from medviewer.io.thumbnails import ThumbnailCache
from tests.support.paths import pydicom_file, real_file

SLIDE = "wsi/CMU-1-Small-Region.svs"  # 2220 x 2967


def _plane_of(volume: Volume, header: Dataset) -> np.ndarray:
    """The volume's voxels at the pixel centres of the file ``header`` describes.

    ``open_volume`` turns a volume so its axes run nearest to the patient's, which puts a sagittal
    file's image in a column of the array: voxels are matched through positions, not array indices.
    The image must be the volume's middle slice along one axis.
    """
    rows, columns = int(header.Rows), int(header.Columns)
    row_step, column_step = (float(step) for step in header.PixelSpacing)
    cosines = np.asarray(header.ImageOrientationPatient, dtype=float)
    row, column = np.mgrid[0:rows, 0:columns]
    world = (
        np.asarray(header.ImagePositionPatient, dtype=float)
        + column[..., None] * column_step * cosines[:3]
        + row[..., None] * row_step * cosines[3:]
    )
    index = np.rint(volume.world_to_index(world.reshape(-1, 3))).astype(int)
    constant = [axis for axis in range(3) if np.all(index[:, axis] == index[0, axis])]
    assert len(constant) == 1 and index[0, constant[0]] == volume.shape[constant[0]] // 2
    return volume.array[tuple(index.T)].reshape(rows, columns)


def _single_file_series(tmp_path: Path) -> list[Path]:
    """A copy, so tests may touch and edit it: one 384 x 384 MR slice with its own window."""
    folder = tmp_path / "series"
    folder.mkdir()
    return [Path(shutil.copy(real_file("dcm_qa_ts/1.dcm"), folder / "1.dcm"))]


def _refuse_decoding(*args: object, **kwargs: object) -> None:
    raise AssertionError("the thumbnail was decoded again instead of read from the cache")


def test_series_thumbnail_is_the_volumes_middle_slice_in_the_middle_files_window(xa30i_dir: Path, tmp_path: Path):
    files = list_series(xa30i_dir)[0].files  # 96 sagittal slices of 128 x 128, in slice order
    middle = pydicom.dcmread(files[len(files) // 2], stop_before_pixels=True)
    thumbnail = ThumbnailCache(tmp_path / "cache").series_thumbnail(files)
    # the scanner windows every slice on its own; the volume carries the first slice's window (7, 15)
    assert (float(middle.WindowCenter), float(middle.WindowWidth)) == (625, 1309)
    plane = _plane_of(open_volume(xa30i_dir), middle)
    expected = shrink_to_fit(apply_window(plane, 1309, 625), ICON_SIZE)
    assert thumbnail.dtype == np.uint8 and thumbnail.shape == expected.shape == (64, 64)
    centre = np.s_[16:48, 16:48]
    assert np.abs(thumbnail[centre].astype(int) - expected[centre]).mean() < 1
    assert thumbnail[centre].std() > 20  # a real image, not a flat grey square


def test_enhanced_multiframe_file_shows_its_middle_frame_in_that_frames_own_window(tmp_path: Path):
    folder = real_file("dcm_qa_enh/Siemens_XA10")
    files = sorted(folder.glob("*.dcm"))  # 4 files (time points) of 6 frames: the middle is 6_3, frame 3
    thumbnail = ThumbnailCache(tmp_path / "cache").series_thumbnail(files)
    frame = open_volume(folder, time_index=2).array[3]
    voi = pydicom.dcmread(files[2]).PerFrameFunctionalGroupsSequence[3].FrameVOILUTSequence[0]
    np.testing.assert_array_equal(thumbnail, apply_window(frame, float(voi.WindowWidth), float(voi.WindowCenter)))


def test_monochrome1_is_rescaled_then_inverted(tmp_path: Path):
    path = pydicom_file("dicomdirtests/77654033/CR1/6154")  # slope 0.684, intercept 200, window 1600 / 2800
    thumbnail = ThumbnailCache(tmp_path / "cache").series_thumbnail([path])
    volume = open_volume(path)
    np.testing.assert_array_equal(thumbnail, apply_window(volume.array[0], 2800, 1600, invert=True))


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        (pydicom_file("examples_ybr_color.dcm"), (60, 80, 3)),  # 30 JPEG frames of 320 x 240 in YBR
        (real_file("wsi/pathml_small_dicom.dcm"), (84, 84, 3)),  # 42 JPEG frames of 500 x 500 in RGB
    ],
)
def test_colour_multiframe_file_shows_its_middle_frame_in_rgb(path: Path, shape: tuple[int, int, int], tmp_path: Path):
    frames = int(pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames)
    thumbnail = ThumbnailCache(tmp_path / "cache").series_thumbnail([path])
    expected = shrink_to_fit(pixel_array(path, index=frames // 2), ICON_SIZE)
    assert thumbnail.shape == expected.shape == shape
    np.testing.assert_array_equal(thumbnail, expected)
    assert np.abs(thumbnail[..., 0].astype(int) - thumbnail[..., 2]).max() > 20  # colour, not grey


def test_second_call_reads_the_cache_without_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    files = _single_file_series(tmp_path)
    first = ThumbnailCache(tmp_path / "cache").series_thumbnail(files)
    assert first.shape == (96, 96)
    monkeypatch.setattr(thumbnails, "read_pixels", _refuse_decoding)
    monkeypatch.setattr(thumbnails.DicomFile, "read", _refuse_decoding)
    again = ThumbnailCache(tmp_path / "cache").series_thumbnail(files)  # a new session, the same folder
    np.testing.assert_array_equal(again, first)


def test_default_folder_is_under_the_data_folder(tmp_path: Path, medviewer_home: Path):
    ThumbnailCache().series_thumbnail(_single_file_series(tmp_path))
    assert len(list((medviewer_home / "data" / "thumbnails").glob("*.png"))) == 1


def test_touched_file_is_decoded_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    files = _single_file_series(tmp_path)
    cache = ThumbnailCache(tmp_path / "cache")
    decodes: list[Path] = []
    decode = thumbnails.read_pixels

    def counted(records: list, path: Path) -> object:
        decodes.append(path)
        return decode(records, path)

    monkeypatch.setattr(thumbnails, "read_pixels", counted)
    cache.series_thumbnail(files)
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    cache.series_thumbnail(files)
    assert len(decodes) == 2
    assert len(list((tmp_path / "cache").glob("*.png"))) == 2


def test_edited_file_shows_its_new_content(tmp_path: Path):
    files = _single_file_series(tmp_path)
    cache = ThumbnailCache(tmp_path / "cache")
    before = cache.series_thumbnail(files)
    dataset = pydicom.dcmread(files[0])
    dataset.WindowWidth = 400  # from 1639: far more contrast
    dataset.save_as(files[0])
    after = cache.series_thumbnail(files)
    assert not np.array_equal(after, before)
    np.testing.assert_array_equal(after, ThumbnailCache(tmp_path / "fresh").series_thumbnail(files))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_cache_file_is_replaced(damage: str, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    files = _single_file_series(tmp_path)
    cache = ThumbnailCache(tmp_path / "cache")
    first = cache.series_thumbnail(files)
    (entry,) = (tmp_path / "cache").glob("*.png")
    content = entry.read_bytes()
    entry.write_bytes(
        {"truncated": content[: len(content) // 2], "garbage": b"\x89PNG not really", "empty": b""}[damage]
    )
    with caplog.at_level(logging.WARNING, logger="medviewer.io.thumbnails"):
        np.testing.assert_array_equal(cache.series_thumbnail(files), first)
    assert "damaged thumbnail" in caplog.text and "1.dcm" not in caplog.text
    assert entry.read_bytes() != b"" and list((tmp_path / "cache").iterdir()) == [entry]  # replaced, no leftovers
    np.testing.assert_array_equal(ThumbnailCache(tmp_path / "cache").series_thumbnail(files), first)


def test_damaged_cache_file_is_deleted_even_when_the_thumbnail_cannot_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    files = _single_file_series(tmp_path)
    cache = ThumbnailCache(tmp_path / "cache")
    cache.series_thumbnail(files)
    (entry,) = (tmp_path / "cache").glob("*.png")
    entry.write_bytes(b"garbage")

    def unreadable(records: list, path: Path) -> None:
        raise CorruptFileError(path, "the pixel data cannot be decoded")

    monkeypatch.setattr(thumbnails, "read_pixels", unreadable)
    with pytest.raises(CorruptFileError):
        cache.series_thumbnail(files)
    assert not entry.exists()  # not reported as damaged again on every start


def test_cache_folder_that_cannot_be_written_still_gives_thumbnails(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    # as root (in containers) a chmod-ed folder stays writable; a folder under a file cannot be made by anyone
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder's parent should be")
    files = _single_file_series(tmp_path)
    cache = ThumbnailCache(blocker / "thumbnails")
    with caplog.at_level(logging.WARNING, logger="medviewer.io.thumbnails"):
        series = cache.series_thumbnail(files)
        slide = cache.slide_thumbnail(real_file(SLIDE))
    np.testing.assert_array_equal(series, ThumbnailCache(tmp_path / "writable").series_thumbnail(files))
    assert slide.shape[2] == 3
    assert len([r for r in caplog.records if "cannot be written" in r.getMessage()]) == 1  # once, not per thumbnail
    assert blocker.is_file()


def test_slide_thumbnail_is_rgb_with_its_long_side_icon_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cache = ThumbnailCache(tmp_path / "cache")
    thumbnail = cache.slide_thumbnail(real_file(SLIDE))
    assert thumbnail.dtype == np.uint8 and thumbnail.ndim == 3 and thumbnail.shape[2] == 3
    assert thumbnail.shape[0] == ICON_SIZE and abs(thumbnail.shape[1] - ICON_SIZE * 2220 / 2967) <= 1
    assert thumbnail.std() > 10  # tissue on a light background, not a blank image
    monkeypatch.setattr(thumbnails, "open_slide", _refuse_decoding)
    np.testing.assert_array_equal(cache.slide_thumbnail(real_file(SLIDE)), thumbnail)


def test_files_that_cannot_be_read_raise_errors_naming_them(tmp_path: Path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    cache = ThumbnailCache(tmp_path / "cache")
    with pytest.raises(UnsupportedFileError) as series_error:
        cache.series_thumbnail([notes])
    with pytest.raises(UnsupportedFileError) as slide_error:
        cache.slide_thumbnail(notes)
    missing = tmp_path / "gone.dcm"
    with pytest.raises(PathNotFoundError) as missing_error:
        cache.series_thumbnail([missing])
    for error, path in ((series_error, notes), (slide_error, notes), (missing_error, missing)):
        assert error.value.path == path and str(path) in str(error.value)
    assert not list((tmp_path / "cache").glob("*"))  # failures are not cached


def test_a_series_without_files_is_a_programming_error(tmp_path: Path):
    with pytest.raises(ValueError):
        ThumbnailCache(tmp_path / "cache").series_thumbnail([])
