"""Plane geometry on vertex arrays, in numpy: area, length, point in polygon, distances, ellipses.

shapely is not a dependency, and annotations need only these few operations. Arrays are ``(N, 2)``
float64 of (x, y); rings are stored open (the first vertex is not repeated at the end).

Coordinates are kept on a grid of 1/1024 pixel (``snap``). That is far finer than any scanner resolves
and than the 0.01 px a file round trip must keep, and it makes every move exactly reversible: sums and
differences of grid values are exact in float64 for coordinates below 2**42 pixels, so undoing a move
restores the very same numbers rather than numbers one rounding away.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

GRID = 1024.0
#: Largest distance, in pixels, between an ellipse and the polygon that stands for it.
ELLIPSE_TOLERANCE_PX = 0.25


def snap(values: ArrayLike) -> np.ndarray:
    """Values on the 1/1024 px grid, as a new read-only float64 array."""
    snapped = np.round(np.asarray(values, dtype=np.float64) * GRID) / GRID
    snapped.flags.writeable = False
    return snapped


def open_ring(ring: object) -> np.ndarray:
    """A ring as an (N, 2) array without its closing vertex, whether or not it was given closed."""
    array = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
    return array[:-1] if len(array) > 1 and np.array_equal(array[0], array[-1]) else array


def ring_area(ring: np.ndarray) -> float:
    """Unsigned area enclosed by an open ring (shoelace formula)."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def path_length(path: np.ndarray, closed: bool) -> float:
    """Length of a polyline, including the closing edge back to the start when ``closed``."""
    ends = np.roll(path, -1, axis=0) if closed else path[1:]
    starts = path if closed else path[:-1]
    return float(np.hypot(*(ends - starts).T).sum())


def point_in_ring(ring: np.ndarray, x: float, y: float) -> bool:
    """Even-odd rule: a horizontal ray from (x, y) crosses the ring's edges an odd number of times."""
    x0, y0 = ring[:, 0], ring[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    straddles = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing_x = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return bool(np.count_nonzero(straddles & (x < crossing_x)) % 2)


def segment_distances(path: np.ndarray, x: float, y: float, closed: bool) -> np.ndarray:
    """Distance from (x, y) to each edge of a polyline; edge i runs from vertex i to vertex i + 1."""
    starts = path if closed else path[:-1]
    ends = np.roll(path, -1, axis=0) if closed else path[1:]
    edge = ends - starts
    to_point = np.array([x, y]) - starts
    length2 = np.einsum("ij,ij->i", edge, edge)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(length2 > 0, np.einsum("ij,ij->i", to_point, edge) / length2, 0.0)
    nearest = starts + np.clip(t, 0.0, 1.0)[:, None] * edge
    return np.hypot(*(np.array([x, y]) - nearest).T)


def point_distances(points: np.ndarray, x: float, y: float) -> np.ndarray:
    return np.hypot(points[:, 0] - x, points[:, 1] - y)


def ellipse_polygon(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The open ring standing for the ellipse inscribed in a box, within ``ELLIPSE_TOLERANCE_PX``.

    The vertex count is a multiple of four, so the ring touches all four sides of the box and its
    bounding box is the ellipse's: a reader can recover the ellipse from the polygon it was saved as.
    """
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    a, b = abs(x1 - x0) / 2, abs(y1 - y0) / 2
    radius = max(a, b, ELLIPSE_TOLERANCE_PX)
    # A chord of angle 2*pi/n departs from a circle of radius r by r * (1 - cos(pi/n)).
    n = math.ceil(math.pi / math.acos(1 - ELLIPSE_TOLERANCE_PX / radius) / 4) * 4 if radius > 1 else 4
    n = min(max(n, 16), 4096)
    angles = np.arange(n) * (2 * math.pi / n)
    return np.column_stack([cx + a * np.cos(angles), cy + b * np.sin(angles)])


def ellipse_perimeter(a: float, b: float) -> float:
    """Ramanujan's second approximation: relative error below 1e-7 up to an axis ratio of 3, 4e-4 at worst."""
    if a + b == 0:
        return 0.0
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


def rectangle_corners(ring: np.ndarray) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) when an open ring is exactly the four corners of an axis-aligned box, else None."""
    if len(ring) != 4:
        return None
    (x0, y0), (x1, y1) = ring.min(axis=0), ring.max(axis=0)
    corners = {(x0, y0), (x1, y0), (x1, y1), (x0, y1)}
    return (float(x0), float(y0), float(x1), float(y1)) if {tuple(v) for v in ring.tolist()} == corners else None
