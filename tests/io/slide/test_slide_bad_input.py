"""Damaged and wrong files: typed errors naming the file, and the rest of a slide stays readable."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile

from medviewer.core.errors import CorruptFileError, MedviewerError, UnsupportedFileError
from medviewer.io import classify, open_slide
from tests.support.paths import real_file
from tests.support.slides import CMU, DICOM_WSI


def _damage(source: Path, target: Path, offset: int) -> Path:
    """A copy of ``source`` with 64 bytes of zeros written at ``offset`` (the start of one tile's stream)."""
    shutil.copyfile(source, target)
    with open(target, "r+b") as handle:
        handle.seek(offset)
        handle.write(bytes(64))
    return target


def _tiff_tile_offset(path: Path, index: int) -> tuple[int, tuple[int, int]]:
    """Byte offset of tile ``index`` of the first page, and the tile's size, from tifffile's TileOffsets."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        return page.dataoffsets[index], (page.tilewidth, page.tilelength)


@pytest.mark.parametrize("source", ["cmu", "ome"])
def test_corrupt_tile_raises_naming_the_file_and_other_tiles_still_read(source: str, tmp_path: Path, ome_pyramid: Path):
    original = real_file(CMU) if source == "cmu" else ome_pyramid
    columns = -(-2220 // _tiff_tile_offset(original, 0)[1][0])
    offset, (tile_w, tile_h) = _tiff_tile_offset(original, columns + 1)  # tile (1, 1)
    damaged = _damage(original, tmp_path / f"damaged{original.suffix}", offset)
    with open_slide(damaged) as slide, open_slide(original) as intact:
        backend = slide.backend
        for _ in range(2):
            with pytest.raises(CorruptFileError) as info:
                slide.read_region((tile_w + 10, tile_h + 10), 0, (50, 50))
            assert str(damaged) in str(info.value)
        for location in [(0, 0), (3 * tile_w, 2 * tile_h), (0, 5 * tile_h)]:
            np.testing.assert_array_equal(
                slide.read_region(location, 0, (tile_w, tile_h)), intact.read_region(location, 0, (tile_w, tile_h))
            )
    assert backend == ("openslide" if source == "cmu" else "tifffile")


def test_corrupt_dicom_frame_raises_and_other_frames_still_read(tmp_path: Path):
    original = real_file(DICOM_WSI)
    with open(original, "rb") as handle:
        pydicom.dcmread(handle, stop_before_pixels=True)
        handle.seek(12, 1)  # the pixel data element's tag, VR and undefined length
        pydicom.encaps.parse_basic_offsets(handle)
        positions = pydicom.encaps.parse_fragments(handle)[1]
    damaged = _damage(original, tmp_path / "damaged.dcm", positions[8] + 8)  # frame 9: tile (1, 1)
    with open_slide(damaged) as slide, open_slide(original) as intact:
        with pytest.raises(CorruptFileError, match="frame 9") as info:
            slide.read_region((600, 600), 0, (10, 10))
        assert str(damaged) in str(info.value)
        np.testing.assert_array_equal(
            slide.read_region((0, 0), 0, (500, 500)), intact.read_region((0, 0), 0, (500, 500))
        )


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.svs", b"Patient history: none\n" * 10),
        ("photo.tif", b"\x89PNG\r\n\x1a\n" + bytes(100)),
        ("garbage.tiff", b"II*\x00" + bytes(range(256)) * 4),
    ],
)
def test_a_file_that_is_not_a_slide_gets_a_typed_error_naming_it(tmp_path: Path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MedviewerError) as info:
        classify(path)
        open_slide(path)
    assert isinstance(info.value, UnsupportedFileError)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("source", ["cmu", "dicom", "ome"])
def test_truncated_slides_give_typed_errors(source: str, tmp_path: Path, ome_pyramid: Path):
    original = {"cmu": real_file(CMU), "dicom": real_file(DICOM_WSI), "ome": ome_pyramid}[source]
    truncated = tmp_path / f"truncated{original.suffix}"
    truncated.write_bytes(original.read_bytes()[: original.stat().st_size // 2])
    with pytest.raises(MedviewerError) as info:
        with open_slide(truncated) as slide:
            slide.read_region((0, 0), slide.level_count - 1, slide.level_dimensions[-1])
    assert isinstance(info.value, (CorruptFileError, UnsupportedFileError))
    assert str(truncated) in str(info.value)


def test_a_dicom_image_that_is_not_a_slide_is_refused_as_a_slide():
    from tests.support.paths import pydicom_file

    path = pydicom_file("CT_small.dcm")
    with pytest.raises(UnsupportedFileError, match="not a DICOM whole-slide microscopy image") as info:
        open_slide(path)
    assert str(path) in str(info.value)
