"""Annotation tools on the slide view: drawing, selecting, moving, vertex editing, undo and redo.

The ``AnnotationDocument`` (medviewer.annotations) is the model and records every edit as an undoable
change; this layer turns mouse gestures into those edits and redraws the annotations an edit names.
Shapes are graphics items in level-0 pixels drawn with cosmetic pens, so outlines stay one or two
screen pixels wide at every zoom. A line (the Ruler tool's) carries a label with its length, in µm from
the slide's pixel size, or in pixels, saying so, when the slide has none.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, ParamSpec, Protocol

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, SignalInstance
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsPathItem,
    QStyleOptionGraphicsItem,
    QWidget,
)

from medviewer.annotations.document import AnnotationDocument, ChangeEvent
from medviewer.annotations.model import (
    Annotation,
    AnnotationClass,
    AnnotationEditError,
    AnnotationKind,
    AnnotationProperties,
)

if TYPE_CHECKING:
    from pyqtgraph import ViewBox
    from pyqtgraph.GraphicsScene.mouseEvents import MouseClickEvent, MouseDragEvent

PICK_RADIUS_PX = 6  # screen pixels within which a click picks an outline, point or handle
HANDLE_RADIUS_PX = 4
UNCLASSIFIED_COLOUR = (255, 255, 0)
SELECTED_COLOUR = QColor(0, 200, 255)
ANNOTATION_Z = 100
LABEL_OFFSET_PX = 10  # screen pixels between a line's end and its length label
MINIMUM_RULER_PX = 1.0  # a ruler drag shorter than this (level-0 px) is a slip, not a measurement

#: A drag in progress: annotations being moved, one vertex (annotation id, vertex index), a shape being
#: drawn, or the view being panned.
_Drag = (
    tuple[Literal["move"], set[str]] | tuple[Literal["vertex"], tuple[str, int]] | tuple[Literal["draw", "pan"], None]
)
_EditArgs = ParamSpec("_EditArgs")


class Tool(enum.Enum):
    MOVE = "Move"
    RECTANGLE = "Rectangle"
    ELLIPSE = "Ellipse"
    POLYGON = "Polygon"
    FREEHAND = "Freehand"
    POINT = "Point"
    RULER = "Ruler"


def length_text(length_px: float, mpp: float | None, by_hand: bool = False) -> str:
    """A length as a person reads it off a ruler: µm from the pixel size, else pixels, saying why."""
    if mpp is None:
        return f"{length_px:,.1f} px (no pixel size)"
    return f"{length_px * mpp:,.1f} µm" + (" (pixel size set by hand)" if by_hand else "")


def shape_path(annotation: Annotation) -> QPainterPath:
    """The outline of an annotation (every ring of every part; lines open; points as small circles)."""
    path = QPainterPath()
    path.setFillRule(Qt.FillRule.OddEvenFill)
    if annotation.kind is AnnotationKind.POINTS:
        return path  # points are drawn as screen-sized markers (``AnnotationLayer._marker``)
    closed = annotation.kind is not AnnotationKind.LINE
    for part in annotation.parts():
        for ring in part:
            path.moveTo(QPointF(*ring[0]))
            for x, y in ring[1:]:
                path.lineTo(QPointF(x, y))
            if closed:
                path.closeSubpath()
    return path


def _pen(colour: QColor, width: float) -> QPen:
    pen = QPen(colour, width)
    pen.setCosmetic(True)
    return pen


class LengthLabel(QGraphicsItem):
    """Dark text on a pale box beside a point, at a fixed screen size: a length stays legible over tissue
    at every zoom."""

    def __init__(self, text: str = "", colour: QColor = SELECTED_COLOUR) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setZValue(ANNOTATION_Z + 40)
        self.font = QFont()
        self.font.setPointSizeF(9.5)
        self.colour = colour
        self.text = ""
        self._box = QRectF()
        self.set_text(text)

    def set_text(self, text: str) -> None:
        self.prepareGeometryChange()
        self.text = text
        size = QFontMetricsF(self.font).boundingRect(text).size()
        self._box = QRectF(LABEL_OFFSET_PX, LABEL_OFFSET_PX, size.width() + 8, size.height() + 4)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt naming)
        return self._box.adjusted(-1, -1, 1, 1)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        painter.setPen(QPen(self.colour, 1.5))
        painter.setBrush(QColor(255, 255, 255, 225))
        painter.drawRoundedRect(self._box, 3, 3)
        painter.setFont(self.font)
        painter.setPen(QColor(20, 20, 20))
        painter.drawText(self._box, Qt.AlignmentFlag.AlignCenter, self.text)


class SlideCanvas(Protocol):
    """What the layer needs of the view it draws on (a ``SlideView``): the view box in level-0 pixels, the
    hooks its mouse gestures go through, its click signal and its status line."""

    click_handler: Callable[[MouseClickEvent], None] | None
    left_drag_handler: Callable[[MouseDragEvent], None] | None

    @property
    def box(self) -> ViewBox: ...

    @property
    def clicked(self) -> SignalInstance: ...

    def level0_per_screen_pixel(self) -> float: ...

    def report(self, text: str) -> None: ...


class AnnotationLayer:
    """Draws a document's annotations on a ``SlideView`` and edits them with the current tool."""

    def __init__(self, view: SlideCanvas) -> None:
        self.view = view
        self.document: AnnotationDocument | None = None
        self.tool = Tool.MOVE
        self.current_class: str | None = None
        #: The slide's µm per level-0 pixel (None when unknown) and whether a person set it: for length labels.
        self.mpp: float | None = None
        self.mpp_by_hand = False
        self.selected: set[str] = set()
        #: Called with the selected ids whenever the selection changes (the list panel follows it).
        self.selection_changed: list[Callable[[set[str]], None]] = []
        self.items: dict[str, list[QGraphicsItem]] = {}
        self.handle_items: list[QGraphicsItem] = []
        self._drawing: list[tuple[float, float]] = []
        self._drag: _Drag | None = None
        self.preview = QGraphicsPathItem()
        self.preview.setPen(_pen(SELECTED_COLOUR, 1.5))
        self.preview.setZValue(ANNOTATION_Z + 50)
        view.box.addItem(self.preview, ignoreBounds=True)
        self.preview_label = LengthLabel()
        self.preview_label.hide()
        view.box.addItem(self.preview_label, ignoreBounds=True)
        view.click_handler = self._click
        view.left_drag_handler = self._left_drag

    # document -----------------------------------------------------------------------------------

    def set_document(
        self, document: AnnotationDocument | None, mpp: float | None = None, by_hand: bool = False
    ) -> None:
        """Show ``document``, its lines labelled with lengths from ``mpp`` (see ``set_pixel_size``)."""
        self.mpp, self.mpp_by_hand = mpp, by_hand
        for annotation_id in list(self.items):
            self._remove_items(annotation_id)
        self._clear_handles()
        self._drawing.clear()
        self._drag = None
        self._clear_preview()
        self.document = document
        self._set_selected(set())
        if document is not None:
            document.changed.append(self._on_changed)
            for annotation in document.annotations:
                self._draw(annotation)

    def _on_changed(self, event: ChangeEvent) -> None:
        document = self._shown()
        ids = event.annotation_ids if not event.classes_changed else {a.id for a in document.annotations}
        for annotation_id in ids | set(self.items) - {a.id for a in document.annotations}:
            self._remove_items(annotation_id)
            if annotation_id in document:
                self._draw(document.get(annotation_id))
        if not all(annotation_id in document for annotation_id in self._dragged_ids()):
            self._drag = None  # its annotation went away mid-drag (undo, delete): the drag ends
        self._set_selected(self.selected & {a.id for a in document.annotations})

    def _shown(self) -> AnnotationDocument:
        """The document shown: edits reach the layer only from it, and gestures only while there is one."""
        assert self.document is not None, "no document is shown"
        return self.document

    def _dragged_ids(self) -> set[str]:
        """The annotations a move or vertex drag holds (none for a drawing or a pan)."""
        drag = self._drag
        if drag is not None and drag[0] == "move":
            return drag[1]
        if drag is not None and drag[0] == "vertex":
            return {drag[1][0]}
        return set()

    def set_pixel_size(self, mpp: float | None, by_hand: bool) -> None:
        """Relabel every line for a new pixel size (one set by hand, or forgotten)."""
        self.mpp, self.mpp_by_hand = mpp, by_hand
        if self.document is not None:
            for annotation in self.document.annotations:
                if annotation.kind is AnnotationKind.LINE:
                    self._remove_items(annotation.id)
                    self._draw(annotation)

    def length_text(self, length_px: float) -> str:
        return length_text(length_px, self.mpp, self.mpp_by_hand)

    def colour_of(self, annotation: Annotation) -> QColor:
        rgb = annotation.classification.colour if annotation.classification else UNCLASSIFIED_COLOUR
        return QColor(*rgb)

    def _draw(self, annotation: Annotation) -> None:
        selected = annotation.id in self.selected
        colour = SELECTED_COLOUR if selected else self.colour_of(annotation)
        items: list[QGraphicsItem] = []
        if annotation.kind is AnnotationKind.POINTS:
            for x, y in annotation.vertices:
                items.append(self._marker(x, y, colour, filled=True))
        else:
            item = QGraphicsPathItem(shape_path(annotation))
            item.setPen(_pen(colour, 2.5 if selected else 2.0))
            if annotation.kind is not AnnotationKind.LINE:
                fill = QColor(colour)
                fill.setAlpha(40)
                item.setBrush(QBrush(fill))
            items.append(item)
        if annotation.kind is AnnotationKind.LINE:
            label = LengthLabel(self.length_text(annotation.perimeter()), colour)
            label.setPos(QPointF(*annotation.vertices[-1]))
            items.append(label)
        for shown in items:
            if not isinstance(shown, LengthLabel):  # labels keep their place above every shape
                shown.setZValue(ANNOTATION_Z + (10 if selected else 0))
            self.view.box.addItem(shown, ignoreBounds=True)
        self.items[annotation.id] = items

    def _marker(self, x: float, y: float, colour: QColor, filled: bool) -> QGraphicsItem:
        """A circle of a fixed screen size at (x, y) (it ignores the view's zoom)."""
        radius = HANDLE_RADIUS_PX if not filled else HANDLE_RADIUS_PX + 1
        marker = QGraphicsEllipseItem(QRectF(-radius, -radius, 2 * radius, 2 * radius))
        marker.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        marker.setPos(QPointF(x, y))
        marker.setPen(_pen(QColor(0, 0, 0), 1))
        marker.setBrush(QBrush(colour if filled else QColor(255, 255, 255)))
        return marker

    def _remove_items(self, annotation_id: str) -> None:
        for item in self.items.pop(annotation_id, []):
            self.view.box.removeItem(item)

    def _clear_handles(self) -> None:
        for item in self.handle_items:
            self.view.box.removeItem(item)
        self.handle_items.clear()

    def _draw_handles(self) -> None:
        """Vertex handles of the one selected annotation, when exactly one is selected and editable."""
        self._clear_handles()
        if len(self.selected) != 1 or self.document is None:
            return
        annotation = self.document.get(next(iter(self.selected)))
        if annotation.locked:
            return
        for x, y in annotation.handles():
            marker = self._marker(x, y, SELECTED_COLOUR, filled=False)
            marker.setZValue(ANNOTATION_Z + 30)
            self.view.box.addItem(marker, ignoreBounds=True)
            self.handle_items.append(marker)

    # selection ----------------------------------------------------------------------------------

    def select(self, ids: set[str]) -> None:
        changed = self.selected ^ ids
        self._set_selected(set(ids))
        for annotation_id in changed:
            document = self._shown()  # a selection is only ever of a document's annotations
            if annotation_id in document:
                self._remove_items(annotation_id)
                self._draw(document.get(annotation_id))

    def _set_selected(self, ids: set[str]) -> None:
        """The one place the selection changes, so the list panel never acts on a stale one."""
        self.selected = ids
        self._draw_handles()
        for callback in self.selection_changed:
            callback(set(ids))

    def delete_selected(self) -> None:
        if self.document is not None and self.selected:
            self.document.remove(*self.selected)

    # gestures -----------------------------------------------------------------------------------

    def set_tool(self, tool: Tool) -> None:
        self.tool = tool
        self._drawing.clear()
        self._clear_preview()

    def _clear_preview(self) -> None:
        self.preview.setPath(QPainterPath())
        self.preview_label.hide()

    def _tolerance(self) -> float:
        return PICK_RADIUS_PX * self.view.level0_per_screen_pixel()

    def _current_class(self) -> AnnotationClass | None:
        return self._shown().class_named(self.current_class) if self.current_class else None

    def _classification(self) -> AnnotationProperties:
        cls = self._current_class()
        return {"classification": cls} if cls is not None else {}

    def _click(self, ev: MouseClickEvent) -> None:
        if self.document is None:
            return
        point = self.view.box.mapSceneToView(ev.scenePos())
        x, y = point.x(), point.y()
        if self.tool is Tool.POINT:
            cls = self._current_class()
            self.document.add_point(x, y, cls.name if cls is not None else None)
        elif self.tool is Tool.POLYGON:
            self._polygon_click(x, y, ev.double())
        elif self.tool is Tool.MOVE:
            self._select_click(x, y, ev)
            self.view.clicked.emit(x, y)

    def _select_click(self, x: float, y: float, ev: MouseClickEvent) -> None:
        document = self._shown()
        tolerance = self._tolerance()
        if ev.double() and len(self.selected) == 1:
            annotation = document.get(next(iter(self.selected)))
            edge = annotation.nearest_edge(x, y, tolerance)
            if edge is not None and not annotation.locked:
                document.insert_vertex(annotation.id, edge, x, y)
                return
        if ev.modifiers() & Qt.KeyboardModifier.ShiftModifier and len(self.selected) == 1:
            annotation = document.get(next(iter(self.selected)))
            handle = annotation.nearest_handle(x, y, tolerance)
            if handle is not None and annotation.kind not in (AnnotationKind.RECTANGLE, AnnotationKind.ELLIPSE):
                try:
                    document.delete_vertex(annotation.id, handle)
                except AnnotationEditError as exc:
                    self.view.report(str(exc))
                return
        hits = document.annotations_at(x, y, tolerance)
        self.select({hits[0].id} if hits else set())

    def _polygon_click(self, x: float, y: float, double: bool) -> None:
        if double:  # the click before it already placed this vertex
            if len(self._drawing) >= 3:
                self._finish_polygon(freehand=False)
            return
        if len(self._drawing) >= 3 and np.hypot(x - self._drawing[0][0], y - self._drawing[0][1]) <= self._tolerance():
            self._finish_polygon(freehand=False)
            return
        self._drawing.append((x, y))
        self._show_preview(closed=False)

    def _finish_polygon(self, freehand: bool) -> None:
        points = self._drawing
        self._drawing = []
        self._clear_preview()
        if len(points) >= 3:
            self._shown().add(Annotation.polygon(points, freehand=freehand, **self._classification()))

    def _show_preview(self, closed: bool) -> None:
        path = QPainterPath()
        if self._drawing:
            path.moveTo(QPointF(*self._drawing[0]))
            for x, y in self._drawing[1:]:
                path.lineTo(QPointF(x, y))
            if closed:
                path.closeSubpath()
        self.preview.setPath(path)

    def _left_drag(self, ev: MouseDragEvent) -> None:
        if self.document is None:
            return
        point = self.view.box.mapSceneToView(ev.scenePos())
        x, y = point.x(), point.y()
        if ev.isStart():
            start = self.view.box.mapSceneToView(ev.buttonDownScenePos())
            self._start_drag(start.x(), start.y())
        drag: _Drag = self._drag or ("pan", None)
        if drag[0] == "pan":
            box = self.view.box
            delta = box.mapSceneToView(ev.lastScenePos()) - box.mapSceneToView(ev.scenePos())
            box.translateBy(x=delta.x(), y=delta.y())
        elif drag[0] == "move":
            last = self.view.box.mapSceneToView(ev.lastScenePos())
            self._edit(self.document.move, drag[1], x - last.x(), y - last.y(), continuing=not ev.isStart())
        elif drag[0] == "vertex":
            annotation_id, index = drag[1]
            self._edit(self.document.move_vertex, annotation_id, index, x, y, continuing=not ev.isStart())
        elif drag[0] == "draw":
            self._drag_draw(x, y)
        if ev.isFinish():
            if drag[0] == "draw" and self._drag is not None:
                self._finish_drawn_shape()
            self._drag = None

    def _edit(self, operation: Callable[_EditArgs, None], *args: _EditArgs.args, **kwargs: _EditArgs.kwargs) -> None:
        """Apply a drag step; if the document refuses it (the annotation was locked or removed meanwhile),
        the drag ends and the reason is shown."""
        try:
            operation(*args, **kwargs)
        except AnnotationEditError as exc:
            self._drag = None
            self.view.report(str(exc))

    def _start_drag(self, x: float, y: float) -> None:
        if self.tool in (Tool.RECTANGLE, Tool.ELLIPSE, Tool.FREEHAND, Tool.RULER):
            self._drawing = [(x, y)]
            self._drag = ("draw", None)
            return
        if self.tool is not Tool.MOVE:
            self._drag = ("pan", None)
            return
        document = self._shown()
        tolerance = self._tolerance()
        if len(self.selected) == 1:
            annotation = document.get(next(iter(self.selected)))
            handle = annotation.nearest_handle(x, y, tolerance)
            if handle is not None and not annotation.locked:
                self._drag = ("vertex", (annotation.id, handle))
                return
        hits = [a for a in document.annotations_at(x, y, tolerance) if a.id in self.selected]
        movable = [a.id for a in hits if not a.locked]
        self._drag = ("move", set(self.selected)) if movable else ("pan", None)

    def _drag_draw(self, x: float, y: float) -> None:
        if self.tool is Tool.FREEHAND:
            self._drawing.append((x, y))
            self._show_preview(closed=True)
            return
        (x0, y0) = self._drawing[0]
        self._drawing = [(x0, y0), (x, y)]
        if self.tool is Tool.RULER:
            path = QPainterPath(QPointF(x0, y0))
            path.lineTo(QPointF(x, y))
            self.preview.setPath(path)
            self.preview_label.set_text(self.length_text(float(np.hypot(x - x0, y - y0))))
            self.preview_label.setPos(QPointF(x, y))
            self.preview_label.show()
            return
        probe = (Annotation.rectangle if self.tool is Tool.RECTANGLE else Annotation.ellipse)(x0, y0, x, y)
        self.preview.setPath(shape_path(probe))

    def _finish_drawn_shape(self) -> None:
        points = self._drawing
        self._clear_preview()
        if self.tool is Tool.FREEHAND:
            self._finish_polygon(freehand=True)
            return
        self._drawing = []
        (x0, y0), (x1, y1) = points[0], points[-1]
        if self.tool is Tool.RULER:
            if np.hypot(x1 - x0, y1 - y0) >= MINIMUM_RULER_PX:
                self._shown().add(Annotation.line(points, **self._classification()))
            return
        if abs(x1 - x0) < 1 or abs(y1 - y0) < 1:
            return
        make = Annotation.rectangle if self.tool is Tool.RECTANGLE else Annotation.ellipse
        self._shown().add(make(x0, y0, x1, y1, **self._classification()))
