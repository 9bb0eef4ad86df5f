"""The colour scale of a heatmap overlay, drawn over the views so a reader can read values off colours."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPaintEvent
from PySide6.QtWidgets import QWidget

GRADIENT_STOPS = 16
#: The legend is as wide as its title needs between these (wider titles wrap), and its bar this tall.
WIDTH_RANGE = (74, 190)
BAR_HEIGHT = 166


class ColourLegend(QWidget):
    """A colour bar with its title and range. The title says what is drawn (such as "p(tumour) per patch;
    Grad-CAM on the patch"), so it is never cut: the legend widens and wraps to show all of it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.title = ""
        self.title_height = 18
        self.lut = np.zeros((2, 3), dtype=np.uint8)
        self.low = 0.0
        self.high = 1.0
        self.resize(WIDTH_RANGE[0], BAR_HEIGHT + 44)

    def set_scale(self, title: str, lut: np.ndarray, low: float, high: float) -> None:
        self.title, self.lut, self.low, self.high = title, lut, low, high
        metrics = self.fontMetrics()
        width = int(np.clip(metrics.horizontalAdvance(title) + 12, *WIDTH_RANGE))
        wrapped = metrics.boundingRect(QRect(0, 0, width - 8, 1000), Qt.TextFlag.TextWordWrap, title)
        self.title_height = max(18, wrapped.height() + 4)
        right = self.x() + self.width()  # the views pin the legend by its right edge: keep it there
        self.resize(width, BAR_HEIGHT + self.title_height + 26)
        self.move(right - width, self.y())
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt naming)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0, 160))
        bar = QRectF(8, self.title_height + 4, 16, self.height() - self.title_height - 26)
        gradient = QLinearGradient(bar.bottomLeft(), bar.topLeft())  # low values at the bottom
        for i in range(GRADIENT_STOPS + 1):
            position = i / GRADIENT_STOPS
            r, g, b = (int(c) for c in self.lut[round(position * (len(self.lut) - 1))])
            gradient.setColorAt(position, QColor(r, g, b))
        painter.fillRect(bar, gradient)
        painter.setPen(QColor(235, 235, 235))
        painter.drawText(
            QRectF(4, 2, self.width() - 8, self.title_height),
            Qt.AlignmentFlag.AlignLeft | Qt.TextFlag.TextWordWrap,
            self.title,
        )
        painter.drawText(
            QRectF(28, bar.top() - 6, self.width() - 30, 14), Qt.AlignmentFlag.AlignLeft, f"{self.high:.3g}"
        )
        painter.drawText(
            QRectF(28, bar.bottom() - 8, self.width() - 30, 14), Qt.AlignmentFlag.AlignLeft, f"{self.low:.3g}"
        )
        painter.end()
