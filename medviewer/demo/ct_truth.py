"""Which axial slices of a chest phantom show a lesion: the one labelling rule for training, testing and the
held-out sets that ``medviewer demo-data --eval-set`` writes.

A slice that merely grazes a lesion, or cuts one the phantom has hidden in the heart, is neither clearly
``lesion`` nor clearly ``normal``; it is left out (label -1) rather than given a label a reader could not
defend, so accuracy figures measure what the pixels can show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medviewer.demo.ct_phantom import CtGeometry, Lesion

#: A slice counts as ``lesion`` when it cuts a lesion in a disc at least this large, both relative to the
#: lesion and absolutely: the phantom's vessels have radii up to 3.5 mm and touching vessels make blobs nearly
#: as large as a small lesion's cut, so only discs of 5 mm (the smallest lesion radius planted) or more count.
LESION_MIN_FRACTION = 0.5
LESION_MIN_RADIUS_MM = 5.0
#: ... and only where lung surrounds most of it: the phantom may draw the heart over a lung, and a lesion there
#: has the heart's density and cannot be seen.
LESION_MIN_LUNG_AROUND = 0.6

LESION, NORMAL, LEFT_OUT = 1, 0, -1


@dataclass(frozen=True)
class Disc:
    """A lesion's cross-section on a slice, on a grid stretched over the slice (row, column, radius)."""

    row: float
    column: float
    radius: float


def slice_truth(
    geometry: CtGeometry, lesions: list[Lesion], k: int, hu: np.ndarray, grid: tuple[int, int] | None = None
) -> tuple[int, list[Disc]]:
    """Slice ``k``'s label (LESION, NORMAL or LEFT_OUT) and its qualifying lesion discs.

    ``hu`` is the slice itself (for the lung around a lesion). Discs are given on ``grid`` (rows, columns)
    stretched over the slice's full extent, as a model's input is; input pixel j has its centre at
    ``left + (j + 0.5) * pixel`` millimetres. Without a grid they are on the slice's own pixels."""
    z = geometry.slice_z(k)
    _, rows, columns = geometry.shape
    grid_rows, grid_columns = grid or (rows, columns)
    ox, oy, _ = geometry.origin
    row_mm = rows * geometry.pixel_mm / grid_rows
    column_mm = columns * geometry.pixel_mm / grid_columns
    left, top = ox - geometry.pixel_mm / 2, oy - geometry.pixel_mm / 2
    touched, discs = False, []
    for lesion in lesions:
        cx, cy, cz = lesion.center_lps_mm
        dz = abs(z - cz)
        if dz >= lesion.radius_mm:
            continue
        touched = True
        radius = math.sqrt(lesion.radius_mm**2 - dz**2)
        large = radius >= max(LESION_MIN_FRACTION * lesion.radius_mm, LESION_MIN_RADIUS_MM)
        if large and lung_around(geometry, hu, cx, cy, radius) >= LESION_MIN_LUNG_AROUND:
            discs.append(Disc((cy - top) / row_mm - 0.5, (cx - left) / column_mm - 0.5, radius / column_mm))
    if discs:
        return LESION, discs
    return (LEFT_OUT if touched else NORMAL), []


def lung_around(geometry: CtGeometry, hu: np.ndarray, cx: float, cy: float, radius: float) -> float:
    """Fraction of the ring 1.5-4 mm outside a disc (LPS mm) that is lung (below -500 HU) on slice ``hu``."""
    ox, oy, _ = geometry.origin
    outer = radius + 4.0
    row0 = max(0, int((cy - outer - oy) / geometry.pixel_mm))
    row1 = min(hu.shape[0], int((cy + outer - oy) / geometry.pixel_mm) + 2)
    col0 = max(0, int((cx - outer - ox) / geometry.pixel_mm))
    col1 = min(hu.shape[1], int((cx + outer - ox) / geometry.pixel_mm) + 2)
    y = oy + np.arange(row0, row1)[:, None] * geometry.pixel_mm
    x = ox + np.arange(col0, col1)[None, :] * geometry.pixel_mm
    distance = np.hypot(x - cx, y - cy)
    ring = (distance >= radius + 1.5) & (distance <= outer)
    return float((hu[row0:row1, col0:col1][ring] < -500).mean()) if ring.any() else 0.0
