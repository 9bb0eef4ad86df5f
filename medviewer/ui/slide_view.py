"""The slide browser: pyramid tiles drawn in level-0 pixels, refined as they arrive, never blank.

Everything is placed in level-0 pixel coordinates (x right, y down), as in OpenSlide and QuPath, so
tiles of any level, the tissue mask, heatmaps and annotations line up without conversion. The
slide's thumbnail lies underneath everything, then cached tiles from coarse to fine, so a place the
user jumps to shows the best pixels already decoded at once and sharpens as workers deliver.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from medviewer.annotations.asap_xml import read_asap_xml
from medviewer.annotations.autosave import Autosaver
from medviewer.annotations.class_list import load_classes
from medviewer.annotations.document import AnnotationDocument, ChangeEvent
from medviewer.annotations.geojson import read_geojson, write_geojson
from medviewer.annotations.sidecar import in_user_data, load_sidecar
from medviewer.catalog import audit
from medviewer.core.colormaps import lookup_table
from medviewer.core.display import heat_rgba, heat_scale
from medviewer.core.errors import MedviewerError
from medviewer.core.tile_grid import Pyramid, TileKey
from medviewer.core.tissue import tissue_mask
from medviewer.io.slide import Slide
from medviewer.ui.annotation_layer import AnnotationLayer, Tool
from medviewer.ui.annotation_panel import AnnotationPanel
from medviewer.ui.colour_legend import ColourLegend
from medviewer.ui.qt_images import to_qimage
from medviewer.ui.scale_bar import ScaleBar
from medviewer.ui.tile_loader import DEFAULT_CACHE_MB, TileLoader
from medviewer.ui.tool_actions import add_tool_actions

MAGNIFICATIONS = (1.25, 5.0, 10.0, 20.0, 40.0)
MICRONS_PER_SCREEN_PIXEL_AT_10X = 1.0  # the usual equivalence: 10x on screen is about 1 µm per pixel
TISSUE_RGBA = (0, 170, 90, 90)
MINIMAP_SIZE = 200
PAN_FRACTION = 0.25
AUTOSAVE_TICK_MS = 1000  # with the autosaver's 1 s delay, every edit is on disk within about 2 s


class _SlideViewBox(pg.ViewBox):
    """Wheel zooms around the cursor (pyqtgraph's default); left-drag pans unless a drawing tool takes it."""

    def __init__(self, owner: SlideView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._owner = owner

    def mouseDragEvent(self, ev: object, axis: object = None) -> None:  # noqa: N802 (Qt naming)
        if ev.button() == Qt.MouseButton.LeftButton and self._owner.left_drag_handler is not None:
            ev.accept()
            self._owner.left_drag_handler(ev)
        elif ev.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            ev.accept()
            delta = self.mapSceneToView(ev.lastScenePos()) - self.mapSceneToView(ev.scenePos())
            self.translateBy(x=delta.x(), y=delta.y())
        else:
            ev.ignore()

    def mouseClickEvent(self, ev: object) -> None:  # noqa: N802 (Qt naming)
        if self._owner.click_handler is not None and ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._owner.click_handler(ev)


class Minimap(QWidget):
    """The slide's thumbnail with the viewed rectangle; click or drag to move the view there."""

    moved = Signal(float, float)  # new centre, level-0 pixels

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.pixmap = QPixmap()
        self.slide_size = (1, 1)
        self.view_rect = QRectF()
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def set_thumbnail(self, thumbnail: np.ndarray, slide_size: tuple[int, int]) -> None:
        self.pixmap = QPixmap.fromImage(to_qimage(thumbnail)).scaled(
            MINIMAP_SIZE, MINIMAP_SIZE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        self.slide_size = slide_size
        self.resize(self.pixmap.size())
        self.update()

    def set_view_rect(self, rect: QRectF) -> None:
        self.view_rect = rect
        self.update()

    def _scale(self) -> float:
        return self.width() / self.slide_size[0]

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt naming)
        painter = QPainter(self)
        painter.drawPixmap(0, 0, self.pixmap)
        scale = self._scale()
        r = self.view_rect
        painter.setPen(QPen(QColor(20, 90, 220), 2))
        painter.drawRect(QRectF(r.x() * scale, r.y() * scale, r.width() * scale, r.height() * scale))
        painter.setPen(QPen(QColor(80, 80, 80), 1))
        painter.drawRect(self.rect().adjusted(0, 0, -1, -1))
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt naming)
        self._move_to(event.position())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt naming)
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._move_to(event.position())

    def _move_to(self, point: QPointF) -> None:
        scale = self._scale()
        self.moved.emit(point.x() / scale, point.y() / scale)


