"""Slides the reader tests share: pyramids written once per session from the real pixels of CMU-1-Small-Region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.paths import real_file
from tests.support.slides import CMU


@pytest.fixture(scope="session")
def cmu_pixels() -> np.ndarray:
    """CMU-1-Small-Region's level 0 as RGB, the real pixels the generated TIFFs below are made of."""
    import openslide

    with openslide.OpenSlide(str(real_file(CMU))) as slide:
        return np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB"))


@pytest.fixture(scope="session")
def ome_pyramid(tmp_path_factory: pytest.TempPathFactory, cmu_pixels: np.ndarray) -> Path:
    """OME-TIFF with its two reduced levels in SubIFDs (as bioformats2raw/QuPath write), JPEG tiles."""
    import tifffile

    path = tmp_path_factory.mktemp("ome") / "cmu.ome.tif"
    options = {"tile": (256, 256), "photometric": "rgb", "compression": "jpeg"}
    metadata = {"axes": "YXS", "PhysicalSizeX": 0.499, "PhysicalSizeY": 0.499}
    with tifffile.TiffWriter(path) as tw:
        tw.write(cmu_pixels, subifds=2, metadata=metadata, **options)
        tw.write(cmu_pixels[::2, ::2], subfiletype=1, **options)
        tw.write(cmu_pixels[::4, ::4], subfiletype=1, **options)
    return path


@pytest.fixture(scope="session")
def strip_tiff(tmp_path_factory: pytest.TempPathFactory, cmu_pixels: np.ndarray) -> Path:
    """A TIFF stored in deflate strips, with its resolution in pixels per inch (50800 dpi: 0.5 um)."""
    import tifffile

    path = tmp_path_factory.mktemp("strips") / "cmu-strips.tif"
    tifffile.imwrite(
        path,
        cmu_pixels,
        photometric="rgb",
        rowsperstrip=100,
        compression="zlib",
        resolution=(50800, 50800),
        resolutionunit="INCH",
    )
    return path
