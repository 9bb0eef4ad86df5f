"""Regions assembled from a level's tiles, for the readers that decode tiles themselves (TIFF, DICOM).

Reading a tile's bytes is serialised by a lock around the one file handle, while decoding, where the
time goes, runs outside it, so several tile workers decode in parallel. A region's location is in
level-0 pixels and is mapped onto the level by flooring, so a level pixel is the one whose footprint
holds the requested corner.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from medviewer.core.errors import CorruptFileError


@dataclass(frozen=True)
class TileGrid:
    """One pyramid level: its size and the size of the tiles (or strips) it is stored in."""

    width: int
    height: int
    tile_width: int
    tile_height: int

    @property
    def columns(self) -> int:
        return -(-self.width // self.tile_width)

    @property
    def rows(self) -> int:
        return -(-self.height // self.tile_height)


class ByteSource(Protocol):
    """An open file the tiles' bytes are read from: a plain file (DICOM) or tifffile's own handle (TIFF)."""

    def seek(self, offset: int, /) -> int: ...

    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...


class TiledSlide:
    """Base of the tile-decoding backends: subclasses provide ``_tile``; regions and downsamples live here."""

    def __init__(self, path: Path, grids: list[TileGrid], handle: ByteSource) -> None:
        self.path = path
        for level, grid in enumerate(grids):
            check_grid(path, level, grid)
        self._grids = grids
        self._handle = handle
        self._handle_lock = threading.Lock()
        self.level_dimensions = tuple((grid.width, grid.height) for grid in grids)
        width0, height0 = self.level_dimensions[0]
        # OpenSlide's definition, so a level's downsample is the same whichever backend reads it.
        self.level_downsamples = tuple((width0 / grid.width + height0 / grid.height) / 2 for grid in grids)

    def _tile(self, level: int, column: int, row: int) -> np.ndarray | None:
        """RGB uint8 pixels of one tile, at least as large as its part inside the level; None if not stored."""
        raise NotImplementedError

    def _read_bytes(self, offset: int, count: int, what: str) -> bytes:
        with self._handle_lock:
            self._handle.seek(offset)
            data = self._handle.read(count)
        if len(data) != count:
            raise CorruptFileError(self.path, f"{what} lies beyond the end of the file (is the file truncated?)")
        return data

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        grid = self._grids[level]
        downsample = self.level_downsamples[level]
        width, height = size
        x0, y0 = math.floor(location[0] / downsample), math.floor(location[1] / downsample)
        region = np.zeros((height, width, 4), np.uint8)
        left, top = max(x0, 0), max(y0, 0)
        right, bottom = min(x0 + width, grid.width), min(y0 + height, grid.height)
        if right <= left or bottom <= top:
            return region
        for row in range(top // grid.tile_height, (bottom - 1) // grid.tile_height + 1):
            for column in range(left // grid.tile_width, (right - 1) // grid.tile_width + 1):
                tile = self._tile(level, column, row)
                if tile is None:
                    continue
                tx, ty = column * grid.tile_width, row * grid.tile_height
                ix0, ix1 = max(left, tx), min(right, tx + grid.tile_width)
                iy0, iy1 = max(top, ty), min(bottom, ty + grid.tile_height)
                if tile.shape[0] < iy1 - ty or tile.shape[1] < ix1 - tx:
                    what = f"tile ({column}, {row}) of level {level}"
                    raise CorruptFileError(self.path, f"{what} is smaller than the file declares")
                target = region[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
                target[..., :3] = tile[iy0 - ty : iy1 - ty, ix0 - tx : ix1 - tx]
                target[..., 3] = 255
        return region


def check_grid(path: Path, level: int, grid: TileGrid) -> None:
    """Refuse a level of no pixels or tiles of no pixels, before anything divides by their size (a damaged
    SVS read through tifffile declared 16 x 0 pixels, or tiles 64 x 0)."""
    if min(grid.width, grid.height) < 1:
        raise CorruptFileError(path, f"level {level} declares {grid.width} x {grid.height} pixels")
    if min(grid.tile_width, grid.tile_height) < 1:
        raise CorruptFileError(path, f"level {level} declares tiles of {grid.tile_width} x {grid.tile_height} pixels")
