"""numpy to Qt image conversion, in one place so every widget shows pixels the same way."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon, QImage, QPainter, QPixmap


def to_qimage(pixels: np.ndarray) -> QImage:
    """A deep-copied QImage of a uint8 grey (h, w) or RGB (h, w, 3) array."""
    data = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = data.shape[:2]
    if data.ndim == 2:
        return QImage(data.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QImage(data.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def to_icon(pixels: np.ndarray, size: int | None = None) -> QIcon:
    """An icon of the pixels, fitted into a ``size`` square (aspect kept, centred) when one is given."""
    pixmap = QPixmap.fromImage(to_qimage(pixels))
    if size is None:
        return QIcon(pixmap)
    fitted = pixmap.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    square = QPixmap(size, size)
    square.fill(Qt.GlobalColor.transparent)
    painter = QPainter(square)
    painter.drawPixmap((size - fitted.width()) // 2, (size - fitted.height()) // 2, fitted)
    painter.end()
    return QIcon(square)
