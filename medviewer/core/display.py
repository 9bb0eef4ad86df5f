"""Turning stored pixel values into display bytes, shared by the viewers and the thumbnails."""

from __future__ import annotations

import numpy as np


def apply_window(values: np.ndarray, width: float, centre: float, invert: bool = False) -> np.ndarray:
    """Map values through a DICOM linear window to uint8 (PS3.3 C.11.2.1.2, simplified)."""
    low = centre - width / 2.0
    scaled = (values.astype(np.float32) - low) * (255.0 / max(width, 1e-6))
    out = np.clip(scaled, 0, 255).astype(np.uint8)
    return 255 - out if invert else out


def shrink_to_fit(image: np.ndarray, max_size: int) -> np.ndarray:
    """Downsample by an integer stride so the longer side is at most ``max_size`` pixels."""
    step = max(1, int(np.ceil(max(image.shape[:2]) / max_size)))
    return np.ascontiguousarray(image[::step, ::step])


def label_table(colours: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """(max label + 1, 4) RGBA table: each label's colour, opaque; 0 (background) transparent."""
    table = np.zeros((max(colours, default=0) + 1, 4), dtype=np.uint8)
    for value, colour in colours.items():
        if value > 0:
            table[value, :3] = colour
            table[value, 3] = 255
    return table


def label_rgba(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """RGBA image of a label slice; labels without a colour are drawn transparent."""
    safe = np.where((labels >= 0) & (labels < len(table)), labels, 0)
    return table[safe]


def heat_scale(values: np.ndarray, threshold: float | None = None) -> tuple[float, float]:
    """(low, high) a heatmap is drawn between: ``threshold`` (default: the smallest value) to the largest
    value, NaN (no value) ignored; never an empty range."""
    finite = values[np.isfinite(values)]
    low = float(threshold) if threshold is not None else float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else low + 1.0
    return low, max(high, low + 1e-6)


def heat_rgba(values: np.ndarray, lut: np.ndarray, low: float, high: float) -> np.ndarray:
    """RGBA image of a float map through ``lut`` between ``low`` and ``high``; below ``low``, and NaN (no
    value), is transparent."""
    shown = values >= low  # False for NaN
    span = max(high - low, 1e-12)
    scaled = (np.where(shown, values, low).astype(np.float32) - low) * ((len(lut) - 1) / span)
    index = np.clip(scaled, 0, len(lut) - 1).astype(np.intp)
    rgba = np.empty(values.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = lut[index]
    rgba[..., 3] = np.where(shown, 255, 0)
    return rgba


def error_pattern(width: int, height: int) -> np.ndarray:
    """RGBA red and white diagonal stripes, drawn where slide pixels cannot be decoded: unmistakably not tissue."""
    y, x = np.mgrid[0:height, 0:width]
    stripes = ((x + y) // 16) % 2 == 0
    tile = np.empty((height, width, 4), dtype=np.uint8)
    tile[...] = (255, 255, 255, 255)
    tile[stripes] = (220, 0, 0, 255)
    return tile
