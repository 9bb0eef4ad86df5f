"""A scale bar of a round length for any view that knows its screen pixels per millimetre."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

#: Bar lengths offered, in millimetres: 1-2-5 steps from 1 µm to 500 mm.
LENGTHS_MM = tuple(m * 10.0**e for e in range(-3, 3) for m in (1, 2, 5))


def length_text(mm: float) -> str:
    return f"{mm * 1000:g} µm" if mm < 1 else f"{mm:g} mm"


class ScaleBar(QWidget):
    """The longest round length that fits in about four fifths of the widget's width."""

    def __init__(self, parent: QWidget, colour: tuple[int, int, int] = (230, 230, 230)) -> None:
        super().__init__(parent)
        self.pixels_per_mm = 0.0
        self.colour = QColor(*colour)
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.resize(220, 26)

    def set_scale(self, pixels_per_mm: float) -> None:
        self.pixels_per_mm = pixels_per_mm
        self.update()

    def length_mm(self) -> float:
        if self.pixels_per_mm <= 0:
            return 0.0
        budget = self.width() * 0.8 / self.pixels_per_mm
        fitting = [length for length in LENGTHS_MM if length <= budget]
        return fitting[-1] if fitting else 0.0

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt naming)
        length = self.length_mm()
        if length <= 0:
            return
        pixels = length * self.pixels_per_mm
        painter = QPainter(self)
        painter.setPen(QPen(self.colour, 2))
        y = self.height() - 5
        painter.drawLine(QPointF(4, y), QPointF(4 + pixels, y))
        for x in (4, 4 + pixels):
            painter.drawLine(QPointF(x, y - 5), QPointF(x, y))
        painter.drawText(QRectF(4, 0, pixels, y - 4), Qt.AlignmentFlag.AlignCenter, length_text(length))
        painter.end()
