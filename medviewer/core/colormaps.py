"""Colour maps as 256-entry RGB lookup tables, shared by the image display, overlays and legends.

Defined here as data (piecewise-linear control points) rather than taken from a plotting library,
so a screenshot, an exported PNG and the on-screen legend always use the same colours.
"""

from __future__ import annotations

from functools import cache

import numpy as np

#: name -> control points (position 0..1, (r, g, b) 0..255).
_CONTROL_POINTS: dict[str, list[tuple[float, tuple[int, int, int]]]] = {
    "grey": [(0.0, (0, 0, 0)), (1.0, (255, 255, 255))],
    "inverted grey": [(0.0, (255, 255, 255)), (1.0, (0, 0, 0))],
    "hot": [(0.0, (0, 0, 0)), (0.375, (255, 0, 0)), (0.75, (255, 255, 0)), (1.0, (255, 255, 255))],
    "jet": [
        (0.0, (0, 0, 128)),
        (0.125, (0, 0, 255)),
        (0.375, (0, 255, 255)),
        (0.625, (255, 255, 0)),
        (0.875, (255, 0, 0)),
        (1.0, (128, 0, 0)),
    ],
}
COLORMAP_NAMES = tuple(_CONTROL_POINTS)
LUT_SIZE = 256


@cache
def lookup_table(name: str) -> np.ndarray:
    """(256, 3) uint8 table for ``name``; raises KeyError for an unknown map."""
    points = _CONTROL_POINTS[name]
    positions = np.array([p for p, _ in points])
    colours = np.array([c for _, c in points], dtype=float)
    x = np.linspace(0.0, 1.0, LUT_SIZE)
    table = np.stack([np.interp(x, positions, colours[:, channel]) for channel in range(3)], axis=1)
    table = np.round(table).astype(np.uint8)
    table.flags.writeable = False
    return table
