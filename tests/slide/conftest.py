"""Slides the reader tests share: the real files, and pyramids written once per session from real pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import real_file

CMU = "wsi/CMU-1-Small-Region.svs"
TCGA = "wsi/tcga-cr-7395-01a-01-ts1.svs"
TINY = "wsi/openslide-python_small.svs"
DICOM_WSI = "wsi/pathml_small_dicom.dcm"


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


@pytest.fixture(scope="session")
def small_pyramid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 4096 x 3072 JPEG pyramid of three levels (about 2 s)."""
    from medviewer.demo.slide_phantom import write_pyramid_slide

    path = tmp_path_factory.mktemp("pyramid") / "small.tiff"
    write_pyramid_slide(path, 4096, 3072, seed=0, levels=3)
    return path


def regions_inside_and_across_edges(
    width: int, height: int, level_downsample: float
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(location in level-0 pixels, size at the level): inside, on each edge and corner, and wholly outside."""
    w, h = 300, 200
    far_x, far_y = int(width - w * level_downsample / 2), int(height - h * level_downsample / 2)
    return [
        ((0, 0), (w, h)),
        ((517, 403), (w, h)),
        ((-150, 100), (w, h)),
        ((100, -90), (w, h)),
        ((far_x, 200), (w, h)),
        ((300, far_y), (w, h)),
        ((far_x, far_y), (w, h)),
        ((-400, -400), (w, h)),
        ((width + 10, height + 10), (w, h)),
        ((1001, 777), (1, 1)),
    ]
