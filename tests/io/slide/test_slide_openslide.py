"""Slides OpenSlide reads: medviewer's Slide gives OpenSlide's own pixels and metadata, edges included."""

from __future__ import annotations

import numpy as np
import openslide
import pytest

from medviewer.io import Slide, describe, open_slide
from tests.support.paths import real_file
from tests.support.slides import CMU, TCGA, TINY, regions_inside_and_across_edges


@pytest.mark.parametrize("name", [CMU, TCGA, TINY])
def test_regions_equal_openslides_own_at_every_level(name: str):
    path = real_file(name)
    with open_slide(path) as slide, openslide.OpenSlide(str(path)) as reference:
        assert slide.backend == "openslide"
        assert slide.level_dimensions == reference.level_dimensions
        for level, downsample in enumerate(reference.level_downsamples):
            for location, size in regions_inside_and_across_edges(*reference.dimensions, downsample):
                got = slide.read_region(location, level, size)
                assert got.dtype == np.uint8 and got.shape == (size[1], size[0], 4)
                np.testing.assert_array_equal(got, np.asarray(reference.read_region(location, level, size)))


def test_outside_the_slide_is_transparent_and_inside_opaque():
    with open_slide(real_file(CMU)) as slide:
        width, height = slide.dimensions
        straddling = slide.read_region((width - 50, height - 40), 0, (100, 80))
        assert (straddling[:40, :50, 3] == 255).all()
        assert (straddling[40:, :, 3] == 0).all() and (straddling[:, 50:, 3] == 0).all()
        assert (slide.read_region((-500, -500), 0, (64, 64)) == 0).all()


def test_metadata_of_the_aperio_slide():
    with open_slide(real_file(CMU)) as slide:
        assert slide.path == real_file(CMU)
        assert slide.vendor == "aperio"
        assert slide.dimensions == (2220, 2967)
        assert slide.level_count == 1 and slide.level_downsamples == (1.0,)
        assert slide.mpp == pytest.approx(0.499)
        assert slide.objective_power == 20
        assert slide.associated_image_names == ["label", "macro", "thumbnail"]
        macro = slide.associated_image("macro")
        assert macro.dtype == np.uint8 and macro.shape == (431, 1280, 3)
        with pytest.raises(KeyError):
            slide.associated_image("overview")


def test_jpeg2000_slide_has_two_levels_and_no_mpp():
    path = real_file(TCGA)
    with Slide(path) as slide, openslide.OpenSlide(str(path)) as reference:
        assert slide.level_dimensions == ((4443, 3567), (2221, 1783))
        assert slide.mpp is None
        for downsample in (0.5, 1.0, 1.9, 2.0005, 2.5, 64.0):
            assert slide.best_level_for_downsample(downsample) == reference.get_best_level_for_downsample(downsample)


def test_thumbnail_fits_the_size_and_matches_openslides():
    path = real_file(TCGA)
    with open_slide(path) as slide, openslide.OpenSlide(str(path)) as reference:
        thumbnail = slide.thumbnail(400)
        expected = np.asarray(reference.get_thumbnail((400, 400)).convert("RGB"))
    assert thumbnail.shape == expected.shape and thumbnail.dtype == np.uint8
    assert np.abs(thumbnail.astype(int) - expected).mean() < 2


def test_bad_requests_are_refused_before_reading():
    with open_slide(real_file(CMU)) as slide:
        with pytest.raises(ValueError, match="level 1"):
            slide.read_region((0, 0), 1, (10, 10))
        with pytest.raises(ValueError, match="positive"):
            slide.read_region((0, 0), 0, (0, 10))


def test_describe_names_the_backend():
    info = describe(real_file(TCGA))
    assert info["backend"] == "openslide"
    assert info["levels"] == 2 and info["mpp"] is None
