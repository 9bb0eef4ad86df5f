"""numpy to Qt image conversion, in one place so every widget shows pixels the same way."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QIcon, QImage, QPixmap


def to_qimage(pixels: np.ndarray) -> QImage:
    """A deep-copied QImage of a uint8 grey (h, w) or RGB (h, w, 3) array."""
    data = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = data.shape[:2]
    if data.ndim == 2:
        return QImage(data.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def to_icon(pixels: np.ndarray) -> QIcon:
    return QIcon(QPixmap.fromImage(to_qimage(pixels)))
