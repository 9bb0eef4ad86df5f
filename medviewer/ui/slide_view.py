"""The slide browser: pyramid tiles drawn in level-0 pixels, refined as they arrive, never blank.

Everything is placed in level-0 pixel coordinates (x right, y down), as in OpenSlide and QuPath, so
tiles of any level, the tissue mask, heatmaps and annotations line up without conversion. The
slide's thumbnail lies underneath everything, then cached tiles from coarse to fine, so a place the
user jumps to shows the best pixels already decoded at once and sharpens as workers deliver.

Patches a model's result flags as outside its training data are hatched over the heatmap (in level-0
pixels, like the heatmap, and gone with it), with a note under the colour legend saying what the hatching
means: a reader must not take a flagged patch's colour for a finding.

Lengths, areas, the scale bar and the µm in the status line come from the slide's pixel size (MPP): the
file's, or, for a file without one, a pixel size a person set by hand for this very slide. That one is
kept in the settings under a keyed digest of the slide's absolute path and size (never its name, which
may be a patient's), so it comes back when the slide is opened again and is never used for another
file; wherever it shows, it is marked as set by hand.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QBrush,
    QColor,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPixmap,
    QResizeEvent,
)
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QGraphicsPathItem,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QScrollArea,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from medviewer.actions.jobs import Job, JobKind, plain_job
from medviewer.actions.slide_annotations import AnnotationSession, SaveOutcome
from medviewer.actions.trail import Problems
from medviewer.annotations.document import AnnotationDocument, ChangeEvent
from medviewer.catalog import audit
from medviewer.catalog.pseudonyms import file_alias
from medviewer.core.colormaps import lookup_table
from medviewer.core.display import heat_rgba, heat_scale
from medviewer.core.errors import MedviewerError
from medviewer.core.tile_grid import Pyramid, TileKey
from medviewer.core.tissue import tissue_mask
from medviewer.io.slide import Slide
from medviewer.ui.annotation_layer import AnnotationLayer, Tool
from medviewer.ui.annotation_panel import AnnotationPanel
from medviewer.ui.colour_legend import ColourLegend
from medviewer.ui.job_runner import JobRunner
from medviewer.ui.qt_images import to_qimage
from medviewer.ui.scale_bar import ScaleBar
from medviewer.ui.slide_overlays import SlideDetail, SlideHeatmap
from medviewer.ui.tile_loader import DEFAULT_CACHE_MB, TileLoader
from medviewer.ui.tool_actions import add_tool_actions

if TYPE_CHECKING:
    from pyqtgraph.GraphicsScene.mouseEvents import MouseClickEvent, MouseDragEvent

MAGNIFICATIONS = (1.25, 5.0, 10.0, 20.0, 40.0)
MICRONS_PER_SCREEN_PIXEL_AT_10X = 1.0  # the usual equivalence: 10x on screen is about 1 µm per pixel
PIXEL_SIZE_SETTINGS_GROUP = "slide_pixel_size"  # pixel sizes set by hand, one key per slide
LARGEST_PIXEL_SIZE_UM = 100.0  # far coarser than any slide scanner; a typo beyond it is refused
TISSUE_RGBA = (0, 170, 90, 90)
MINIMAP_SIZE = 200
PAN_FRACTION = 0.25
#: Hatching over patches outside a model's training data: diagonal lines, each a dark line beside a light one
#: so they read over pale glass and dark heatmap colours alike, at a fixed spacing on screen (Qt's pattern
#: brushes are cosmetic) so they read at every magnification, and an outline around each flagged area.
OOD_HATCH_RGBA = (15, 15, 15, 235)
OOD_HATCH_LIGHT_RGBA = (255, 255, 255, 200)
OOD_NOTE = "Hatched: outside what the model was trained on"
AUTOSAVE_TICK_MS = 1000  # with the autosaver's 1 s delay, every edit is on disk within about 2 s


class _SlideViewBox(pg.ViewBox):
    """Wheel zooms around the cursor (pyqtgraph's default); left-drag pans unless a drawing tool takes it."""

    def __init__(self, owner: SlideView) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._owner = owner

    def mouseDragEvent(self, ev: MouseDragEvent, axis: object = None) -> None:  # noqa: N802 (Qt naming)
        if ev.button() == Qt.MouseButton.LeftButton and self._owner.left_drag_handler is not None:
            ev.accept()
            self._owner.left_drag_handler(ev)
        elif ev.button() in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            ev.accept()
            delta = self.mapSceneToView(ev.lastScenePos()) - self.mapSceneToView(ev.scenePos())
            self.translateBy(x=delta.x(), y=delta.y())
        else:
            ev.ignore()

    def mouseClickEvent(self, ev: MouseClickEvent) -> None:  # noqa: N802 (Qt naming)
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


def pixel_size_key(slide: Slide) -> str:
    """The settings key of a slide's hand-set pixel size: an HMAC, under this installation's key, of the
    file's absolute path and size. Another file, or another file put at the same path, gets another key,
    and nobody can test a guessed (patient) name against the settings file."""
    path = slide.path.expanduser().absolute()
    subject = f"{path}\0{path.stat().st_size}".encode()
    digest = hmac.new(audit.installation_key(), subject, hashlib.sha256).hexdigest()[:32]
    return f"{PIXEL_SIZE_SETTINGS_GROUP}/{digest}"


def ask_pixel_size(parent: QWidget, current: float | None) -> float | None:
    """Ask for µm per level-0 pixel; None when cancelled, 0 to forget the one set before."""
    value, ok = QInputDialog.getDouble(
        parent,
        "Set pixel size",
        "This file does not record its pixel size (MPP).\n"
        "Micrometres per pixel at full resolution (e.g. 0.25 for a 40x scan, 0.5 for 20x);\n"
        "0 forgets a pixel size set before:",
        current or 0.25,
        0.0,
        LARGEST_PIXEL_SIZE_UM,
        4,
    )
    return value if ok else None


class _HatchItem(QGraphicsPathItem):
    """The flagged cells' outline, hatched: painted in device pixels, so the lines are as far apart and as
    thick at 1.25x as at 40x, and a light line runs beside each dark one."""

    def paint(self, painter: QPainter, option: object, widget: QWidget | None = None) -> None:
        device = painter.worldTransform().map(self.path())
        painter.save()
        painter.resetTransform()
        painter.setPen(Qt.PenStyle.NoPen)
        for colour, offset in ((OOD_HATCH_LIGHT_RGBA, 1), (OOD_HATCH_RGBA, 0)):
            painter.setBrushOrigin(offset, 0)
            painter.setBrush(QBrush(QColor(*colour), Qt.BrushStyle.BDiagPattern))
            painter.drawPath(device)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for colour, width in ((OOD_HATCH_LIGHT_RGBA, 3.0), (OOD_HATCH_RGBA, 1.5)):
            painter.setPen(QPen(QColor(*colour), width))
            painter.drawPath(device)
        painter.restore()


class SlideView(QWidget):
    """Emits ``message(text)`` for problems to show the user (a damaged tile, a refused edit)."""

    message = Signal(str)
    annotations_exported = Signal(Path)
    clicked = Signal(float, float)  # a click with the Move tool, in level-0 pixels (the AI panel's patch pick)

    def __init__(
        self, settings: QSettings | None = None, parent: QWidget | None = None, jobs: JobRunner | None = None
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.jobs = jobs if jobs is not None else JobRunner(self)
        #: The catalog file the annotation files are listed in, or None: set by the window.
        self.catalog: Path | None = None
        self.slide: Slide | None = None
        self.pyramid: Pyramid | None = None
        self.thumbnail: np.ndarray | None = None
        self.left_drag_handler: Callable[[MouseDragEvent], None] | None = None
        self.click_handler: Callable[[MouseClickEvent], None] | None = None
        #: µm per level-0 pixel set by hand for the slide shown (only when its file has none), else None.
        self.manual_mpp: float | None = None
        #: Asks for a pixel size (parent, current) -> µm/px, 0 to forget, None if cancelled; tests replace it.
        self.ask_pixel_size: Callable[[QWidget, float | None], float | None] = ask_pixel_size
        #: File names are shown as keyed aliases: they are often patient names or barcodes.
        self.anonymised = bool(settings.value("view/anonymised", False, type=bool)) if settings else False
        self._cursor: tuple[float, float] | None = None  # the mouse's last place over the view, level-0 px
        # QSettings gives an int back, or the str an ini file holds; its stubs say only ``object``.
        cache_mb = (
            int(cast("int | str", settings.value("slide/cache_mb", DEFAULT_CACHE_MB))) if settings else DEFAULT_CACHE_MB
        )
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
        #: What the heatmap and detail show, without their style, to draw them again in another.
        self._heat: SlideHeatmap | None = None
        self._detail: SlideDetail | None = None
        #: The heatmap's cells outside the model's training data, hatched over it and its detail.
        self.ood_item = _HatchItem()
        self.ood_cells: list[tuple[int, int]] = []  # (row, column) of each hatched cell
        for z, item in ((50, self.tissue_item), (51, self.heat_item), (52, self.detail_item), (53, self.ood_item)):
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
        self.ood_note = QLabel(OOD_NOTE, self.graphics)
        self.ood_note.setObjectName("oodHatchNote")
        self.ood_note.setWordWrap(True)
        self.ood_note.setStyleSheet(
            "color: rgb(120, 20, 20); background: rgba(255, 255, 255, 220); border: 1px solid rgb(120, 20, 20); "
            "padding: 2px;"
        )
        self.ood_note.hide()
        self.caption = QLabel("Open a whole-slide image (File ▸ Open, or drop it here).")
        self.caption.setObjectName("slideCaption")
        self.status = QLabel("")
        self.status.setObjectName("slideStatus")
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.session: AnnotationSession | None = None
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
        layout.addWidget(self.status)
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
        self.pixel_size_action = QAction("Set pixel size…", self)
        self.pixel_size_action.setToolTip("For a slide whose file does not record its pixel size (MPP)")
        self.pixel_size_action.setEnabled(False)
        self.pixel_size_action.triggered.connect(self.ask_for_pixel_size)
        bar.addAction(self.pixel_size_action)
        bar.addSeparator()
        self.tool_actions = add_tool_actions(bar, self, Tool, Tool.MOVE, self.set_tool)
        bar.addSeparator()
        self.undo_action = QAction("Undo", self)
        self.undo_action.setShortcuts(_key_sequences(QKeySequence.StandardKey.Undo, "Ctrl+Z"))
        self.undo_action.triggered.connect(self.undo)
        self.redo_action = QAction("Redo", self)
        self.redo_action.setShortcuts(_key_sequences(QKeySequence.StandardKey.Redo, "Ctrl+Shift+Z", "Ctrl+Y"))
        self.redo_action.triggered.connect(self.redo)
        for action in (self.undo_action, self.redo_action):
            # On the view itself, not only its toolbar: a widget-with-children shortcut fires only while the
            # focus is inside a widget the action was added to, and the focus is on the slide, not the bar.
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(action)
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
        self.associated_action.setEnabled(bool(slide.associated_image_names))
        self.manual_mpp = self._remembered_pixel_size(slide) if slide.mpp is None else None
        self.pixel_size_action.setEnabled(slide.mpp is None)
        self._cursor = None
        self._open_annotations(slide)
        self._show_pixel_size()
        self._place_overlays()
        self.fit()

    @property
    def document(self) -> AnnotationDocument | None:
        return self.annotations.document

    def report(self, text: str) -> None:
        self.message.emit(text)

    def file_label(self) -> str:
        """The slide's file name, or under the anonymised display the alias the patient panel shows for it."""
        if self.slide is None:
            return ""
        return file_alias("Slide", str(self.slide.path.absolute())) if self.anonymised else self.slide.path.name

    def set_anonymised(self, anonymised: bool) -> None:
        """Show the file's alias instead of its name (in the caption and the label and macro dialog)."""
        self.anonymised = anonymised
        self._update_caption()
        dialog = getattr(self, "associated_dialog", None)
        if dialog is not None:
            dialog.setWindowTitle(f"{self.file_label()}: label and macro images")

    def _update_caption(self) -> None:
        if self.slide is None:
            return
        width, height = self.slide.dimensions
        self.caption.setText(
            f"{self.file_label()}  ·  {width} × {height} px  ·  {self.slide.level_count} levels  ·  "
            f"{self.pixel_size_text()}  ·  {self.slide.vendor}"
        )

    # pixel size ---------------------------------------------------------------------------------

    def level0_microns(self) -> float | None:
        """µm per level-0 pixel: the file's, else one set by hand for this slide, else None."""
        if self.slide is None:
            return None
        return self.slide.mpp or self.manual_mpp

    def pixel_size_by_hand(self) -> bool:
        return self.slide is not None and not self.slide.mpp and self.manual_mpp is not None

    def pixel_size_text(self) -> str:
        microns = self.level0_microns()
        if microns is None:
            return "no MPP in file"
        return f"{microns:.4g} µm/px" + (" (pixel size set by hand)" if self.pixel_size_by_hand() else "")

    def ask_for_pixel_size(self) -> None:
        if self.slide is None or self.slide.mpp:
            self.report("The pixel size can be set by hand only for a slide whose file does not record one")
            return
        value = self.ask_pixel_size(self, self.manual_mpp)
        if value is not None:
            self.set_pixel_size_by_hand(value or None)

    def set_pixel_size_by_hand(self, microns: float | None) -> None:
        """Give the slide shown, whose file has no MPP, this pixel size (µm per level-0 pixel), remembered
        for this slide only; None forgets it. Scale bar, magnification, lengths and areas follow."""
        if self.slide is None:
            raise ValueError("no slide is shown")
        if self.slide.mpp:
            raise MedviewerError(self.slide.path, "the file records its pixel size, which is not set by hand")
        if microns is not None and not (math.isfinite(microns) and 0 < microns <= LARGEST_PIXEL_SIZE_UM):
            raise ValueError(f"a pixel size must be above 0 and at most {LARGEST_PIXEL_SIZE_UM:g} µm, not {microns}")
        self.manual_mpp = microns
        if self.settings is not None:
            key = pixel_size_key(self.slide)
            if microns is None:
                self.settings.remove(key)
            else:
                self.settings.setValue(key, repr(float(microns)))
            self.settings.sync()
        self._pixel_size_changed()

    def _remembered_pixel_size(self, slide: Slide) -> float | None:
        if self.settings is None:
            return None
        try:
            value = float(cast("str | float", self.settings.value(pixel_size_key(slide), "")))
        except (TypeError, ValueError, OSError):
            return None  # never set, or not a number: no pixel size rather than a wrong one
        return value if math.isfinite(value) and 0 < value <= LARGEST_PIXEL_SIZE_UM else None

    def _pixel_size_changed(self) -> None:
        microns, by_hand = self.level0_microns(), self.pixel_size_by_hand()
        self.annotations.set_pixel_size(microns, by_hand)
        self.annotation_panel.set_pixel_size(microns, by_hand)
        self._show_pixel_size()

    def _show_pixel_size(self) -> None:
        """Caption, magnification buttons, scale bar and status line, for the pixel size now known."""
        can_magnify = self._level0_per_pixel_at_1x() is not None
        for action in self.magnification_actions.values():
            action.setEnabled(can_magnify)
        self._update_caption()
        self._update_scale()
        self._update_status()

    # annotations --------------------------------------------------------------------------------

    def _open_annotations(self, slide: Slide) -> None:
        """Start the slide's annotation session: its sidecar read (a damaged one reported and kept aside), its
        edits autosaved by the timer through the job runner's write lane."""
        session = AnnotationSession(slide.path, self.catalog)
        for problem in session.opening_problems:
            self.report(problem)
        document = session.document
        microns, by_hand = self.level0_microns(), self.pixel_size_by_hand()
        self.annotations.set_document(document, microns, by_hand)
        self.annotation_panel.set_document(document, microns, by_hand)
        document.changed.append(self._document_changed)
        self.session = session
        self._autosave_timer.start()
        self._update_undo_actions()
        self.jobs.submit(plain_job(JobKind.SAVE, "Listing the annotations", session.list_sidecar), self._report_all)

    def _document_changed(self, event: ChangeEvent) -> None:
        self._update_undo_actions()

    def _autosave(self) -> None:
        session = self.session
        snapshot = session.due_save() if session is not None else None
        if session is None or snapshot is None:
            return
        self.jobs.submit(
            plain_job(JobKind.SAVE, "Saving the annotations", lambda: session.write_save(snapshot)),
            lambda outcome: self._saved(session, outcome),
        )

    def _saved(self, session: AnnotationSession, outcome: SaveOutcome) -> None:
        session.settle(outcome)
        if outcome.result.error:
            self.report(outcome.result.error)
        self._report_all(outcome.problems)

    def close_annotations(self) -> None:
        """Save pending edits (on another slide, or quitting), after any save already under way. If the sidecar
        cannot be written, the annotations go to medviewer's data folder instead, so a full or read-only disk
        loses no work."""
        self._autosave_timer.stop()
        session, self.session = self.session, None
        snapshot = session.closing_save() if session is not None else None
        if session is None or snapshot is None:
            return
        self.jobs.submit(
            plain_job(JobKind.SAVE, "Saving the annotations", lambda: session.write_save(snapshot, last=True)),
            lambda outcome: self._report_all(outcome.problems),
        )

    def _report_all(self, problems: Problems) -> None:
        for problem in problems.messages:
            self.report(problem)

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
        undo = document.undo_description() if document is not None else None  # an empty document is falsy
        redo = document.redo_description() if document is not None else None
        self.undo_action.setEnabled(undo is not None)
        self.undo_action.setToolTip(f"Undo {undo}" if undo else "Nothing to undo")
        self.redo_action.setEnabled(redo is not None)
        self.redo_action.setToolTip(f"Redo {redo}" if redo else "Nothing to redo")

    def import_annotations(self, path: Path) -> int:
        """Add the annotations of a QuPath GeoJSON or ASAP XML file (one undo step); returns how many were
        added, and says what was not added as it stood (see ``AnnotationSession.import_file``)."""
        if self.session is None:
            raise MedviewerError(path, "open a slide first: annotations are added to the slide shown")
        outcome = self.session.import_file(path)
        for note in outcome.notes:
            self.report(note)
        return outcome.summary.added

    def export_annotations(self, path: Path) -> Job[tuple[Path, Problems]]:
        """Write the annotations as QuPath GeoJSON (``.geojson`` appended when the name has neither that suffix
        nor ``.json``) on the write lane; ``annotations_exported(path)`` when written, else a message."""
        session = self.session
        if session is None:
            raise MedviewerError(path, "open a slide first: there are no annotations to export")
        snapshot = session.export_snapshot(path)
        job = plain_job(JobKind.EXPORT, f"Exporting {snapshot.path.name}", lambda: session.write_export(snapshot))
        self.jobs.submit(job, self._exported, on_failed=self.report)
        return job

    def _exported(self, written: tuple[Path, Problems]) -> None:
        path, problems = written
        self._report_all(problems)
        self.annotations_exported.emit(path)

    def show_annotation(self, annotation_id: str) -> None:
        """Select an annotation and centre the view on it."""
        if self.document is None or annotation_id not in self.document:
            return
        self.annotations.select({annotation_id})
        x0, y0, x1, y1 = self.document.get(annotation_id).bounds()
        self.centre_on((x0 + x1) / 2, (y0 + y1) / 2)

    def _selection_changed(self, ids: set[str]) -> None:
        self.annotation_panel.selected_ids = set(ids)

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

    def _level0_per_pixel_at_1x(self) -> tuple[float, str] | None:
        """Level-0 pixels per screen pixel at 1x, and what that rests on. From the objective power when the
        file gives it (QuPath's rule: at the scan's own power one screen pixel shows one level-0 pixel); else
        from the pixel size, by the convention that 10x shows about 1 µm per screen pixel; else None."""
        if self.slide is None:
            return None
        if self.slide.objective_power:
            return float(self.slide.objective_power), "objective"
        microns = self.level0_microns()
        if microns is not None:
            return MICRONS_PER_SCREEN_PIXEL_AT_10X * 10 / microns, "pixel size"
        return None

    def magnification(self) -> float | None:
        """The magnification the view shows now (see ``_level0_per_pixel_at_1x``), or None when unknown."""
        at_1x = self._level0_per_pixel_at_1x()
        return at_1x[0] / self.level0_per_screen_pixel() if at_1x is not None else None

    def set_magnification(self, magnification: float) -> None:
        """Zoom so one screen pixel shows what a microscope at ``magnification`` would."""
        at_1x = self._level0_per_pixel_at_1x()
        if at_1x is None:
            return
        level0_per_pixel = at_1x[0] / magnification
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
        self._update_status()
        self._refresh_timer.start()

    def refresh(self) -> None:
        """Ask for the tiles the view needs and draw the best ones already decoded."""
        pyramid = self.pyramid
        if self.slide is None or pyramid is None:
            return
        rect = self.view_rect()
        w0, h0 = self.slide.dimensions
        clipped = rect.intersected(QRectF(0, 0, w0, h0))
        if clipped.isEmpty():
            return
        region = (clipped.x(), clipped.y(), clipped.width(), clipped.height())
        self.target_level = pyramid.level_for(self.level0_per_screen_pixel())
        self.visible_tiles, prefetch = pyramid.requests(self.target_level, region)
        # Tiles on screen keep their own pixels: they need no second read, even once the cache has let them go.
        self.loader.want([key for key in self.visible_tiles + prefetch if key not in self.tile_items])
        shown = {
            key
            for level in range(self.target_level, self.slide.level_count)
            for key in pyramid.tiles_in(level, region)
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
        assert self.pyramid is not None, "tiles come only for a slide shown, whose pyramid is set with it"
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
        if self.pyramid is not None and key[0] >= self.target_level and key not in self.tile_items:
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
        flagged: np.ndarray | None = None,
    ) -> None:
        """Per-patch values (rows, columns) over the slide: patch (r, c) covers level-0 pixels
        [x0 + c*pw, x0 + (c+1)*pw) x [y0 + r*ph, y0 + (r+1)*ph). Below ``threshold`` is transparent;
        colours run from the threshold to ``maximum`` (default: the largest value). ``flagged`` (bool, rows x
        columns): the cells outside the model's training data, hatched over the heatmap.

        A new heatmap is a new result, so any detail drawn over the old one is removed."""
        self.set_detail(None)
        if values is None:
            self.heat_item.hide()
            self.legend.hide()
            self.heat_name, self._heat = "", None
            self._hatch(None, origin, patch_size)
            return
        self.heat_name, self._heat = name, SlideHeatmap(values, origin, patch_size, name, maximum, flagged)
        self._draw_heat(self.heat_item, values, origin, patch_size, name, colormap, opacity, threshold, maximum)
        self._hatch(flagged, origin, patch_size)

    def _hatch(self, flagged: np.ndarray | None, origin: tuple[float, float], cell: tuple[float, float]) -> None:
        """Hatch the ``flagged`` cells (one rectangle each, merged into one outline per flagged area)."""
        cells = [] if flagged is None else [(int(r), int(c)) for r, c in np.argwhere(np.asarray(flagged, bool))]
        self.ood_cells = cells
        if not cells:
            self.ood_item.hide()
            self.ood_note.hide()
            return
        path = QPainterPath()
        path.setFillRule(Qt.FillRule.WindingFill)
        width, height = cell
        for row, column in cells:
            path.addRect(QRectF(origin[0] + column * width, origin[1] + row * height, width, height))
        self.ood_item.setPath(path.simplified())
        self.ood_item.show()
        self.ood_note.adjustSize()
        self.ood_note.show()
        self._place_overlays()

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
        self._detail = SlideDetail(values, origin, pixel_size, name, maximum)
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
        self.set_heatmap(
            heat.values, heat.origin, heat.cell, heat.caption, colormap, opacity, threshold, heat.maximum, heat.flagged
        )
        if detail is not None:
            self.set_detail(
                detail.values, detail.origin, detail.pixel, detail.caption, colormap, detail_opacity, threshold,
                detail.maximum,
            )

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
        dialog.setWindowTitle(f"{self.file_label()}: label and macro images")
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
            self.scale_note.setText(
                "No pixel size (MPP) in this file: no scale bar; lengths are in pixels (Set pixel size… gives one)"
            )
            self.scale_note.adjustSize()
            self.scale_note.show()
        else:
            self.scale_bar.show()
            self.scale_bar.set_scale(1000.0 / (microns * self.level0_per_screen_pixel()))
            self.scale_note.setText(f"Pixel size set by hand: {microns:.4g} µm/px")
            self.scale_note.adjustSize()
            self.scale_note.setVisible(self.pixel_size_by_hand())
        self._place_overlays()

    # status line --------------------------------------------------------------------------------

    def _mouse_moved(self, scene_position: QPointF) -> None:
        if self.slide is None:
            return
        point = self.box.mapSceneToView(scene_position)
        self._cursor = (point.x(), point.y())
        self._update_status()

    def _update_status(self) -> None:
        """Magnification, and where the mouse is in level-0 pixels and (with a pixel size) in µm."""
        if self.slide is None:
            self.status.setText("")
            return
        magnification, at_1x = self.magnification(), self._level0_per_pixel_at_1x()
        if magnification is None or at_1x is None:
            parts = ["magnification unknown (no objective power or pixel size)"]
        elif at_1x[1] == "objective":
            parts = [f"{magnification:.1f}x"]
        else:
            parts = [f"{magnification:.1f}x (from the pixel size: 10x = 1 µm per screen pixel)"]
        width, height = self.slide.dimensions
        if self._cursor is not None and 0 <= self._cursor[0] < width and 0 <= self._cursor[1] < height:
            x, y = self._cursor
            parts.append(f"x {math.floor(x):,}  y {math.floor(y):,} px")
            microns = self.level0_microns()
            if microns is not None:
                by_hand = " (pixel size set by hand)" if self.pixel_size_by_hand() else ""
                parts.append(f"x {x * microns:,.1f}  y {y * microns:,.1f} µm{by_hand}")
        self.status.setText("  ·  ".join(parts))

    def _place_overlays(self) -> None:
        width, height, margin = self.graphics.width(), self.graphics.height(), 8
        self.minimap.move(width - self.minimap.width() - margin, margin)
        self.scale_bar.move(margin, height - self.scale_bar.height() - margin)
        note_bottom = height - margin - (0 if self.scale_bar.isHidden() else self.scale_bar.height())
        self.scale_note.move(margin, note_bottom - self.scale_note.height())
        self.legend.move(width - self.legend.width() - margin, self.minimap.height() + 2 * margin)
        note_width = max(self.legend.width(), 160)
        self.ood_note.setFixedWidth(note_width)
        self.ood_note.setFixedHeight(self.ood_note.heightForWidth(note_width))
        self.ood_note.move(width - note_width - margin, self.legend.y() + self.legend.height() + 4)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt naming)
        super().resizeEvent(event)
        self._place_overlays()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        steps: dict[int, tuple[int, int]] = {  # keyed by int: ``QKeyEvent.key()`` is one
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


def _key_sequences(standard: QKeySequence.StandardKey, *extra: str) -> list[QKeySequence]:
    """The platform's keys for an edit plus those pathologists expect from QuPath and ASAP on every platform."""
    sequences = list(QKeySequence.keyBindings(standard))
    for text in extra:
        sequence = QKeySequence(text)
        if sequence not in sequences:
            sequences.append(sequence)
    return sequences
