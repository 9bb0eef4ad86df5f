"""Damaged and hostile copies of real Aperio SVS files, opened through the door the window and ``medviewer
info`` use: a typed error naming the file and the damage instead of a ZeroDivisionError, no pixel size the
file does not give (never tifffile's default of one pixel per inch, never -1 or 1e308 µm), and the window's
overview of a slide without a pyramid made in bounded memory."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile

from medviewer.cli import main
from medviewer.core.errors import CorruptFileError
from medviewer.io import ImageKind, classify, describe, open_slide
from tests.support.child_process import json_from_child
from tests.support.paths import real_file
from tests.support.slides import CMU, TCGA, TINY


def _entry_damaged(source: Path, target: Path, tag: str, field: str, value: int) -> Path:
    """A copy of ``source`` with the type or code of one IFD entry of its first page overwritten, as a flipped
    byte does: tifffile then drops the tag (a size of 0), and libtiff refuses the file, so OpenSlide cannot."""
    shutil.copyfile(source, target)
    with tifffile.TiffFile(source) as tif:
        entry, order = tif.pages[0].tags[tag].offset, tif.byteorder
    with open(target, "r+b") as handle:
        handle.seek(entry + {"code": 0, "type": 2}[field])
        handle.write(struct.pack(order + "H", value))
    return target


@pytest.mark.parametrize(
    ("tag", "field", "value", "reason"),
    [
        ("ImageLength", "type", 0x6F03, "level 0 declares 16 x 0 pixels"),
        ("ImageWidth", "type", 0x6F03, "level 0 declares 0 x 16 pixels"),
        ("TileLength", "code", 65000, "level 0 declares tiles of 64 x 0 pixels"),
        ("TileOffsets", "type", 130, "level 0 (16 x 16 pixels) needs 1 tiles, but the file lists 0"),
    ],
)
def test_a_level_or_tile_of_no_pixels_is_a_corrupt_file_not_a_division_by_zero(
    tmp_path: Path, tag: str, field: str, value: int, reason: str
):
    path = _entry_damaged(real_file(TINY), tmp_path / "damaged.svs", tag, field, value)
    assert openslide.OpenSlide.detect_format(str(path)) is None  # the case must reach the tifffile reader
    assert classify(path) is ImageKind.SLIDE
    with pytest.raises(CorruptFileError) as caught:
        open_slide(path)
    assert caught.value.path == path and caught.value.reason == reason


def _cut(source: Path, target: Path, fraction: float) -> Path:
    target.write_bytes(source.read_bytes()[: int(source.stat().st_size * fraction)])
    return target


def test_a_truncated_svs_read_by_tifffile_keeps_its_scanners_pixel_size(tmp_path: Path):
    """Its label and macro cut off, CMU-1 is refused by OpenSlide and read by tifffile: the pixel size is the
    Aperio description's 0.499 µm, as OpenSlide gives for the intact file, not 25400 µm (one inch) from
    resolution tags that Aperio never writes."""
    path = _cut(real_file(CMU), tmp_path / "cmu-cut.svs", 0.95)
    with open_slide(path) as slide, open_slide(real_file(CMU)) as intact:
        assert slide.backend == "tifffile" and slide.vendor == "aperio"
        assert slide.mpp == pytest.approx(intact.mpp) == pytest.approx(0.499)
        assert slide.warnings == []
        np.testing.assert_array_equal(
            slide.read_region((240, 480), 0, (300, 200)), intact.read_region((240, 480), 0, (300, 200))
        )


def test_a_truncated_svs_whose_scanner_gave_no_pixel_size_has_none(tmp_path: Path):
    path = _cut(real_file(TCGA), tmp_path / "tcga-cut.svs", 0.95)
    with open_slide(path) as slide:
        assert slide.backend == "tifffile"
        assert slide.mpp is None and slide.recorded_mpp is None and slide.warnings == []


def _with_mpp(tmp_path: Path, text: bytes) -> Path:
    """CMU-1 with the MPP of its Aperio description rewritten in place (same length), the file otherwise intact."""
    data = real_file(CMU).read_bytes()
    marker = b"MPP = 0.4990"
    assert marker in data and len(text) == len(marker)
    path = tmp_path / "cmu-mpp.svs"
    path.write_bytes(data.replace(marker, text))
    return path


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (b"MPP = -1.000", -1.0),
        (b"MPP = 1e308 ", 1e308),
        (b"MPP = inf   ", float("inf")),
        (b"MPP = 0.0000", 0.0),
        (b"MPP = 254.00", 254.0),
    ],
)
def test_an_implausible_pixel_size_is_unknown_with_a_warning_and_never_printed_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture, text: bytes, value: float
):
    path = _with_mpp(tmp_path, text)
    with open_slide(path) as slide:
        assert slide.mpp is None and slide.recorded_mpp == value
        assert slide.warnings == [
            f"the file's pixel size ({value:g} µm per pixel) is not one a slide scanner gives (0.02 to 50 µm); "
            "the pixel size is unknown and can be set by hand"
        ]
    assert describe(path)["mpp"] is None
    assert main(["info", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"  mpp         unknown (the file's {value:g} is refused)" in lines
    assert any(line.startswith("  warning     the file's pixel size") for line in lines)


def test_a_plausible_pixel_size_is_kept(tmp_path: Path):
    with open_slide(_with_mpp(tmp_path, b"MPP = 0.2500")) as slide:
        assert slide.mpp == pytest.approx(0.25) and slide.warnings == []


OVERVIEW_SCRIPT = """
import json, resource, sys, time
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]),) * 2)
from tests.support.memory import peak_resident_mib
from medviewer.io.preview import open_with_preview
from medviewer.io.thumbnails import ThumbnailCache
started = time.perf_counter()
opened = open_with_preview(Path(sys.argv[1]))
opened.image.close()
icon = ThumbnailCache(Path(sys.argv[2])).slide_thumbnail(Path(sys.argv[1]))
print(json.dumps({"overview": list(opened.preview.shape), "icon": list(icon.shape), "pixel": icon[5, 5].tolist(),
                  "peak_mib": peak_resident_mib(), "seconds": time.perf_counter() - started}))
"""
ADDRESS_SPACE = 3 << 30  # a reader of the whole level (1 GiB of RGBA, then copies) fails here, not the machine


@pytest.mark.slow
def test_a_large_slide_without_a_pyramid_opens_in_the_window_in_bounded_memory(tmp_path: Path):
    """A legitimate 16000 x 16000 tiled TIFF of one level (a few MB of deflate tiles), opened as the window
    does: its 2048-pixel overview and its patient panel icon. The icon's reduction by 83 read the level in
    one chunk (1 GiB of RGBA and its copies); strips keep both to a few hundred MB."""
    path = tmp_path / "single-level-16000.tiff"
    tile = np.full((512, 512, 3), (200, 120, 160), dtype=np.uint8)
    tiles = (tile for _ in range(32 * 32))
    tifffile.imwrite(
        path, tiles, shape=(16000, 16000, 3), dtype=np.uint8, tile=(512, 512), compression="zlib", photometric="rgb"
    )
    with open_slide(path) as slide:
        assert slide.level_count == 1 and slide.dimensions == (16000, 16000)
    result = json_from_child(OVERVIEW_SCRIPT, str(path), str(tmp_path / "thumbnails"), str(ADDRESS_SPACE))
    assert result["overview"] == [2048, 2048, 3] and result["icon"] == [96, 96, 3]
    assert result["pixel"] == [200, 120, 160]
    assert result["peak_mib"] < 400, result
