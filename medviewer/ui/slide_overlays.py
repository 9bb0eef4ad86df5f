"""What the AI panel hands the slide view to draw: typed, so neither side counts positional arguments."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class SlideHeatmap:
    """A run's values over a slide for the slide view: (rows, columns) ``values`` from ``origin`` in cells of
    ``cell`` level-0 pixels, drawn on a scale up to ``maximum`` (1 for probabilities; None: the values' own),
    the cells outside the training data (``flagged``, or None when none are) hatched over it."""

    values: np.ndarray
    origin: tuple[float, float]
    cell: tuple[float, float]
    caption: str
    maximum: float | None
    flagged: np.ndarray | None


@dataclass(frozen=True, eq=False)
class SlideDetail:
    """A clicked patch's saliency laid over the heatmap: (H, W) ``values`` from ``origin`` in ``pixel``-sized
    level-0 cells."""

    values: np.ndarray
    origin: tuple[float, float]
    pixel: tuple[float, float]
    caption: str
    #: The top of its colour scale: saliency runs 0..1, like the probabilities under it, so one legend reads both.
    maximum: float | None = 1.0
