"""Tissue masks by Otsu on saturation: real H&E on white glass, the demo slide's planted tissue, pen ink."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.draw import polygon2mask

from medviewer.core.tissue import tissue_mask
from medviewer.io import open_slide
from tests.support.paths import real_file
from tests.support.slides import CMU


def test_real_slide_has_tissue_in_a_sensible_fraction_and_clear_corners():
    with open_slide(real_file(CMU)) as slide:
        thumbnail = slide.thumbnail(1024)
    mask = tissue_mask(thumbnail)
    assert mask.shape == thumbnail.shape[:2] and mask.dtype == bool
    assert 0.3 < mask.mean() < 0.9
    corner = 20
    for rows, cols in [(slice(0, corner), slice(-corner, None)), (slice(-corner, None), slice(0, corner))]:
        assert not mask[rows, cols].any()
    # Tissue is stained: the mask's pixels are clearly more saturated than the rest.
    saturation = thumbnail.max(axis=2).astype(int) - thumbnail.min(axis=2)
    assert saturation[mask].mean() > 3 * saturation[~mask].mean()


def test_demo_slide_tissue_holds_the_tumours_and_spares_the_background(demo_dir: Path, ground_truth: dict):
    with open_slide(demo_dir / ground_truth["slide"]["file"]) as slide:
        thumbnail = slide.thumbnail(1024)
        scale = thumbnail.shape[1] / slide.dimensions[0]
    mask = tissue_mask(thumbnail)
    assert 0.15 < mask.mean() < 0.85
    assert not mask[:8, :8].any() and not mask[-8:, -8:].any()
    for region in ground_truth["slide"]["tumour_regions"]:
        polygon = np.asarray(region["polygon_level0_px"]) * scale
        inside = polygon2mask(mask.shape, polygon[:, ::-1])
        assert mask[inside].mean() > 0.98


def test_green_ink_and_black_marker_are_not_tissue():
    thumbnail = np.full((200, 200, 3), 242, np.uint8)
    thumbnail[40:160, 30:100] = (214, 140, 190)  # eosin pink
    thumbnail[60:120, 50:80] = (120, 70, 150)  # haematoxylin-rich
    thumbnail[20:40, 120:190] = (40, 160, 80)  # green pen
    thumbnail[150:170, 120:190] = (20, 20, 25)  # black marker
    mask = tissue_mask(thumbnail)
    assert mask[40:160, 30:100].all()
    assert not mask[20:40, 120:190].any() and not mask[150:170, 120:190].any()
    assert mask.sum() == 120 * 70


def test_blank_glass_has_no_tissue_and_wrong_input_is_refused():
    rng = np.random.default_rng(0)
    glass = np.clip(240 + rng.normal(0, 2, (64, 64, 3)), 0, 255).astype(np.uint8)
    assert not tissue_mask(glass).any()
    with pytest.raises(ValueError, match="RGB uint8"):
        tissue_mask(np.zeros((8, 8), np.uint8))
