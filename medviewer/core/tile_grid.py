"""Which pyramid tiles a slide view needs, in what order, and where each one lies in level-0 pixels.

A tile is (level, column, row) of a fixed grid laid on that level's own pixels. Readers (OpenSlide and
ours alike) turn a level-0 location into level pixels as floor(location / downsample), with the
level's one downsample factor; so a tile's level-0 location is ceil(level pixel x downsample), which
lands on exactly that level pixel, and it is drawn at level pixel x downsample. Using per-axis size
ratios instead would read some tiles one level pixel away from where they are drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TILE_SIZE = 512

TileKey = tuple[int, int, int]  # (level, column, row)
Rect = tuple[float, float, float, float]  # (x, y, width, height) in level-0 pixels


def level0_location(x: int, y: int, downsample: float) -> tuple[int, int]:
    """The level-0 location a reader turns back into level pixel (x, y), as floor(location / downsample)."""
    return math.ceil(x * downsample - 1e-9), math.ceil(y * downsample - 1e-9)


@dataclass(frozen=True)
class Pyramid:
    """The level sizes of a slide, enough to lay tile grids on it."""

    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    tile: int = TILE_SIZE

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    def level_for(self, level0_per_screen_pixel: float) -> int:
        """The coarsest level still at least as sharp as the screen: no level is magnified past 1:1."""
        best = 0
        for level in range(len(self.level_dimensions)):
            if self.level_downsamples[level] <= level0_per_screen_pixel * 1.01:
                best = level
        return best

    def grid(self, level: int) -> tuple[int, int]:
        w, h = self.level_dimensions[level]
        return math.ceil(w / self.tile), math.ceil(h / self.tile)

    def tile_region(self, key: TileKey) -> tuple[tuple[int, int], tuple[int, int]]:
        """What to read for a tile: (level-0 location, (width, height) in level pixels), clipped to the level."""
        level, column, row = key
        w, h = self.level_dimensions[level]
        x, y = column * self.tile, row * self.tile
        size = (min(self.tile, w - x), min(self.tile, h - y))
        return level0_location(x, y, self.level_downsamples[level]), size

    def tile_rect(self, key: TileKey) -> Rect:
        """Where a tile is drawn, in level-0 pixels."""
        level, column, row = key
        _, (width, height) = self.tile_region(key)
        scale = self.level_downsamples[level]
        return column * self.tile * scale, row * self.tile * scale, width * scale, height * scale

    def tiles_in(self, level: int, rect: Rect, margin_tiles: int = 0) -> list[TileKey]:
        """Tiles of ``level`` meeting ``rect`` (grown by ``margin_tiles``), nearest to its centre first."""
        x, y, width, height = rect
        span = self.tile * self.level_downsamples[level]  # level-0 pixels per tile
        columns, rows = self.grid(level)
        first_col = max(0, math.floor(x / span) - margin_tiles)
        last_col = min(columns - 1, math.floor((x + width) / span) + margin_tiles)
        first_row = max(0, math.floor(y / span) - margin_tiles)
        last_row = min(rows - 1, math.floor((y + height) / span) + margin_tiles)
        cx, cy = (x + width / 2) / span, (y + height / 2) / span
        keys = [
            (level, column, row)
            for column in range(first_col, last_col + 1)
            for row in range(first_row, last_row + 1)
        ]
        keys.sort(key=lambda k: (k[1] + 0.5 - cx) ** 2 + (k[2] + 0.5 - cy) ** 2)
        return keys

    def requests(self, level: int, rect: Rect) -> tuple[list[TileKey], list[TileKey]]:
        """(visible tiles, prefetch tiles): the view at its level, centre first; then a ring of one tile
        around it and the same area one level coarser and one finer, so panning and zooming find them ready."""
        visible = self.tiles_in(level, rect)
        seen = set(visible)
        prefetch: list[TileKey] = []
        neighbours = [level + d for d in (1, -1) if 0 <= level + d < len(self.level_dimensions)]
        for key in self.tiles_in(level, rect, margin_tiles=1) + [
            k for other in neighbours for k in self.tiles_in(other, rect)
        ]:
            if key not in seen:
                seen.add(key)
                prefetch.append(key)
        return visible, prefetch
