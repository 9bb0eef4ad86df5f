"""A scale bar of a round length for any view that knows its screen pixels per millimetre.

Text and lines drawn over images carry an outline in the opposite lightness: white text alone vanishes on
bone or a bright radiograph, and dark text on a dark slide background.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

#: Bar lengths offered, in millimetres: 1-2-5 steps from 1 µm to 500 mm.
LENGTHS_MM = tuple(m * 10.0**e for e in range(-3, 3) for m in (1, 2, 5))
OUTLINE_WIDTH = 1  # pixels of outline around text
OUTLINE_OFFSETS = tuple((dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy)


def length_text(mm: float) -> str:
    return f"{mm * 1000:g} µm" if mm < 1 else f"{mm:g} mm"


def outline_colour(colour: QColor) -> QColor:
    """A mostly opaque black for light text, white for dark text."""
    return QColor(0, 0, 0, 210) if colour.lightness() > 127 else QColor(255, 255, 255, 210)


def draw_outlined_text(painter: QPainter, baseline_left: QPointF, text: str, font: QFont, colour: QColor) -> None:
    """``text`` in ``colour`` inside a one-pixel outline, so it reads on any image beneath it.

    The outline is the text drawn at the eight neighbouring pixels: unlike a stroked path, every copy keeps
    the font's hinting, so small text stays crisp."""
    painter.save()
    painter.setFont(font)
    painter.setPen(outline_colour(colour))
    for dx, dy in OUTLINE_OFFSETS:
        painter.drawText(baseline_left + QPointF(dx, dy), text)
    painter.setPen(colour)
    painter.drawText(baseline_left, text)
    painter.restore()


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

    def bar_end(self) -> float:
        """Where the drawn bar ends, in the widget's pixels from its left edge (0 when none is drawn)."""
        length = self.length_mm()
        return 4 + length * self.pixels_per_mm if length > 0 else 0.0

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
        y = self.height() - 5
        bar = QPainterPath()
        bar.moveTo(4, y - 5)
        bar.lineTo(4, y)
        bar.lineTo(4 + pixels, y)
        bar.lineTo(4 + pixels, y - 5)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.strokePath(bar, QPen(outline_colour(self.colour), 4))
        painter.strokePath(bar, QPen(self.colour, 2))
        text = length_text(length)
        metrics = painter.fontMetrics()
        left = max(0.0, 4 + (pixels - metrics.horizontalAdvance(text)) / 2)
        baseline = (y - 4) / 2 + (metrics.ascent() - metrics.descent()) / 2
        draw_outlined_text(painter, QPointF(left, baseline), text, painter.font(), self.colour)
        painter.end()
