"""Files OpenSlide refuses or under-reads open through tifffile or pydicom, with the same Slide API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pydicom
import pytest
import tifffile

from medviewer.io import ImageKind, classify, describe, open_slide
from tests.support.paths import real_file
from tests.support.slides import DICOM_WSI, regions_inside_and_across_edges


def test_openslide_reads_only_the_first_level_of_the_ome_pyramid(ome_pyramid: Path):
    with openslide.OpenSlide(str(ome_pyramid)) as reference:
        assert reference.level_count == 1
    with tifffile.TiffFile(ome_pyramid) as tif:
        assert len(tif.series[0].levels) == 3


def test_ome_pyramid_opens_with_its_subifd_levels_and_physical_size(ome_pyramid: Path):
    with open_slide(ome_pyramid) as slide:
        assert slide.backend == "tifffile" and slide.vendor == "ome-tiff"
        assert slide.level_dimensions == ((2220, 2967), (1110, 1484), (555, 742))
        assert slide.mpp == pytest.approx(0.499)
        assert slide.associated_image_names == []
        assert classify(ome_pyramid) is ImageKind.SLIDE


@pytest.mark.parametrize("fixture", ["ome_pyramid", "strip_tiff"])
def test_regions_equal_tifffiles_level_arrays(fixture: str, request: pytest.FixtureRequest):
    path: Path = request.getfixturevalue(fixture)
    with open_slide(path) as slide, tifffile.TiffFile(path) as tif:
        for level, downsample in enumerate(slide.level_downsamples):
            expected = tif.series[0].levels[level].asarray()
            height, width = expected.shape[:2]
            for location, (w, h) in regions_inside_and_across_edges(*slide.dimensions, downsample):
                corner = (int(location[0] // downsample), int(location[1] // downsample))
                got = slide.read_region(location, level, (w, h))
                np.testing.assert_array_equal(got, _cut(expected, corner, (w, h)))


def _cut(level: np.ndarray, corner: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """The RGBA region of a level's RGB array at a level-pixel corner: opaque inside, transparent zeros outside."""
    (x0, y0), (w, h) = corner, size
    rgba = np.concatenate([level, np.full((*level.shape[:2], 1), 255, np.uint8)], axis=2)
    padded = np.zeros((level.shape[0] + 2 * h, level.shape[1] + 2 * w, 4), np.uint8)
    padded[h : h + level.shape[0], w : w + level.shape[1]] = rgba
    x, y = min(max(x0 + w, 0), padded.shape[1] - w), min(max(y0 + h, 0), padded.shape[0] - h)
    if (x, y) != (x0 + w, y0 + h):  # wholly outside, beyond the padding
        return np.zeros((h, w, 4), np.uint8)
    return padded[y : y + h, x : x + w]


def test_openslide_refuses_the_strip_tiff_which_opens_with_its_inch_resolution(strip_tiff: Path):
    with pytest.raises(openslide.OpenSlideUnsupportedFormatError):
        openslide.OpenSlide(str(strip_tiff))
    with open_slide(strip_tiff) as slide:
        assert slide.backend == "tifffile" and slide.vendor == "generic-tiff"
        assert slide.mpp == pytest.approx(0.5)
        assert slide.level_count == 1 and slide.warnings == []
    assert describe(strip_tiff)["backend"] == "tifffile"


@pytest.mark.parametrize("dpi", [1, 72, 254])
def test_a_resolution_no_scanner_gives_is_no_pixel_size_and_says_so(tmp_path: Path, cmu_pixels: np.ndarray, dpi: int):
    """1 dot per inch (a damaged SVS read through its TIFF tags: 25400 um), a screen's 72 dpi, 254 dpi: none
    is a microscope's pixel, so no measurement may use it."""
    import tifffile

    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, cmu_pixels[:200, :200], photometric="rgb", resolution=(dpi, dpi), resolutionunit="INCH")
    with open_slide(path) as slide:
        assert slide.mpp is None
        assert f"({25400 / dpi:g} µm per pixel) is not one a slide scanner gives" in slide.warnings[0]


def test_openslide_refuses_the_single_dicom_wsi_instance():
    path = real_file(DICOM_WSI)
    assert openslide.OpenSlide.detect_format(str(path)) == "dicom"
    with pytest.raises(openslide.OpenSlideError, match="image flavor"):
        openslide.OpenSlide(str(path))


def _dicom_mosaic(path: Path) -> np.ndarray:
    """The instance's frames decoded by pydicom, placed row-major as TILED_FULL says, cut to the matrix."""
    dataset = pydicom.dcmread(path)
    frames = dataset.pixel_array
    columns = -(-dataset.TotalPixelMatrixColumns // dataset.Columns)
    rows = -(-dataset.TotalPixelMatrixRows // dataset.Rows)
    assert frames.shape[0] == columns * rows
    mosaic = frames.reshape(rows, columns, dataset.Rows, dataset.Columns, 3).transpose(0, 2, 1, 3, 4)
    mosaic = mosaic.reshape(rows * dataset.Rows, columns * dataset.Columns, 3)
    return mosaic[: dataset.TotalPixelMatrixRows, : dataset.TotalPixelMatrixColumns]


@pytest.mark.slow
def test_dicom_wsi_regions_equal_pydicoms_frames_at_their_tile_positions():
    path = real_file(DICOM_WSI)
    assert classify(path) is ImageKind.SLIDE
    expected = _dicom_mosaic(path)
    with open_slide(path) as slide:
        assert slide.backend == "pydicom" and slide.vendor == "dicom"
        assert slide.dimensions == (3236, 2638) and slide.level_count == 1
        assert slide.mpp is None  # the instance has no PixelSpacing
        np.testing.assert_array_equal(slide.read_region((0, 0), 0, slide.dimensions)[..., :3], expected)
        for location, size in regions_inside_and_across_edges(*slide.dimensions, 1.0) + [((490, 990), (30, 25))]:
            np.testing.assert_array_equal(slide.read_region(location, 0, size), _cut(expected, location, size))
        assert slide.thumbnail(256).shape == (209, 256, 3)
    assert describe(path)["backend"] == "pydicom"


def test_medviewer_info_prints_the_reader_of_each_slide(capsys: pytest.CaptureFixture, strip_tiff: Path):
    from medviewer.cli import main

    for path, backend in [(real_file(DICOM_WSI), "pydicom"), (strip_tiff, "tifffile")]:
        assert main(["info", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"(read by {backend})" in out
        assert "TCGA" not in out  # the DICOM instance's patient name and ID are not printed
