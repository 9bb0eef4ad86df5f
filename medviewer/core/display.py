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
