"""Tile bookkeeping of the slide view: each tile read at the level pixels where it is drawn; the cache bound."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medviewer.core.byte_lru import ByteLimitedCache
from medviewer.core.tile_grid import Pyramid

#: A CMU-1-like pyramid whose levels are not exact multiples of level 0, with OpenSlide's downsamples
#: (the mean of the width and height ratios).
SIZES = ((46000, 32914), (11500, 8228), (2875, 2057))
DOWNSAMPLES = tuple(((46000 / w) + (32914 / h)) / 2 for w, h in SIZES)


@pytest.mark.parametrize("level", [1, 2])
def test_every_tile_is_read_at_the_level_pixel_where_it_is_drawn(level: int):
    pyramid = Pyramid(SIZES, DOWNSAMPLES)
    columns, rows = pyramid.grid(level)
    downsample = DOWNSAMPLES[level]
    for column in range(columns):
        for row in range(rows):
            (x0, y0), (w, h) = pyramid.tile_region((level, column, row))
            # A reader maps a level-0 location to level pixels as floor(location / downsample).
            assert (math.floor(x0 / downsample), math.floor(y0 / downsample)) == (column * 512, row * 512)
            rx, ry, rw, rh = pyramid.tile_rect((level, column, row))
            assert (rx, ry) == pytest.approx((column * 512 * downsample, row * 512 * downsample))
            assert (rw, rh) == pytest.approx((w * downsample, h * downsample))
    last = pyramid.tile_region((level, columns - 1, rows - 1))[1]
    assert (columns - 1) * 512 + last[0] == SIZES[level][0] and (rows - 1) * 512 + last[1] == SIZES[level][1]


def test_requests_put_the_view_centre_first_then_prefetch_around_and_across_levels():
    pyramid = Pyramid(SIZES, DOWNSAMPLES)
    rect = (20000.0, 15000.0, 4000.0, 2000.0)  # level-0 pixels
    visible, prefetch = pyramid.requests(1, rect)
    centre = (22000 / DOWNSAMPLES[1] / 512, 16000 / DOWNSAMPLES[1] / 512)
    distances = [math.hypot(c + 0.5 - centre[0], r + 0.5 - centre[1]) for _, c, r in visible]
    assert distances == sorted(distances) and all(key[0] == 1 for key in visible)
    assert {key[0] for key in prefetch} == {0, 1, 2} and not set(visible) & set(prefetch)
    assert level_for_screen(pyramid) == [0, 0, 1, 2]


def level_for_screen(pyramid: Pyramid) -> list[int]:
    return [pyramid.level_for(scale) for scale in (0.5, 3.0, 5.0, 64.0)]


def test_cache_drops_the_least_recently_used_beyond_its_byte_limit():
    tile = np.zeros((512, 512, 4), np.uint8)  # 1 MiB
    cache = ByteLimitedCache(3 * tile.nbytes)
    for key in "abc":
        cache.put(key, tile.copy())
    cache.get("a")  # used: "b" is now the oldest
    evicted = cache.put("d", tile.copy())
    assert evicted == ["b"] and cache.bytes == 3 * tile.nbytes
    assert "a" in cache and "b" not in cache and len(cache) == 3
