"""De-identified slide export: a plain tiled TIFF without label, macro or the scanner's descriptive metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide

from medviewer.deid.export import export_deidentified
from medviewer.io import open_slide
from tests.support.paths import real_file

SVS = "wsi/CMU-1-Small-Region.svs"
IDENTIFYING_PROPERTIES = (
    "aperio.Filename",
    "aperio.Date",
    "aperio.Time",
    "aperio.User",
    "aperio.ImageID",
    "aperio.ScanScope ID",
)


def test_slide_export_drops_label_macro_and_identifying_metadata(tmp_path: Path):
    source = real_file(SVS)
    with openslide.OpenSlide(source) as original:
        assert {"label", "macro"} <= set(original.associated_images)
        identifying = [original.properties[key] for key in IDENTIFYING_PROPERTIES]
        dimensions = original.dimensions
        original_pixels = np.asarray(original.read_region((0, 0), 0, dimensions))
    out = tmp_path / "out"
    assert export_deidentified([source], out).slides == 1
    exported = out / "slide-0001.tiff"
    data = exported.read_bytes()
    for value in identifying + [source.stem, "Aperio"]:
        assert value.encode() not in data, f"export keeps {value!r}"
    assert [p.name for p in out.iterdir()] == ["slide-0001.tiff"]
    with openslide.OpenSlide(exported) as copy:
        assert not copy.associated_images
        assert copy.dimensions == dimensions
        assert float(copy.properties["openslide.mpp-x"]) == 0.499
        pixels = np.asarray(copy.read_region((0, 0), 0, copy.dimensions))
    assert np.abs(pixels[..., :3].astype(int) - original_pixels[..., :3]).mean() < 3  # JPEG at quality 90
    with open_slide(exported) as slide:
        assert slide.associated_image_names == [] and slide.mpp == 0.499
