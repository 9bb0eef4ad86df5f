"""Generated pyramids for tests and benchmarks: levels, MPP, tissue islands, and the same bytes each time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest

from medviewer.core.tissue import tissue_mask
from medviewer.demo.slide_phantom import default_level_count, write_pyramid_slide
from medviewer.io import open_slide


@pytest.mark.slow
def test_small_pyramid_is_a_generic_tiff_openslide_reads_with_levels_and_mpp(small_pyramid: Path):
    with openslide.OpenSlide(str(small_pyramid)) as reference:
        assert reference.properties["openslide.vendor"] == "generic-tiff"
        assert reference.level_dimensions == ((4096, 3072), (1024, 768), (256, 192))
        assert float(reference.properties["openslide.mpp-x"]) == pytest.approx(0.5)
    with open_slide(small_pyramid) as slide:
        assert slide.backend == "openslide"
        assert slide.level_downsamples == (1.0, 4.0, 16.0)
        overview = slide.read_region((0, 0), 2, (256, 192))
        assert (overview[..., 3] == 255).all()
        fraction = tissue_mask(np.ascontiguousarray(overview[..., :3])).mean()
        assert 0.03 < fraction < 0.5  # islands on mostly empty glass
        # A level is its level-0 pixels shrunk: compare a tissue-rich area at levels 0 and 1.
        level0 = slide.read_region((0, 0), 0, (4096, 3072))[..., :3].astype(float)
        level1 = slide.read_region((0, 0), 1, (1024, 768))[..., :3].astype(float)
    shrunk = level0.reshape(768, 4, 1024, 4, 3).mean(axis=(1, 3))
    assert np.abs(shrunk - level1).mean() < 3


def test_same_arguments_give_the_same_bytes_and_another_seed_another_slide(tmp_path: Path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        write_pyramid_slide(tmp_path / f"{name}.tiff", 1024, 768, seed=seed, tile=256, levels=2)
    assert (tmp_path / "a.tiff").read_bytes() == (tmp_path / "b.tiff").read_bytes()
    assert (tmp_path / "a.tiff").read_bytes() != (tmp_path / "c.tiff").read_bytes()
    with open_slide(tmp_path / "a.tiff") as slide:
        assert slide.level_dimensions == ((1024, 768), (256, 192))


def test_default_levels_reach_a_small_overview_and_bad_tiles_are_refused(tmp_path: Path):
    assert default_level_count(50_000, 40_000) == 4
    assert default_level_count(1024, 512) == 1
    with pytest.raises(ValueError, match="multiple of 16"):
        write_pyramid_slide(tmp_path / "x.tiff", 512, 512, seed=0, tile=250)
