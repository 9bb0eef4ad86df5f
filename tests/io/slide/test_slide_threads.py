"""Tile workers read regions concurrently: every backend gives the same pixels as reading one at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from medviewer.io import open_slide
from tests.support.paths import real_file
from tests.support.slides import CMU, DICOM_WSI


@pytest.mark.parametrize("source", ["openslide", "tifffile", pytest.param("pydicom", marks=pytest.mark.slow)])
def test_concurrent_reads_equal_sequential_reads(source: str, ome_pyramid: Path):
    path = {"openslide": real_file(CMU), "tifffile": ome_pyramid, "pydicom": real_file(DICOM_WSI)}[source]
    rng = np.random.default_rng(0)
    with open_slide(path) as slide:
        assert slide.backend == source
        width, height = slide.dimensions
        requests = [
            ((int(rng.integers(-100, width)), int(rng.integers(-100, height))), int(rng.integers(slide.level_count)))
            for _ in range(48)
        ]
        expected = [slide.read_region(location, level, (256, 256)) for location, level in requests]
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(lambda request: slide.read_region(request[0], request[1], (256, 256)), requests * 3))
    for index, pixels in enumerate(got):
        np.testing.assert_array_equal(pixels, expected[index % len(requests)])
