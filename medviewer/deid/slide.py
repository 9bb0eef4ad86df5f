"""De-identified whole-slide export: the slide's pyramid levels rewritten as a plain tiled TIFF.

Scanner formats keep the label (often the patient's name and barcode), the macro photograph and an
ImageDescription with file name, user, date and time. Copying pixels into a new file is the only way to
be sure nothing else travels along: the output holds the levels' pixels, the resolution (for MPP) and
nothing else. Levels are read one band of tiles at a time so memory stays bounded on gigapixel slides.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from medviewer.io import open_slide
from medviewer.io.slide import Slide

TILE = 256


def export_slide(source: Path, target: Path) -> None:
    """Write ``source``'s levels to ``target`` (a new tiled, JPEG-compressed pyramidal TIFF)."""
    import tifffile

    with open_slide(source) as slide, tifffile.TiffWriter(target, bigtiff=True) as tif:
        mpp = slide.mpp
        for level, (width, height) in enumerate(slide.level_dimensions):
            downsample = slide.level_downsamples[level]
            resolution = (1e4 / (mpp * downsample),) * 2 if mpp else None
            tif.write(
                _tiles(slide, level),
                shape=(height, width, 3),
                dtype=np.uint8,
                tile=(TILE, TILE),
                photometric="rgb",
                compression="jpeg",
                compressionargs={"level": 90},
                subfiletype=1 if level else 0,
                resolution=resolution,
                resolutionunit="CENTIMETER" if mpp else None,
                description=None,
                metadata=None,
                software=False,
            )


def _tiles(slide: Slide, level: int) -> Iterator[np.ndarray]:
    """The level's tiles in row-major order, as tifffile takes them; one band of rows read at a time."""
    width, height = slide.level_dimensions[level]
    downsample = slide.level_downsamples[level]
    for y in range(0, height, TILE):
        band_height = min(TILE, height - y)
        band = slide.read_region((0, int(round(y * downsample))), level, (width, band_height))
        rgb = _on_white(band)
        for x in range(0, width, TILE):
            tile = np.full((TILE, TILE, 3), 255, dtype=np.uint8)
            part = rgb[:, x : x + TILE]
            tile[: part.shape[0], : part.shape[1]] = part
            yield tile


def _on_white(rgba: np.ndarray) -> np.ndarray:
    """Transparent parts (outside the scanned area) as white, as viewers show them."""
    alpha = rgba[..., 3:].astype(np.float32) / 255.0
    if alpha.min() == 1.0:
        return rgba[..., :3]
    return np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
