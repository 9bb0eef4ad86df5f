"""The main window: patient panel (left), volume and slide tabs (centre), AI panel (right).

Opening is asynchronous: a path goes to the loader, and only a fully opened image reaches a viewer,
so nothing half-loaded is ever shown. Failures go to the message bar and the status bar, naming the
file and the reason, and the window carries on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from medviewer.catalog import audit
from medviewer.core.errors import MedviewerError
from medviewer.core.label_map import LabelMap
from medviewer.core.logs import safe_path
from medviewer.core.volume import Volume
from medviewer.io.label_maps import open_label_map
from medviewer.io.preview import OpenedImage
from medviewer.io.slide import Slide
from medviewer.ui.ai_panel import AiPanel
from medviewer.ui.loader import ImageLoader
from medviewer.ui.message_bar import MessageBar
from medviewer.ui.patient_panel import PatientPanel
from medviewer.ui.slide_view import SlideView
from medviewer.ui.volume_view import VolumeView

log = logging.getLogger(__name__)
MAX_RECENT = 10
VOLUME_TAB, SLIDE_TAB = 0, 1
ANNOTATION_FILTER = "Annotations (*.geojson *.json *.xml);;All files (*)"
OVERLAY_FILTER = "Label maps (*.nii *.nii.gz *.dcm);;All files (*)"
OPEN_FILTER = (
    "Images (*.dcm *.dicom *.ima *.nii *.nii.gz *.svs *.tif *.tiff *.ndpi *.mrxs *.scn *.vms *.bif);;All files (*)"
)


@dataclass(frozen=True)
class OverlayRequest:
    """A label map being read for ``volume``; dropped if another volume is shown when it arrives."""

    path: Path
    volume: Volume


class MainWindow(QMainWindow):
    def __init__(self, settings: QSettings) -> None:
        super().__init__()
        self.settings = settings
        self.setWindowTitle("medviewer")
        self.setAcceptDrops(True)
        self.opened: dict[Path, OpenedImage] = {}

        self.volume_view = VolumeView(settings)
        self.slide_view = SlideView(settings)
        self.slide_view.message.connect(lambda text: self.message_bar.add(text))
        self.tabs = QTabWidget()
        self.tabs.addTab(self.volume_view, "Volume")
        self.tabs.addTab(self.slide_view, "Slide")
        self.message_bar = MessageBar()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.patient_panel = PatientPanel()
        self.patient_panel.activated_path.connect(self._show_opened)
        self.ai_panel = AiPanel()
        for title, widget, area, name in (
            ("Patients", self.patient_panel, Qt.DockWidgetArea.LeftDockWidgetArea, "patientDock"),
            ("AI", self.ai_panel, Qt.DockWidgetArea.RightDockWidgetArea, "aiDock"),
            ("Measurements", self.volume_view.measurement_panel, Qt.DockWidgetArea.RightDockWidgetArea, "measureDock"),
            ("Annotations", self.slide_view.annotation_panel, Qt.DockWidgetArea.RightDockWidgetArea, "annotationDock"),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(name)
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
        self.tabifyDockWidget(self.findChild(QDockWidget, "measureDock"), self.findChild(QDockWidget, "annotationDock"))
        self.tabs.currentChanged.connect(self._raise_tool_dock)
        self.resizeDocks([self.findChild(QDockWidget, "patientDock")], [330], Qt.Orientation.Horizontal)
        self.resizeDocks([self.findChild(QDockWidget, "aiDock")], [260], Qt.Orientation.Horizontal)

        self.loader = ImageLoader(self)
        self.loader.opened.connect(self._on_opened)
        self.loader.failed.connect(self._on_failed)
        self._build_menus()
        self.statusBar().showMessage("Ready")
        self._restore_layout()
        self._raise_tool_dock(self.tabs.currentIndex())

    def _raise_tool_dock(self, tab: int) -> None:
        """Measurements beside the volume, annotations beside the slide."""
        name = "annotationDock" if tab == SLIDE_TAB else "measureDock"
        self.findChild(QDockWidget, name).raise_()

    # menus and settings -------------------------------------------------------------------------

    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        open_file = QAction("&Open file…", self, shortcut=QKeySequence.StandardKey.Open)
        open_file.triggered.connect(self._ask_open_files)
        open_folder = QAction("Open &folder…", self, shortcut=QKeySequence("Ctrl+Shift+O"))
        open_folder.triggered.connect(self._ask_open_folder)
        menu.addAction(open_file)
        menu.addAction(open_folder)
        self.recent_menu = menu.addMenu("&Recent")
        self._rebuild_recent_menu()
        menu.addSeparator()
        self.overlay_action = QAction("Open &label map overlay…", self)
        self.overlay_action.triggered.connect(self._ask_open_overlay)
        menu.addAction(self.overlay_action)
        import_annotations = QAction("&Import annotations (QuPath GeoJSON, ASAP XML)…", self)
        import_annotations.triggered.connect(self._ask_import_annotations)
        export_annotations = QAction("Export annotations as &GeoJSON…", self)
        export_annotations.triggered.connect(self._ask_export_annotations)
        menu.addAction(import_annotations)
        menu.addAction(export_annotations)
        export = QAction("&Export view as PNG…", self, shortcut=QKeySequence("Ctrl+E"))
        export.triggered.connect(lambda: self._ask_export(include_identifiers=True))
        export_anonymous = QAction("Export view as PNG &without patient details…", self)
        export_anonymous.triggered.connect(lambda: self._ask_export(include_identifiers=False))
        menu.addAction(export)
        menu.addAction(export_anonymous)
        menu.addSeparator()
        quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        menu.addAction(quit_action)
        view_menu = self.menuBar().addMenu("&View")
        self.anonymise_action = QAction("&Anonymised display", self, checkable=True)
        self.anonymise_action.setToolTip("Hide patient name, ID and dates on the views and in exports")
        self.anonymise_action.setChecked(self.volume_view.anonymised)
        self.anonymise_action.toggled.connect(self.volume_view.set_anonymised)
        view_menu.addAction(self.anonymise_action)
        reset = QAction("&Reset view", self)
        reset.triggered.connect(self.volume_view.reset_view)
        view_menu.addAction(reset)

    def recent_paths(self) -> list[str]:
        value = self.settings.value("recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _remember(self, path: Path) -> None:
        text = str(path.absolute())
        recent = [text] + [p for p in self.recent_paths() if p != text]
        self.settings.setValue("recent", recent[:MAX_RECENT])
        self.settings.setValue("last_directory", str(path.absolute().parent))
        self._rebuild_recent_menu()

    def _last_folder(self) -> str:
        """Where file dialogs start: the folder of the last file opened."""
        return str(self.settings.value("last_directory", ""))

    def _rebuild_recent_menu(self) -> None:
        self.recent_menu.clear()
        for text in self.recent_paths():
            action = self.recent_menu.addAction(text)
            action.triggered.connect(lambda _checked=False, p=text: self.open_paths([Path(p)]))
        self.recent_menu.setEnabled(bool(self.recent_paths()))

    def _restore_layout(self) -> None:
        geometry, state = self.settings.value("window/geometry"), self.settings.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def _ask_open_files(self) -> None:
        start = self._last_folder()
        names, _ = QFileDialog.getOpenFileNames(self, "Open images", start, OPEN_FILTER)
        self.open_paths([Path(n) for n in names])

    def _ask_open_folder(self) -> None:
        start = self._last_folder()
        name = QFileDialog.getExistingDirectory(self, "Open a DICOM folder", start)
        if name:
            self.open_paths([Path(name)])

    def _ask_open_overlay(self) -> None:
        if self.volume_view.volume is None:
            self.message_bar.add("Open a volume first: a label map is drawn over the volume shown.")
            return
        start = self._last_folder()
        name, _ = QFileDialog.getOpenFileName(self, "Open a label map", start, OVERLAY_FILTER)
        if name:
            self.open_overlay(Path(name))

    def _ask_import_annotations(self) -> None:
        if self.slide_view.slide is None:
            self.message_bar.add("Open a slide first: annotations are added to the slide shown.")
            return
        start = self._last_folder()
        name, _ = QFileDialog.getOpenFileName(self, "Import annotations", start, ANNOTATION_FILTER)
        if name:
            self.import_annotations(Path(name))

    def import_annotations(self, path: Path) -> None:
        try:
            count = self.slide_view.import_annotations(path)
        except MedviewerError as exc:
            self.message_bar.add(str(exc))
            return
        self.tabs.setCurrentIndex(SLIDE_TAB)
        self.statusBar().showMessage(f"Imported {count} annotation(s) from {path.name}")

    def _ask_export_annotations(self) -> None:
        if self.slide_view.document is None:
            self.message_bar.add("Open a slide first: there are no annotations to export.")
            return
        start = self._last_folder()
        name, _ = QFileDialog.getSaveFileName(self, "Export annotations", start, "GeoJSON (*.geojson *.json)")
        if name:
            try:
                self.slide_view.export_annotations(Path(name))
            except (MedviewerError, OSError) as exc:
                self.message_bar.add(f"{name}: the annotations could not be written ({exc})")
            else:
                audit.record("export", audit.path_subject(name), {"what": "annotations GeoJSON"})
                self.statusBar().showMessage(f"Saved {Path(name).name}")

    def _ask_export(self, include_identifiers: bool) -> None:
        start = self._last_folder()
        name, _ = QFileDialog.getSaveFileName(self, "Export view as PNG", start, "PNG images (*.png)")
        if name:
            path = Path(name if name.lower().endswith(".png") else name + ".png")
            if self.volume_view.export_png(str(path), include_identifiers):
                audit.record(
                    "export", audit.path_subject(path), {"what": "view PNG", "identifiers": include_identifiers}
                )
                self.statusBar().showMessage(f"Saved {path.name}")
            else:
                self.message_bar.add(f"{path}: the image could not be written")

    # opening ------------------------------------------------------------------------------------

    def open_overlay(self, path: Path) -> None:
        """Read a label map (NIfTI or DICOM SEG) for the shown volume in the background."""
        volume = self.volume_view.volume
        if volume is None:
            return
        self.statusBar().showMessage(f"Opening overlay {path.name}…")
        self.loader.submit(path, OverlayRequest(path, volume), lambda: open_label_map(path, volume))

    def open_paths(self, paths: list[Path], activate_first_only: bool = False) -> None:
        """Start opening ``paths``; the first (or each, interactively) becomes the shown image."""
        for i, path in enumerate(paths):
            self.statusBar().showMessage(f"Opening {path.name}…")
            self.loader.open(path, (path, not activate_first_only or i == 0))

    def busy(self) -> bool:
        return self.loader.pending > 0 or self.ai_panel.probing or self.slide_view.busy()

    def wait_until_idle(self, timeout_ms: int) -> bool:
        """Run the event loop until loads and the runtime probe finish; False on timeout."""
        loop = QEventLoop()
        timer = QTimer()
        timer.setInterval(50)
        timer.timeout.connect(lambda: None if self.busy() else loop.quit())
        QTimer.singleShot(timeout_ms, loop.quit)
        timer.start()
        if self.busy():
            loop.exec()
        timer.stop()
        return not self.busy()

    def _on_opened(self, request: tuple[Path, bool] | OverlayRequest, opened: OpenedImage | LabelMap) -> None:
        if isinstance(request, OverlayRequest):
            self._on_overlay(request, opened)
            return
        path, activate = request
        audit.record(
            "open", audit.path_subject(path), {"kind": "slide" if isinstance(opened.image, Slide) else "volume"}
        )
        self.opened[path] = opened
        self.patient_panel.add_image(opened)
        self._remember(path)
        for warning in getattr(opened.image, "warnings", []):
            self.message_bar.add(f"{path}: {warning}")
        if activate:
            self._show_opened(path)
        elif isinstance(opened.image, Slide) and self.slide_view.slide is None:
            self.slide_view.set_slide(opened.image, opened.preview)
        elif not isinstance(opened.image, Slide) and self.volume_view.volume is None:
            self.volume_view.set_volume(opened.image)
        self.statusBar().showMessage(f"Opened {path.name}")

    def _on_overlay(self, request: OverlayRequest, label_map: LabelMap) -> None:
        if self.volume_view.volume is not request.volume:
            self.message_bar.add(f"{request.path}: not shown, because another volume was opened meanwhile")
            return
        for warning in label_map.warnings:
            self.message_bar.add(f"{request.path}: {warning}")
        self.volume_view.set_label_map(label_map)
        self.statusBar().showMessage(f"Overlay {request.path.name}: {len(label_map.names)} label(s)")

    def _show_opened(self, path: Path) -> None:
        opened = self.opened.get(path)
        if opened is None:
            return
        self.patient_panel.select_path(path)
        if isinstance(opened.image, Slide):
            self.slide_view.set_slide(opened.image, opened.preview)
            self.tabs.setCurrentIndex(SLIDE_TAB)
        else:
            self.volume_view.set_volume(opened.image)
            self.tabs.setCurrentIndex(VOLUME_TAB)

    def _on_failed(self, request: tuple[Path, bool] | OverlayRequest, message: str) -> None:
        path = request.path if isinstance(request, OverlayRequest) else request[0]
        log.warning("open failed for %s", safe_path(path))
        audit.record("failed_open", audit.path_subject(path), {})
        self.message_bar.add(message)
        self.statusBar().showMessage(f"Could not open {path.name}")

    # drag and drop, closing ---------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt naming)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 (Qt naming)
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        self.open_paths(paths)
        event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt naming)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        self.loader.shutdown()
        self.slide_view.shutdown()
        self.ai_panel.shutdown()
        for opened in self.opened.values():
            if isinstance(opened.image, Slide):
                opened.image.close()
        super().closeEvent(event)
