"""Which patches of a demo slide show tumour: the labelling rule for the demo patch model's training, its tests
and the held-out patches that ``medviewer demo-data --eval-set`` writes.

Truth is the tumour polygons the slide phantom planted (``ground_truth.json``, level-0 pixels). A patch is
``tumour`` when at least ``TUMOUR_MIN_FRACTION`` of it lies inside a polygon and ``normal`` when none of it
does; a patch that only grazes a tumour is left out rather than given a label a pathologist could dispute.
Fractions are measured on a fine raster (``SAMPLES`` points per patch side), not on the patch's corners, so
a thin tongue of tumour across a patch is not missed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from skimage.draw import polygon2mask

TUMOUR_MIN_FRACTION = 0.3
SAMPLES = 16
#: The demo patch model's input, where its patches are cut: 64 pixels of 2 µm, 128 µm (a few dozen nuclei).
#: Level 1 of the demo slides is 2 µm per pixel, so patches are read from it as they are.
PATCH_MPP = 2.0
PATCH_PIXELS = 64

TUMOUR, NORMAL, LEFT_OUT = 1, 0, -1


def tumour_fraction(
    polygons: Sequence[np.ndarray],
    origin: tuple[float, float],
    patch_size: tuple[float, float],
    rows: int,
    columns: int,
) -> np.ndarray:
    """(rows, columns) fraction of each grid cell inside any tumour polygon.

    Cell (r, c) covers level-0 ``origin + (c, r) * patch_size``, as ``slide_run.PatchGrid`` lays it out."""
    width, height = patch_size
    scale = np.array([SAMPLES / width, SAMPLES / height])
    mask = np.zeros((rows * SAMPLES, columns * SAMPLES), dtype=bool)
    for polygon in polygons:
        local = (np.asarray(polygon, dtype=np.float64) - np.asarray(origin)) * scale - 0.5  # sample centres
        mask |= polygon2mask(mask.shape, local[:, ::-1])
    return mask.reshape(rows, SAMPLES, columns, SAMPLES).mean(axis=(1, 3))


def patch_labels(fraction: np.ndarray) -> np.ndarray:
    """TUMOUR, NORMAL or LEFT_OUT per cell from its tumour fraction."""
    labels = np.full(fraction.shape, LEFT_OUT, dtype=np.int8)
    labels[fraction >= TUMOUR_MIN_FRACTION] = TUMOUR
    labels[fraction == 0] = NORMAL
    return labels


def patch_mask(
    polygons: Sequence[np.ndarray], box: tuple[float, float, float, float], shape: tuple[int, int]
) -> np.ndarray:
    """(H, W) bool: which pixels of a patch's model input (``shape``) lie inside tumour.

    ``box`` is the patch's level-0 (x, y, width, height); input pixel (i, j) has its centre at level-0
    ``x + (j + 0.5) * width / W``, as reading and resizing the patch place it."""
    x, y, width, height = box
    rows, columns = shape
    mask = np.zeros(shape, dtype=bool)
    for polygon in polygons:
        local = np.asarray(polygon, dtype=np.float64)
        local = (local - [x, y]) * [columns / width, rows / height] - 0.5
        mask |= polygon2mask(shape, local[:, ::-1])
    return mask