class SlideView(QWidget):
    """Emits ``message(text)`` for problems to show the user (a damaged tile, a refused edit)."""

    message = Signal(str)
    clicked = Signal(float, float)  # a click with the Move tool, in level-0 pixels (the AI panel's patch pick)

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.slide: Slide | None = None
        self.pyramid: Pyramid | None = None
        self.thumbnail: np.ndarray | None = None
        self.left_drag_handler = None
        self.click_handler = None
        cache_mb = int(settings.value("slide/cache_mb", DEFAULT_CACHE_MB)) if settings else DEFAULT_CACHE_MB
        self.loader = TileLoader(cache_mb, self)
        self.loader.loaded.connect(self._tile_arrived)
        self.loader.failed.connect(self.report)
        self.target_level = 0
        self.visible_tiles: list[TileKey] = []
        self.tile_items: dict[TileKey, pg.ImageItem] = {}

        self.graphics = pg.GraphicsView(background="w")
        self.box = _SlideViewBox(self)
        self.graphics.setCentralItem(self.box)
        self.overview = pg.ImageItem(axisOrder="row-major")
        self.overview.setZValue(-10)
        self.box.addItem(self.overview)
        self.tissue_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item = pg.ImageItem(axisOrder="row-major")
        self.detail_item = pg.ImageItem(axisOrder="row-major")
        self.heat_name = ""
        #: What the heatmap and detail show, without their style: (values, origin, cell size, name, maximum).
        self._heat: tuple | None = None
        self._detail: tuple | None = None
        for z, item in ((50, self.tissue_item), (51, self.heat_item), (52, self.detail_item)):
            item.setZValue(z)
            item.hide()
            self.box.addItem(item, ignoreBounds=True)
        self.minimap = Minimap(self.graphics)
        self.minimap.moved.connect(self.centre_on)
        self.minimap.hide()
        self.scale_bar = ScaleBar(self.graphics, colour=(20, 20, 20))
        self.scale_note = QLabel("", self.graphics)
        self.scale_note.setStyleSheet("color: rgb(90, 90, 90); background: rgba(255, 255, 255, 180);")
        self.legend = ColourLegend(self.graphics)
        self.legend.hide()
        self.caption = QLabel("Open a whole-slide image (File ▸ Open, or drop it here).")
        self.caption.setObjectName("slideCaption")
        self.autosaver: Autosaver | None = None
        self._autosave_timer = QTimer(self)
        self._autosave_timer.setInterval(AUTOSAVE_TICK_MS)
        self._autosave_timer.timeout.connect(self._autosave)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(0)
        self._refresh_timer.timeout.connect(self.refresh)
        self.box.sigRangeChanged.connect(self._view_moved)

        self.annotations = AnnotationLayer(self)
        self.annotations.selection_changed.append(self._selection_changed)
        self.annotation_panel = AnnotationPanel()
        self.annotation_panel.chosen.connect(self.show_annotation)
        self.annotation_panel.delete_requested.connect(self.annotations.delete_selected)
        self.annotation_panel.problem.connect(self.report)
        self.annotation_panel.class_box.currentTextChanged.connect(
            lambda _text: setattr(self.annotations, "current_class", self.annotation_panel.current_class())
        )
        self.toolbar = self._build_toolbar()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.caption)
        layout.addWidget(self.graphics, 1)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def _build_toolbar(self) -> QToolBar:
        bar = QToolBar()
        fit = QAction("Fit", self)
        fit.setToolTip("Show the whole slide")
        fit.triggered.connect(self.fit)
        bar.addAction(fit)
        self.magnification_actions: dict[float, QAction] = {}
        for magnification in MAGNIFICATIONS:
            action = QAction(f"{magnification:g}x", self)
            action.triggered.connect(lambda _checked=False, m=magnification: self.set_magnification(m))
            bar.addAction(action)
            self.magnification_actions[magnification] = action
        bar.addSeparator()
        self.tissue_box = QCheckBox("Tissue")
        self.tissue_box.setToolTip("Show the tissue detected on the thumbnail (Otsu threshold)")
        self.tissue_box.toggled.connect(self.show_tissue)
        bar.addWidget(self.tissue_box)
        self.associated_action = QAction("Label && macro…", self)
        self.associated_action.setToolTip("The slide's label and macro photographs; they may show patient identifiers")
        self.associated_action.triggered.connect(self.show_associated_images)
        bar.addAction(self.associated_action)
        bar.addSeparator()
        self.tool_actions = add_tool_actions(bar, self, Tool, Tool.MOVE, self.set_tool)
        bar.addSeparator()
        self.undo_action = QAction("Undo", self, shortcut=QKeySequence.StandardKey.Undo)
        self.undo_action.triggered.connect(self.undo)
        self.redo_action = QAction("Redo", self, shortcut=QKeySequence.StandardKey.Redo)
        self.redo_action.triggered.connect(self.redo)
        for action in (self.undo_action, self.redo_action):
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            bar.addAction(action)
        return bar

    # slide --------------------------------------------------------------------------------------

    def set_slide(self, slide: Slide, overview: np.ndarray) -> None:
        if slide is self.slide:
            return  # shown again from the patient panel: keep the view, the selection and the undo history
        self.close_annotations()
        self.slide = slide
        self.pyramid = Pyramid(slide.level_dimensions, slide.level_downsamples)
        self.thumbnail = overview
        self.loader.set_slide(slide)
        for key in list(self.tile_items):
            self._remove_tile(key)
        width, height = slide.dimensions
        self.overview.setImage(overview, autoLevels=False, levels=(0, 255))
        self.overview.setRect(QRectF(0, 0, width, height))
        self.tissue_box.setChecked(False)
        self.set_heatmap(None)
        self.minimap.set_thumbnail(overview, (width, height))
        self.minimap.show()
        can_magnify = self.level0_microns() is not None or slide.objective_power is not None
        for action in self.magnification_actions.values():
            action.setEnabled(can_magnify)
        self.associated_action.setEnabled(bool(slide.associated_image_names))
        mpp = f"{slide.mpp:.3g} µm/px" if slide.mpp else "no MPP in file"
        self.caption.setText(
            f"{slide.path.name}  ·  {width} × {height} px  ·  {slide.level_count} levels  ·  {mpp}  ·  {slide.vendor}"
        )
        self._open_annotations(slide)
        self._place_overlays()
        self.fit()

    @property
    def document(self) -> AnnotationDocument | None:
        return self.annotations.document

    def report(self, text: str) -> None:
        self.message.emit(text)

    # annotations --------------------------------------------------------------------------------

    def _open_annotations(self, slide: Slide) -> None:
        """Load the slide's sidecar (reporting and keeping a damaged one aside) and autosave edits to it."""
        try:
            loaded = load_sidecar(slide.path)
        except MedviewerError as exc:
            self.report(f"{exc}; annotations made now will not be saved")
            annotations, path = [], None
        else:
            for problem in loaded.problems:
                self.report(problem)
            annotations, path = loaded.annotations, loaded.path
        document = AnnotationDocument(annotations, classes=load_classes())
        self.annotations.set_document(document)
        self.annotation_panel.set_document(document, slide.mpp)
        document.changed.append(self._document_changed)
        self.autosaver = Autosaver(document, path) if path is not None else None
        self._autosave_timer.start()
        self._update_undo_actions()

    def _document_changed(self, event: ChangeEvent) -> None:
        self._update_undo_actions()

    def _autosave(self) -> None:
        result = self.autosaver.save_if_due() if self.autosaver is not None else None
        if result is not None and result.error:
            self.report(result.error)
        elif result is not None:
            audit.record("annotation_save", audit.path_subject(self.slide.path), {"annotations": len(self.document)})

    def close_annotations(self) -> None:
        """Save pending edits now (on another slide, or quitting). If the sidecar cannot be written, the
        annotations go to medviewer's data folder instead, so a full or read-only disk loses no work."""
        self._autosave_timer.stop()
        if self.autosaver is None:
            return
        result = self.autosaver.close()
        if result is not None and not result.error:
            audit.record("annotation_save", audit.path_subject(self.slide.path), {"annotations": len(self.document)})
        if result is not None and result.error:
            rescue = in_user_data(self.slide.path).with_suffix(".unsaved.geojson")
            try:
                write_geojson(rescue, self.document.annotations)
            except (OSError, MedviewerError) as exc:
                self.report(f"{result.error}; a copy could not be written to {rescue} either ({exc})")
            else:
                self.report(f"{result.error}; they were saved to {rescue} instead")
        self.autosaver = None

    def set_tool(self, tool: Tool) -> None:
        self.annotations.set_tool(tool)
        self.tool_actions[tool].setChecked(True)

    def undo(self) -> None:
        if self.document is not None and self.document.undo_description() is not None:
            self.document.undo()

    def redo(self) -> None:
        if self.document is not None and self.document.redo_description() is not None:
            self.document.redo()

    def _update_undo_actions(self) -> None:
        document = self.document
        undo = document.undo_description() if document else None
        redo = document.redo_description() if document else None
        self.undo_action.setEnabled(undo is not None)
        self.undo_action.setToolTip(f"Undo {undo}" if undo else "Nothing to undo")
        self.redo_action.setEnabled(redo is not None)
        self.redo_action.setToolTip(f"Redo {redo}" if redo else "Nothing to redo")

    def import_annotations(self, path: Path) -> int:
        """Add the annotations of a QuPath GeoJSON or ASAP XML file (one undo step per file's classes and
        shapes); returns how many were added. Classes the list lacks are added with the file's colours."""
        if self.document is None:
            raise MedviewerError(path, "open a slide first: annotations are added to the slide shown")
        reader = read_asap_xml if path.suffix.lower() == ".xml" else read_geojson
        imported = reader(path)
        for annotation in imported:
            cls = annotation.classification
            if cls is not None and self.document.class_named(cls.name) is None:
                self.document.add_class(cls.name, cls.colour)
            if annotation.id in self.document:
                annotation.id = str(uuid.uuid4())  # the same file imported twice: keep both copies
        if imported:
            self.document.add(*imported)
        return len(imported)

    def export_annotations(self, path: Path) -> None:
        if self.document is not None:
            write_geojson(path, self.document.annotations)

    def show_annotation(self, annotation_id: str) -> None:
        """Select an annotation and centre the view on it."""
        if self.document is None or annotation_id not in self.document:
            return
        self.annotations.select({annotation_id})
        x0, y0, x1, y1 = self.document.get(annotation_id).bounds()
        self.centre_on((x0 + x1) / 2, (y0 + y1) / 2)

    def _selection_changed(self, ids: set[str]) -> None:
        self.annotation_panel.selected_ids = set(ids)

    def level0_microns(self) -> float | None:
        return self.slide.mpp if self.slide is not None else None

    def fit(self) -> None:
        if self.slide is not None:
            width, height = self.slide.dimensions
            self.box.setRange(QRectF(0, 0, width, height), padding=0.02)

    def view_rect(self) -> QRectF:
        (x0, x1), (y0, y1) = self.box.viewRange()
        return QRectF(x0, y0, x1 - x0, y1 - y0)

    def level0_per_screen_pixel(self) -> float:
        width = self.box.width()
        return self.view_rect().width() / width if width > 0 else 1.0

    def centre_on(self, x: float, y: float) -> None:
        rect = self.view_rect()
        self.box.setRange(QRectF(x - rect.width() / 2, y - rect.height() / 2, rect.width(), rect.height()), padding=0)

    def set_magnification(self, magnification: float) -> None:
        """Zoom so one screen pixel shows what a microscope at ``magnification`` would (10x ≈ 1 µm/px)."""
        if self.slide is None:
            return
        microns = self.level0_microns()
        if microns is not None:
            level0_per_pixel = MICRONS_PER_SCREEN_PIXEL_AT_10X * 10 / magnification / microns
        elif self.slide.objective_power:
            level0_per_pixel = self.slide.objective_power / magnification
        else:
            return
        centre = self.view_rect().center()
        width, height = self.box.width() * level0_per_pixel, self.box.height() * level0_per_pixel
        self.box.setRange(QRectF(centre.x() - width / 2, centre.y() - height / 2, width, height), padding=0)

    # tiles --------------------------------------------------------------------------------------

    def _view_moved(self) -> None:
        """Scale bar and minimap follow at once; tiles are requested once the event queue is empty."""
        if self.slide is None:
            return
        self.minimap.set_view_rect(self.view_rect())
        self._update_scale()
        self._refresh_timer.start()

    def refresh(self) -> None:
        """Ask for the tiles the view needs and draw the best ones already decoded."""
        if self.slide is None:
            return
        rect = self.view_rect()
        w0, h0 = self.slide.dimensions
        clipped = rect.intersected(QRectF(0, 0, w0, h0))
        if clipped.isEmpty():
            return
        region = (clipped.x(), clipped.y(), clipped.width(), clipped.height())
        self.target_level = self.pyramid.level_for(self.level0_per_screen_pixel())
        self.visible_tiles, prefetch = self.pyramid.requests(self.target_level, region)
        # Tiles on screen keep their own pixels: they need no second read, even once the cache has let them go.
        self.loader.want([key for key in self.visible_tiles + prefetch if key not in self.tile_items])
        shown = {
            key
            for level in range(self.target_level, self.slide.level_count)
            for key in self.pyramid.tiles_in(level, region)
            if key in self.tile_items or self.loader.cached(key)
        }
        for key in [k for k in self.tile_items if k not in shown]:
            self._remove_tile(key)
        for key in shown - self.tile_items.keys():
            self._draw_tile(key)

    def _draw_tile(self, key: TileKey, pixels: np.ndarray | None = None) -> None:
        pixels = pixels if pixels is not None else self.loader.tile(key)
        if pixels is None:
            return
        item = pg.ImageItem(pixels, axisOrder="row-major", levels=(0, 255))
        item.setRect(QRectF(*self.pyramid.tile_rect(key)))
        item.setZValue(-key[0])  # finer levels above coarser ones
        self.box.addItem(item, ignoreBounds=True)
        self.tile_items[key] = item

    def _remove_tile(self, key: TileKey) -> None:
        item = self.tile_items.pop(key)
        item.clear()  # free the pixels now: pyqtgraph items sit in reference cycles until the collector runs
        self.box.removeItem(item)

    def _tile_arrived(self, key: TileKey, pixels: np.ndarray) -> None:
        if key[0] >= self.target_level and key not in self.tile_items:
            if QRectF(*self.pyramid.tile_rect(key)).intersects(self.view_rect()):
                self._draw_tile(key, pixels)

    def busy(self) -> bool:
        """Whether tiles are still to come: a view change whose tiles are not yet asked for counts too."""
        return self._refresh_timer.isActive() or self.loader.busy()

    def is_refined(self) -> bool:
        """Whether every visible tile of the view's level is drawn."""
        return all(key in self.tile_items for key in self.visible_tiles)

    # overlays -----------------------------------------------------------------------------------

    def show_tissue(self, shown: bool) -> None:
        if shown and self.thumbnail is not None and self.slide is not None:
            mask = tissue_mask(self.thumbnail)
            rgba = np.zeros(mask.shape + (4,), dtype=np.uint8)
            rgba[mask] = TISSUE_RGBA
            self.tissue_item.setImage(rgba, autoLevels=False, levels=(0, 255))
            self.tissue_item.setRect(QRectF(0, 0, *self.slide.dimensions))
        self.tissue_item.setVisible(shown and self.slide is not None)

    def set_heatmap(
        self,
        values: np.ndarray | None,
        origin: tuple[float, float] = (0.0, 0.0),
        patch_size: tuple[float, float] = (1.0, 1.0),
        name: str = "score",
        colormap: str = "jet",
        opacity: float = 0.5,
        threshold: float | None = None,
        maximum: float | None = None,
    ) -> None:
        """Per-patch values (rows, columns) over the slide: patch (r, c) covers level-0 pixels
        [x0 + c*pw, x0 + (c+1)*pw) x [y0 + r*ph, y0 + (r+1)*ph). Below ``threshold`` is transparent;
        colours run from the threshold to ``maximum`` (default: the largest value).

        A new heatmap is a new result, so any detail drawn over the old one is removed."""
        self.set_detail(None)
        if values is None:
            self.heat_item.hide()
            self.legend.hide()
            self.heat_name, self._heat = "", None
            return
        self.heat_name, self._heat = name, (values, origin, patch_size, name, maximum)
        self._draw_heat(self.heat_item, values, origin, patch_size, name, colormap, opacity, threshold, maximum)

    def set_detail(
        self,
        values: np.ndarray | None,
        origin: tuple[float, float] = (0.0, 0.0),
        pixel_size: tuple[float, float] = (1.0, 1.0),
        name: str = "detail",
        colormap: str = "jet",
        opacity: float = 0.6,
        threshold: float | None = None,
        maximum: float | None = None,
    ) -> None:
        """A finer map over part of the slide (a clicked patch's saliency), drawn above the heatmap, which
        stays: the reader sees why this patch scored as it did without losing the slide-wide picture. Over a
        heatmap the legend keeps the heatmap's numbers and adds the detail's name: it is the same colour scale
        when both run over the same range (probabilities and saliency, 0..1)."""
        if values is None:
            self.detail_item.hide()
            self._detail = None
            if self.heat_item.isVisible():
                self.legend.set_scale(self.heat_name, self.legend.lut, self.legend.low, self.legend.high)
            return
        self._detail = (values, origin, pixel_size, name, maximum)
        over_heat = self.heat_item.isVisible()
        title = f"{self.heat_name}; {name}" if over_heat else name
        self._draw_heat(
            self.detail_item, values, origin, pixel_size, title, colormap, opacity, threshold, maximum, not over_heat
        )

    def restyle_overlays(self, colormap: str, opacity: float, threshold: float | None, detail_opacity: float) -> None:
        """The heatmap and detail shown, drawn again in other colours, opacity or threshold (nothing when none is
        shown: a cleared overlay stays cleared)."""
        heat, detail = self._heat, self._detail  # redrawing the heatmap clears the detail: keep it to redraw
        if heat is None:
            return
        values, origin, patch_size, name, maximum = heat
        self.set_heatmap(values, origin, patch_size, name, colormap, opacity, threshold, maximum)
        if detail is not None:
            values, origin, pixel_size, name, maximum = detail
            self.set_detail(values, origin, pixel_size, name, colormap, detail_opacity, threshold, maximum)

    def _draw_heat(
        self,
        item: pg.ImageItem,
        values: np.ndarray,
        origin: tuple[float, float],
        cell: tuple[float, float],
        title: str,
        colormap: str,
        opacity: float,
        threshold: float | None,
        maximum: float | None,
        rescale_legend: bool = True,
    ) -> None:
        values = np.asarray(values, dtype=np.float32)
        low, high = heat_scale(values, threshold)
        if maximum is not None:
            high = max(float(maximum), low + 1e-6)
        lut = lookup_table(colormap)
        item.setImage(heat_rgba(values, lut, low, high), autoLevels=False, levels=(0, 255))
        rows, columns = values.shape
        item.setRect(QRectF(origin[0], origin[1], columns * cell[0], rows * cell[1]))
        item.setOpacity(float(np.clip(opacity, 0.0, 1.0)))
        item.show()
        if rescale_legend:
            self.legend.set_scale(title, lut, low, high)
        else:
            self.legend.set_scale(title, lut, self.legend.low, self.legend.high)
        self.legend.show()
        self._place_overlays()

    def show_associated_images(self) -> None:
        if self.slide is None:
            return
        dialog = QDialog(self)
        dialog.setWindowTitle(f"{self.slide.path.name}: label and macro images")
        layout = QVBoxLayout(dialog)
        caution = QLabel(
            "Caution: label and macro photographs may show patient names, numbers or barcodes. "
            "They are shown only here, on request, and never logged or exported."
        )
        caution.setWordWrap(True)
        caution.setStyleSheet("color: rgb(150, 60, 0);")
        layout.addWidget(caution)
        row = QHBoxLayout()
        for name in self.slide.associated_image_names:
            picture = QLabel()
            picture.setPixmap(
                QPixmap.fromImage(to_qimage(self.slide.associated_image(name))).scaled(
                    420, 420, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
                )
            )
            column = QVBoxLayout()
            column.addWidget(QLabel(name))
            column.addWidget(picture)
            row.addLayout(column)
        area = QWidget()
        area.setLayout(row)
        scroll = QScrollArea()
        scroll.setWidget(area)
        layout.addWidget(scroll)
        dialog.resize(900, 520)
        dialog.show()
        self.associated_dialog = dialog

    # scale, layout, keys ------------------------------------------------------------------------

    def _update_scale(self) -> None:
        microns = self.level0_microns()
        if microns is None:
            self.scale_bar.hide()
            self.scale_note.setText("No pixel size (MPP) in this file: no scale bar; lengths are in pixels")
            self.scale_note.adjustSize()
            self.scale_note.show()
        else:
            self.scale_note.hide()
            self.scale_bar.show()
            self.scale_bar.set_scale(1000.0 / (microns * self.level0_per_screen_pixel()))

    def _place_overlays(self) -> None:
        width, height, margin = self.graphics.width(), self.graphics.height(), 8
        self.minimap.move(width - self.minimap.width() - margin, margin)
        self.scale_bar.move(margin, height - self.scale_bar.height() - margin)
        self.scale_note.move(margin, height - self.scale_note.height() - margin)
        self.legend.move(width - self.legend.width() - margin, self.minimap.height() + 2 * margin)

    def resizeEvent(self, event: object) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self._place_overlays()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        steps = {
            Qt.Key.Key_Left: (-1, 0),
            Qt.Key.Key_Right: (1, 0),
            Qt.Key.Key_Up: (0, -1),
            Qt.Key.Key_Down: (0, 1),
        }
        if event.key() in steps and self.slide is not None:
            rect = self.view_rect()
            dx, dy = steps[event.key()]
            self.box.translateBy(x=dx * rect.width() * PAN_FRACTION, y=dy * rect.height() * PAN_FRACTION)
        elif event.key() == Qt.Key.Key_F:
            self.fit()
        elif event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.annotations.delete_selected()
        elif event.key() == Qt.Key.Key_Escape:
            self.set_tool(Tool.MOVE)
        else:
            super().keyPressEvent(event)

    def shutdown(self) -> None:
        self.close_annotations()
        self.loader.shutdown()
