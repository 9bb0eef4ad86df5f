"""One MPR view: a slice drawn in display millimetres with its overlays, crosshair and annotations.

The view knows nothing about the other views; it reports what the mouse does in display millimetres
(u right, v down, see ``medviewer.core.mpr``) and the multi-view container decides what that means.
Text (corner details, orientation letters) and the scale bar are child widgets over the viewport, so
they keep their size and place when the image is zoomed or panned. An empty view draws none of them.

Keys belong to the container, so a view takes keyboard focus when the mouse enters it (unless a text
field has it): a reader can press a preset number straight away. A click that only gave the view focus
(from a text field) does nothing else, so focusing never moves the crosshair or starts a measurement.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QEnterEvent,
    QFocusEvent,
    QFont,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QGraphicsEllipseItem,
    QGraphicsRectItem,
    QGraphicsSceneWheelEvent,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

from medviewer.core import mpr
from medviewer.core.measurements import Measurement, MeasurementKind
from medviewer.ui.scale_bar import OUTLINE_WIDTH, ScaleBar, draw_outlined_text

if TYPE_CHECKING:
    from pyqtgraph.GraphicsScene.mouseEvents import HoverEvent, MouseClickEvent, MouseDragEvent

CROSSHAIR_PEN = pg.mkPen((255, 200, 0, 170), width=1)
MEASURE_COLOUR = QColor(0, 230, 255)
TEXT_COLOUR = QColor(235, 235, 235)
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
EDGES = ("left", "right", "top", "bottom")


class OutlinedLabel(QLabel):
    """Plain text over an image, in light letters with a dark outline: readable on black and on bone."""

    def __init__(self, parent: QWidget, colour: QColor = TEXT_COLOUR) -> None:
        super().__init__(parent)
        self.colour = colour
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setMargin(OUTLINE_WIDTH + 1)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        """Exactly the lines as painted below, plus room for the outline."""
        metrics = self.fontMetrics()
        lines = self.text().split("\n") if self.text() else []
        width = max((metrics.horizontalAdvance(line) for line in lines), default=0)
        return QSize(width + 2 * self.margin(), len(lines) * metrics.lineSpacing() + 2 * self.margin())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt naming)
        return self.sizeHint()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt naming)
        if not self.text():
            return
        metrics = self.fontMetrics()
        right_aligned = bool(self.alignment() & Qt.AlignmentFlag.AlignRight)
        painter = QPainter(self)
        baseline = self.margin() + metrics.ascent()
        for line in self.text().split("\n"):
            left = self.width() - self.margin() - metrics.horizontalAdvance(line) if right_aligned else self.margin()
            draw_outlined_text(painter, QPointF(left, baseline), line, self.font(), self.colour)
            baseline += metrics.lineSpacing()
        painter.end()


def takes_typing(widget: QWidget | None) -> bool:
    """Whether ``widget`` is where someone types text, which hovering over an image must not interrupt."""
    if isinstance(widget, QComboBox):
        return widget.isEditable()
    return isinstance(widget, (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox))


class _SliceViewBox(pg.ViewBox):
    """Mouse grammar of radiology workstations, routed to the owning ``SliceView``.

    Wheel: slices; Ctrl+wheel: zoom around the cursor; left: the current tool; middle-drag: pan;
    right-drag: window/level.
    """

    def __init__(self, owner: SliceView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._owner = owner

    def wheelEvent(self, ev: QGraphicsSceneWheelEvent, axis: int | None = None) -> None:  # noqa: N802 (Qt naming)
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
        else:
            self._owner.step_requested.emit(-1 if ev.delta() > 0 else 1)
        ev.accept()

    def mouseClickEvent(self, ev: MouseClickEvent) -> None:  # noqa: N802 (Qt naming)
        if ev.button() == Qt.MouseButton.LeftButton and self._owner.focus_click:
            ev.accept()  # this click only brought the keyboard here
        elif ev.button() == Qt.MouseButton.LeftButton:
            point = self.mapSceneToView(ev.scenePos())
            self._owner.pressed.emit(point.x(), point.y())
            self._owner.released.emit(point.x(), point.y())
            ev.accept()

    def mouseDragEvent(self, ev: MouseDragEvent, axis: int | None = None) -> None:  # noqa: N802 (Qt naming)
        button = ev.button()
        ev.accept()
        if button == Qt.MouseButton.MiddleButton:
            delta = self.mapSceneToView(ev.lastScenePos()) - self.mapSceneToView(ev.scenePos())
            self.translateBy(x=delta.x(), y=delta.y())
        elif button == Qt.MouseButton.RightButton:
            delta = ev.scenePos() - ev.lastScenePos()
            self._owner.window_dragged.emit(delta.x(), delta.y())
        elif button == Qt.MouseButton.LeftButton:
            point = self.mapSceneToView(ev.scenePos())
            if ev.isStart():
                start = self.mapSceneToView(ev.buttonDownScenePos())
                self._owner.pressed.emit(start.x(), start.y())
            self._owner.dragged.emit(point.x(), point.y())
            if ev.isFinish():
                self._owner.released.emit(point.x(), point.y())

    def hoverEvent(self, ev: HoverEvent) -> None:  # noqa: N802 (Qt naming)
        if ev.isExit():
            self._owner.left.emit()
            return
        point = self.mapSceneToView(ev.scenePos())
        self._owner.hovered.emit(point.x(), point.y())


class SliceView(pg.GraphicsView):
    """A plane's view. Signals carry display millimetres (u, v) of the current slice."""

    pressed = Signal(float, float)
    dragged = Signal(float, float)
    released = Signal(float, float)
    hovered = Signal(float, float)
    left = Signal()
    step_requested = Signal(int)
    window_dragged = Signal(float, float)

    def __init__(self, plane: mpr.Plane, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="k")
        self.plane = plane
        self.slice_index = 0
        #: True from a mouse press that moved the keyboard focus here until its release.
        self.focus_click = False
        self.box = _SliceViewBox(self)
        self.setCentralItem(self.box)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.labels = pg.ImageItem(axisOrder="row-major")
        self.heat = pg.ImageItem(axisOrder="row-major")
        #: The file's own overlay planes (graphics and text the modality drew), above everything else drawn.
        self.overlay_planes = pg.ImageItem(axisOrder="row-major")
        for z, item in enumerate(self.image_items()):
            item.setZValue(z)
            self.box.addItem(item)
        self.h_line = pg.InfiniteLine(angle=0, movable=False, pen=CROSSHAIR_PEN)
        self.v_line = pg.InfiniteLine(angle=90, movable=False, pen=CROSSHAIR_PEN)
        for line in (self.h_line, self.v_line):
            line.setZValue(10)
            line.hide()
            self.box.addItem(line, ignoreBounds=True)
        self.preview = pg.PlotCurveItem(pen=pg.mkPen(MEASURE_COLOUR, width=1.5, style=Qt.PenStyle.DashLine))
        self.preview.setZValue(20)
        self.box.addItem(self.preview, ignoreBounds=True)
        self.corner_labels = {name: self._overlay_label() for name in CORNERS}
        self.edge_labels = {name: self._overlay_label(bold=True) for name in EDGES}
        for name in ("top_right", "bottom_right"):
            self.corner_labels[name].setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        self.scale_bar = ScaleBar(self)
        self.scale_bar.hide()
        #: Why the scale is what it is: a pixel size at the detector, or none at all.
        self.scale_note = self._overlay_label()
        self.scale_note.hide()
        self.box.sigRangeChanged.connect(self._update_scale_bar)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self._extent = QRectF()

    def image_items(self) -> tuple[pg.ImageItem, ...]:
        """Everything drawn from the slice's pixels, bottom to top."""
        return (self.image, self.labels, self.heat, self.overlay_planes)

    def _overlay_label(self, bold: bool = False) -> OutlinedLabel:
        label = OutlinedLabel(self)
        if bold:
            font = QFont(label.font())
            font.setBold(True)
            font.setPointSizeF(font.pointSizeF() * 1.15)
            label.setFont(font)
        return label

    # content ------------------------------------------------------------------------------------

    def set_geometry(self, shape: tuple[int, int, int], spacing: tuple[float, float, float], letters: dict) -> None:
        """Place the image in display millimetres and label the edges (those not in ``letters`` stay blank);
        resets zoom and pan."""
        su, sv = mpr.pixel_size(spacing, self.plane)
        rows, cols = mpr.extract(np.empty(shape, dtype=np.uint8), self.plane, 0).shape
        self._extent = QRectF(0, 0, cols * su, rows * sv)
        for item in self.image_items():
            item.clear()
        for edge, label in self.edge_labels.items():
            label.setText(letters.get(edge, ""))
        self.reset_view()
        self._place_overlays()

    def set_scale(self, known: bool, note: str) -> None:
        """A millimetre scale bar only for a real pixel size; ``note`` says what that size means (or that
        there is none), beside the bar."""
        self.scale_bar.setVisible(known)
        self.scale_note.setText(note)
        self.scale_note.setVisible(bool(note))
        self._place_overlays()

    def reset_view(self) -> None:
        if not self._extent.isEmpty():
            self.box.setRange(rect=self._extent, padding=0.02)

    def show_pixels(self, pixels: np.ndarray, levels: tuple[float, float], lut: np.ndarray | None) -> None:
        """Grey values through ``levels`` and the colour map ``lut``, or RGB bytes as they are (``lut`` None)."""
        self.image.setImage(pixels, autoLevels=False, levels=levels, lut=lut)
        self.image.setRect(self._extent)

    def show_overlay(self, item: pg.ImageItem, rgba: np.ndarray | None) -> None:
        if rgba is None:
            item.clear()
            return
        item.setImage(rgba, autoLevels=False, levels=(0, 255))
        item.setRect(self._extent)

    def set_crosshair(self, u: float, v: float, visible: bool) -> None:
        self.v_line.setPos(u)
        self.h_line.setPos(v)
        self.v_line.setVisible(visible)
        self.h_line.setVisible(visible)

    def set_corner_text(self, texts: dict[str, str]) -> None:
        for name, label in self.corner_labels.items():
            label.setText(texts.get(name, ""))
            label.adjustSize()
        self._place_overlays()

    def set_preview(self, points: list[tuple[float, float]], kind: MeasurementKind | None) -> None:
        """The dashed outline of a measurement being drawn."""
        if not points or kind is None:
            self.preview.setData([], [])
            return
        if kind in (MeasurementKind.ELLIPSE, MeasurementKind.RECTANGLE) and len(points) == 2:
            points = outline(kind, points)
        xs, ys = zip(*points, strict=True)
        self.preview.setData(list(xs), list(ys))

    def pixels_per_mm(self) -> float:
        (x0, x1), _ = self.box.viewRange()
        width = self.box.width()
        return width / (x1 - x0) if x1 > x0 and width > 0 else 0.0

    # layout of the text over the image -----------------------------------------------------------

    def _update_scale_bar(self) -> None:
        self.scale_bar.set_scale(self.pixels_per_mm())
        self._place_overlays()  # the note follows the bar's end

    def _place_overlays(self) -> None:
        width, height, margin = self.width(), self.height(), 6
        corners = self.corner_labels
        corners["top_left"].move(margin, margin)
        corners["top_right"].move(width - corners["top_right"].width() - margin, margin)
        corners["bottom_left"].move(margin, height - corners["bottom_left"].height() - margin)
        corners["bottom_right"].move(
            width - corners["bottom_right"].width() - margin, height - corners["bottom_right"].height() - margin
        )
        for label in self.edge_labels.values():
            label.adjustSize()
        edges = self.edge_labels
        edges["left"].move(margin, (height - edges["left"].height()) // 2)
        edges["right"].move(width - edges["right"].width() - margin, (height - edges["right"].height()) // 2)
        edges["top"].move((width - edges["top"].width()) // 2, margin)
        edges["bottom"].move((width - edges["bottom"].width()) // 2, height - edges["bottom"].height() - margin)
        bar, note = self.scale_bar, self.scale_note
        note.adjustSize()
        text_height = max(corners["bottom_left"].height(), corners["bottom_right"].height(), edges["bottom"].height())
        bar.move((width - bar.width()) // 2, height - bar.height() - text_height - margin)
        if bar.isHidden():
            note.move((width - note.width()) // 2, bar.y() + bar.height() - note.height())
        else:  # beside the bar's end, at the height of the bar
            note.move(bar.x() + int(bar.bar_end()) + 8, bar.y() + bar.height() - 5 - note.height() // 2)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        if not hasattr(self, "scale_bar"):
            return  # pyqtgraph resizes once inside GraphicsView.__init__, before the overlays exist
        self._update_scale_bar()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        event.ignore()  # the container owns the keys; QGraphicsView would scroll on Page Up/Down

    def take_focus(self) -> None:
        """Keyboard focus here, unless someone is typing elsewhere in the window or another window is in use."""
        if self.isActiveWindow() and not takes_typing(QApplication.focusWidget()):
            self.setFocus(Qt.FocusReason.OtherFocusReason)

    def enterEvent(self, event: QEnterEvent) -> None:  # noqa: N802 (Qt naming)
        super().enterEvent(event)
        self.take_focus()

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt naming)
        super().leaveEvent(event)
        self.left.emit()  # pyqtgraph's hover exit is missed when the mouse leaves fast

    def focusInEvent(self, event: QFocusEvent) -> None:  # noqa: N802 (Qt naming)
        super().focusInEvent(event)
        self.focus_click = event.reason() == Qt.FocusReason.MouseFocusReason

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt naming)
        super().mouseReleaseEvent(event)
        self.focus_click = False


def outline(kind: MeasurementKind, corners: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Closed polyline of an ellipse or rectangle given by two opposite corners."""
    (ua, va), (ub, vb) = corners[:2]
    if kind is MeasurementKind.RECTANGLE:
        return [(ua, va), (ub, va), (ub, vb), (ua, vb), (ua, va)]
    cu, cv, ru, rv = (ua + ub) / 2, (va + vb) / 2, abs(ub - ua) / 2, abs(vb - va) / 2
    angles = np.linspace(0, 2 * math.pi, 73)
    return [(cu + ru * math.cos(a), cv + rv * math.sin(a)) for a in angles]


class MeasurementGraphic:
    """What a finished measurement draws on its view: the shape and its value beside it."""

    def __init__(self, view: SliceView, measurement: Measurement, text: str) -> None:
        self.view = view
        self.measurement = measurement
        pen = pg.mkPen(MEASURE_COLOUR, width=2)
        points = measurement.points
        if measurement.kind is MeasurementKind.ELLIPSE or measurement.kind is MeasurementKind.RECTANGLE:
            (ua, va), (ub, vb) = points
            rect = QRectF(min(ua, ub), min(va, vb), abs(ub - ua), abs(vb - va))
            shape_cls = QGraphicsEllipseItem if measurement.kind is MeasurementKind.ELLIPSE else QGraphicsRectItem
            self.shape = shape_cls(rect)
            self.shape.setPen(pen)
            anchor = (max(ua, ub), min(va, vb))
        else:
            xs, ys = zip(*points, strict=True)
            self.shape = pg.PlotCurveItem(list(xs), list(ys), pen=pen)
            anchor = points[1] if measurement.kind is MeasurementKind.ANGLE else points[-1]
        self.label = pg.TextItem(text, color=MEASURE_COLOUR, anchor=(0, 1), fill=pg.mkBrush(0, 0, 0, 150))
        self.label.setPos(*anchor)
        for z, item in ((15, self.shape), (16, self.label)):
            item.setZValue(z)
            view.box.addItem(item, ignoreBounds=True)

    def set_visible(self, visible: bool) -> None:
        self.shape.setVisible(visible)
        self.label.setVisible(visible)

    def remove(self) -> None:
        for item in (self.shape, self.label):
            self.view.box.removeItem(item)
