"""The main window: patient panel (left), volume and slide tabs (centre), AI panel (right).

Every action is a ``medviewer.actions`` function run as a job by the window's job runner: opening is
asynchronous, and only a fully opened image reaches a viewer, so nothing half-loaded is ever shown.
Failures go to the message bar and the status bar, naming the file and the reason, and the window carries
on. DICOM and slides the user opens are also added to the catalog (headers only, in the background), so
the patient panel lists them with their history. The window's own thread reads the catalog for the panel
but writes no file and runs no model: saves, exports, imports and runs are jobs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, cast

from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from medviewer.actions import catalog_import, catalog_view, measurements, opening
from medviewer.actions.catalog_view import CatalogView
from medviewer.actions.jobs import Job, JobKind, plain_job
from medviewer.actions.model_runs import ModelRun
from medviewer.actions.opening import Opened
from medviewer.actions.trail import Problems, identity_of, record_event
from medviewer.ai.stored_results import load_result, results_folder
from medviewer.annotations.measurement_store import MeasurementSidecar, load_measurements, series_identity
from medviewer.catalog import ImportReport, audit, catalog_path
from medviewer.catalog.browse import AiResultEntry, series_key, slide_key
from medviewer.catalog.pseudonyms import file_alias, pseudonym
from medviewer.core.errors import MedviewerError
from medviewer.core.label_map import LabelMap
from medviewer.core.logs import safe_path
from medviewer.core.patient import display_name
from medviewer.core.volume import Volume
from medviewer.io import formats
from medviewer.io.dicom_kind import DicomKind
from medviewer.io.dicom_stacks import SeriesInfo
from medviewer.io.preview import DerivedObject, OpenedImage, OpenedReport
from medviewer.io.series_listing import SeriesListing
from medviewer.io.slide import Slide
from medviewer.io.thumbnails import ThumbnailCache
from medviewer.ui.ai_panel import AiPanel
from medviewer.ui.job_runner import JobRunner
from medviewer.ui.message_bar import MessageBar
from medviewer.ui.patient_panel import PanelEntry, PatientPanel
from medviewer.ui.report_panel import ReportPanel
from medviewer.ui.series_chooser import SeriesChooser
from medviewer.ui.shortcuts import ShortcutsDialog
from medviewer.ui.slide_overlays import SlideDetail, SlideHeatmap
from medviewer.ui.slide_view import SlideView
from medviewer.ui.volume_view import VolumeView

if TYPE_CHECKING:
    from PySide6.QtGui import QImage

log = logging.getLogger(__name__)
CATALOG_JOBS = (JobKind.IMPORT, JobKind.REBUILD_CATALOG, JobKind.CHECK_MISSING)
MAX_RECENT = 10
#: An absolute path in a message: up to the ": " (or the end) that follows it, spaces in names included.
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^/:\n]+/)+[^/:\n]*?(?=: |:$|\n|$)")
VOLUME_TAB, SLIDE_TAB = 0, 1
ANNOTATION_FILTER = "Annotations (*.geojson *.json *.xml);;All files (*)"
REPORT_FILTER = "DICOM files (*.dcm);;All files (*)"
NO_SERIES_TO_REPORT = "Open a DICOM series first: its measurements are exported as a DICOM SR."


@dataclass(frozen=True)
class OpenRequest:
    """An image being opened: ``key`` names it among the open images (a path, or a catalog series)."""

    key: str
    path: Path
    activate: bool
    from_catalog: bool = False


@dataclass(frozen=True)
class ShownVolume:
    """The volume on screen: where it came from (for messages and the audit) and where its measurements go."""

    source: Path
    audit_subject: str
    #: None when its measurements cannot be kept (the message bar said why).
    sidecar: MeasurementSidecar | None


@dataclass(frozen=True)
class ListRequest:
    """A folder or DICOMDIR being listed before anything is opened, so a person can choose a series (only
    for the image to be shown: one opened in the background takes its largest series, as before)."""

    path: Path


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
        self.opened: dict[str, OpenedImage] = {}
        self.shown_key: str | None = None
        #: Paths the user opened, as given and absolute: hidden from messages under the anonymised display.
        self._named_paths: set[str] = set()
        self.series_chooser: SeriesChooser | None = None
        #: Every background job of the window but the tile loader's reads.
        self.jobs = JobRunner(self)

        self.volume_view = VolumeView(settings)
        self.slide_view = SlideView(settings, jobs=self.jobs)
        self.slide_view.annotations_exported.connect(
            lambda path: self.statusBar().showMessage(f"Saved {self._file_label(path)}")
        )
        self.slide_view.message.connect(lambda text: self.message_bar.add(text))
        self.tabs = QTabWidget()
        self.tabs.addTab(self.volume_view, "Volume")
        self.tabs.addTab(self.slide_view, "Slide")
        self.report_panel = ReportPanel()  # a report is read like a document, in the room the images have
        self.tabs.addTab(self.report_panel, "Report")
        self.message_bar: MessageBar = MessageBar()  # typed here: the lambda above reads it first
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.patient_panel = PatientPanel(jobs=self.jobs)
        self.patient_panel.open_requested.connect(self.open_entry)
        self.patient_panel.result_requested.connect(self._open_kept_result)
        self.patient_panel.import_requested.connect(self._ask_import_folder)
        self.patient_panel.cancel_import.connect(lambda: self.jobs.cancel(JobKind.IMPORT))
        self.patient_panel.refreshed.connect(self._request_thumbnails)
        #: Segmentations and structure sets waiting for the series they were drawn on, by that series' key.
        self._pending_overlays: dict[str, Path] = {}
        #: The last folder listed for the series chooser: where a chosen SEG finds its series first.
        self._listing: SeriesListing | None = None
        self.ai_panel = AiPanel(settings, jobs=self.jobs)
        #: A kept AI result chosen in the patient panel, by image key, shown once its image is.
        self._chosen_results: dict[str, AiResultEntry] = {}
        self.ai_panel.heatmap_ready.connect(self._show_heatmap)
        self.ai_panel.run_finished.connect(self._run_finished)
        self.ai_panel.slice_chosen.connect(self._go_to_slice)
        self.ai_panel.slide_heatmap_ready.connect(self._show_slide_heatmap)
        self.ai_panel.slide_detail_ready.connect(self._show_slide_detail)
        self.ai_panel.overlay_style_changed.connect(self._restyle_overlays)
        self.slide_view.clicked.connect(self.ai_panel.patch_clicked)
        self.shown_volume: ShownVolume | None = None
        self.volume_view.measurements_changed.connect(self._save_measurements)
        self.volume_view.crosshair_moved.connect(
            lambda: self.ai_panel.set_slice(int(round(self.volume_view.crosshair[0])))
        )
        #: The side panels' docks, by object name (the name the window state is saved under).
        self.docks: dict[str, QDockWidget] = {}
        for title, widget, area, name in (
            ("Patients", self.patient_panel, Qt.DockWidgetArea.LeftDockWidgetArea, "patientDock"),
            ("AI", self.ai_panel, Qt.DockWidgetArea.RightDockWidgetArea, "aiDock"),
            ("Measurements", self.volume_view.measurement_panel, Qt.DockWidgetArea.RightDockWidgetArea, "measureDock"),
            ("Annotations", self.slide_view.annotation_panel, Qt.DockWidgetArea.RightDockWidgetArea, "annotationDock"),
            ("Segments", self.volume_view.segment_panel, Qt.DockWidgetArea.RightDockWidgetArea, "segmentDock"),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(name)
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[name] = dock
        self.tabifyDockWidget(self.docks["measureDock"], self.docks["annotationDock"])
        self.tabifyDockWidget(self.docks["annotationDock"], self.docks["segmentDock"])
        self.tabs.currentChanged.connect(self._raise_tool_dock)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.tabs.currentChanged.connect(
            lambda tab: self.ai_panel.set_shown(self.slide_view.slide if tab == SLIDE_TAB else self.volume_view.volume)
        )
        self.resizeDocks([self.docks["patientDock"]], [330], Qt.Orientation.Horizontal)
        self.resizeDocks([self.docks["aiDock"]], [260], Qt.Orientation.Horizontal)
        # The AI panel's results and plots need the height more than the measurement and annotation lists.
        self.resizeDocks(
            [self.docks["aiDock"], self.docks["measureDock"]],
            [650, 300],
            Qt.Orientation.Vertical,
        )

        self.catalog_file = catalog_path()
        #: What the patient panel and the window read of the catalog; None while there is no usable catalog.
        self.catalog: CatalogView | None = None
        self._closing = False  # set when the window closes: a job ending afterwards changes nothing
        self._check_again = False  # a missing-file check asked for while one runs: files may have gone since
        self.thumbnail_cache = ThumbnailCache()
        self._thumbnails_asked: set[str] = set()
        self._build_menus()
        self.statusBar().showMessage("Ready")
        self._restore_layout()
        self._raise_tool_dock(self.tabs.currentIndex())
        self.set_anonymised(self.volume_view.anonymised)  # every part follows the setting kept from last time
        self._open_catalog()

    def _raise_tool_dock(self, tab: int) -> None:
        """Measurements beside the volume, annotations beside the slide."""
        name = "annotationDock" if tab == SLIDE_TAB else "measureDock"
        self.docks[name].raise_()

    # menus and settings -------------------------------------------------------------------------

    def _build_menus(self) -> None:
        menu = self.menuBar().addMenu("&File")
        open_file = QAction("&Open file…", self, shortcut=QKeySequence(QKeySequence.StandardKey.Open))
        open_file.triggered.connect(self._ask_open_files)
        open_folder = QAction("Open &folder…", self, shortcut=QKeySequence("Ctrl+Shift+O"))
        open_folder.triggered.connect(self._ask_open_folder)
        menu.addAction(open_file)
        menu.addAction(open_folder)
        self.recent_menu = menu.addMenu("&Recent")
        self._rebuild_recent_menu()
        menu.addSeparator()
        import_folder = QAction("Import &folder into the catalog…", self)
        import_folder.triggered.connect(self._ask_import_folder)
        import_files = QAction("Import files or a &DICOMDIR into the catalog…", self)
        import_files.triggered.connect(self._ask_import_files)
        self.copy_action = QAction("&Copy imported files into the managed store", self, checkable=True)
        self.copy_action.setToolTip("Off: files stay where they are and are referenced in place")
        self.copy_action.setChecked(bool(self.settings.value("catalog/copy_to_store", False, type=bool)))
        self.copy_action.toggled.connect(lambda on: self.settings.setValue("catalog/copy_to_store", on))
        rebuild_action = QAction("&Rebuild the catalog from its files…", self)
        rebuild_action.triggered.connect(self._confirm_rebuild)
        for action in (import_folder, import_files, self.copy_action, rebuild_action):
            menu.addAction(action)
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
        export_report = QAction("Export &measurements as DICOM SR…", self)
        export_report.triggered.connect(self._ask_export_measurements)
        menu.addAction(export_report)
        export = QAction("&Export view as PNG…", self, shortcut=QKeySequence("Ctrl+E"))
        export.triggered.connect(lambda: self._ask_export(include_identifiers=True))
        export_anonymous = QAction("Export view as PNG &without patient details…", self)
        export_anonymous.triggered.connect(lambda: self._ask_export(include_identifiers=False))
        menu.addAction(export)
        menu.addAction(export_anonymous)
        menu.addSeparator()
        quit_action = QAction("&Quit", self, shortcut=QKeySequence(QKeySequence.StandardKey.Quit))
        quit_action.triggered.connect(self.close)
        menu.addAction(quit_action)
        view_menu = self.menuBar().addMenu("&View")
        self.anonymise_action = QAction("&Anonymised display", self, checkable=True)
        self.anonymise_action.setToolTip(
            "Show stable pseudonyms instead of patient names and IDs, and hide dates, in the panel, the title, "
            "the views and exports"
        )
        self.anonymise_action.setChecked(self.volume_view.anonymised)
        self.anonymise_action.toggled.connect(self.set_anonymised)
        view_menu.addAction(self.anonymise_action)
        reset = QAction("&Reset view", self)
        reset.triggered.connect(self.volume_view.reset_view)
        view_menu.addAction(reset)
        view_menu.addSeparator()
        # a closed panel comes back from here (Qt keeps each dock's own show/hide action)
        for dock in self.findChildren(QDockWidget):
            view_menu.addAction(dock.toggleViewAction())
        view_menu.addSeparator()
        view_menu.addAction(self.slide_view.pixel_size_action)
        help_menu = self.menuBar().addMenu("&Help")
        shortcuts = QAction("&Keyboard shortcuts", self, shortcut=QKeySequence("F1"))
        shortcuts.triggered.connect(self.show_shortcuts)
        help_menu.addAction(shortcuts)

    def show_shortcuts(self) -> None:
        self.shortcuts_dialog = ShortcutsDialog(self)
        self.shortcuts_dialog.open()

    def set_anonymised(self, anonymised: bool) -> None:
        self.volume_view.set_anonymised(anonymised)
        self.slide_view.set_anonymised(anonymised)
        self.patient_panel.set_anonymised(anonymised)
        self.message_bar.set_rewrite(self._hide_file_names if anonymised else None)
        self.ai_panel.rewrite = self._hide_file_names if anonymised else None
        if self.report_panel.document is not None and self.report_panel.path is not None:
            self.report_panel.show_report(self.report_panel.document, self._file_label(self.report_panel.path))
        self._rebuild_recent_menu()
        self._update_title()
        if anonymised:
            self.statusBar().clearMessage()  # it may name a file opened before, and file names can be names

    def _tab_changed(self, tab: int) -> None:
        """The title and the problem strip follow what the tab shows: the report, or the image."""
        on_report = self.tabs.widget(tab) is self.report_panel and self.report_panel.path is not None
        self.message_bar.show_for(f"report:{self.report_panel.path}" if on_report else self.shown_key)
        self._update_title()

    def _update_title(self) -> None:
        """``medviewer — patient — image``; the patient is a pseudonym under the anonymised display."""
        if self.tabs.currentWidget() is self.report_panel and self.report_panel.path is not None:
            self.setWindowTitle(f"medviewer — report {self._file_label(self.report_panel.path)}")
            return
        opened = self.opened.get(self.shown_key) if self.shown_key else None
        if opened is None:
            self.setWindowTitle("medviewer")
            return
        parts = ["medviewer"]
        patient = getattr(opened.image, "patient", None)
        if patient is not None and (patient.patient_id or patient.name):
            if self.volume_view.anonymised:
                parts.append(pseudonym(patient.patient_id, patient.name).name)
            else:
                parts.append(display_name(patient.name) if patient.name else patient.patient_id)
        image = opened.image
        what = f"{image.modality} {image.description}".strip() if isinstance(image, Volume) else ""
        parts.append(what or self._file_label(opened.path))
        self.setWindowTitle(" — ".join(parts))

    def recent_paths(self) -> list[str]:
        # A list of paths, or one path (QSettings gives a one-item list back so); its stubs say only ``object``.
        value = cast("str | list[str] | None", self.settings.value("recent", []))
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

    def _hide_file_names(self, text: str) -> str:
        """``text`` with every file or folder medviewer opened named by its alias: under the anonymised
        display, messages keep saying which file is meant without showing a name that may be a patient's."""
        for shown in sorted(self._named_paths, key=len, reverse=True):
            text = re.sub(rf"(?<![\w.-]){re.escape(shown)}(?![\w.-])", self._file_label(Path(shown)), text)
        # any other absolute path (a file inside an opened folder, a series found in the catalog)
        text = ABSOLUTE_PATH.sub(lambda match: self._file_label(Path(match.group(0))), text)
        for name in sorted({Path(p).name for p in self._named_paths}, key=len, reverse=True):
            text = re.sub(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", "(name hidden)", text)
        return text

    def _rebuild_recent_menu(self) -> None:
        """File ▸ Recent, with each path as its alias under the anonymised display."""
        self.recent_menu.clear()
        anonymised = self.volume_view.anonymised
        for text in self.recent_paths():
            action = self.recent_menu.addAction(self._file_label(Path(text)) if anonymised else text)
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
        names, _ = QFileDialog.getOpenFileNames(self, "Open images", start, formats.open_filter())
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
        name, _ = QFileDialog.getOpenFileName(self, "Open a label map", start, formats.label_map_filter())
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
        self.statusBar().showMessage(f"Imported {count} annotation(s) from {self._file_label(path)}")

    def _ask_export_annotations(self) -> None:
        if self.slide_view.document is None:
            self.message_bar.add("Open a slide first: there are no annotations to export.")
            return
        start = self._last_folder()
        name, _ = QFileDialog.getSaveFileName(self, "Export annotations", start, "GeoJSON (*.geojson *.json)")
        if name:
            self.slide_view.export_annotations(Path(name))  # written on the write lane; the status bar says when

    def _ask_export(self, include_identifiers: bool) -> None:
        start = self._last_folder()
        name, _ = QFileDialog.getSaveFileName(self, "Export view as PNG", start, "PNG images (*.png)")
        if name:
            self.export_view(Path(name if name.lower().endswith(".png") else name + ".png"), include_identifiers)

    def export_view(self, path: Path, include_identifiers: bool) -> None:
        """The views as shown, grabbed here and written as a PNG on the write lane, then recorded as an export."""
        image = self.volume_view.grab_views(include_identifiers)
        details = {"what": "view PNG", "identifiers": include_identifiers}
        job = plain_job(JobKind.EXPORT, f"Writing {path.name}", lambda: _write_png(image, path, details), path=path)
        self.jobs.submit(job, lambda problems: self._view_exported(path, problems), self.message_bar.add)

    def _view_exported(self, path: Path, problems: Problems) -> None:
        self._report_problems(problems)
        self.statusBar().showMessage(f"Saved {self._file_label(path)}")

    # opening ------------------------------------------------------------------------------------

    def open_overlay(self, path: Path) -> None:
        """Read a label map (NIfTI or DICOM SEG) for the shown volume in the background."""
        volume = self.volume_view.volume
        if volume is None:
            return
        self.statusBar().showMessage(f"Opening overlay {self._file_label(path)}…")
        request = OverlayRequest(path, volume)
        self.jobs.submit(
            opening.overlay_job(path, volume),
            lambda label_map: self._on_overlay(request, label_map),
            lambda message: self._on_failed(request, message),
        )

    def open_paths(self, paths: list[Path], activate_first_only: bool = False) -> None:
        """Start opening ``paths``; the first (or each, interactively) becomes the shown image."""
        for i, path in enumerate(paths):
            self._named_paths.update((str(path), str(path.absolute())))
            self.statusBar().showMessage(f"Opening {self._file_label(path)}…")
            activate = not activate_first_only or i == 0
            if activate and (path.is_dir() or formats.is_dicomdir_name(path)):
                listed = ListRequest(path)
                self.jobs.submit(
                    opening.listing_job(path),
                    partial(self._on_listed, listed),
                    partial(self._on_failed, listed),
                )
            else:
                self._open(OpenRequest(str(path.absolute()), path, activate=activate), opening.open_job(path))

    def _open(self, request: OpenRequest, job: Job[Opened]) -> None:
        self.jobs.submit(
            job, lambda opened: self._on_opened(request, opened), lambda message: self._on_failed(request, message)
        )

    def _on_listed(self, request: ListRequest, listing: SeriesListing) -> None:
        """A folder's only series opens at once; several (or images beside other objects) open the chooser."""
        path = request.path
        self._listing = listing
        if not listing.needs_choice:
            if listing.images:
                self._open(OpenRequest(str(path.absolute()), path, activate=True), opening.open_job(path))
            else:
                self._open_object(path, listing.series[0])
            return
        self.statusBar().showMessage(f"{self._file_label(path)} holds several series: choose one")
        self.series_chooser = SeriesChooser(listing, self._file_label(path), self)
        self.series_chooser.chosen.connect(lambda info: self._open_chosen(path, info))
        self.series_chooser.open()

    def _open_chosen(self, path: Path, info: SeriesInfo) -> None:
        if not DicomKind(info.kind).shows_pixels:
            self._open_object(path, info)
            return
        self.statusBar().showMessage(f"Opening {info.description or info.modality or 'the series'}…")
        request = OpenRequest(str(path.absolute()), path, activate=True)
        self._open(request, opening.series_job(list(info.files), info.key, audit.path_subject(path)))

    def _open_object(self, path: Path, info: SeriesInfo) -> None:
        """A report, segmentation or structure set chosen in the chooser, read for what it is."""
        file = info.files[0]
        self._named_paths.add(str(file))
        self._open(OpenRequest(str(file.absolute()), file, activate=True), opening.open_job(file))

    def _show_report(self, opened: OpenedReport) -> None:
        self.report_panel.show_report(opened.document, self._file_label(opened.path))
        self.report_panel.path = opened.path
        self.tabs.setCurrentWidget(self.report_panel)
        self._tab_changed(self.tabs.currentIndex())  # also when the Report tab was already the one shown
        self.statusBar().showMessage(f"Opened report {self._file_label(opened.path)}")

    def _place_derived(self, derived: DerivedObject) -> None:
        """A SEG or RT structure set over the series it was drawn on: the one shown if it is that series,
        else that series opened first (from the folder just listed, or from the catalog); when it is in
        neither, the message names the series that is needed."""
        wanted = set(derived.referenced_series)
        volume = self.volume_view.volume
        if volume is not None and (not wanted or volume.metadata.get("series_uid") in wanted):
            self.open_overlay(derived.path)
            return
        for uid in derived.referenced_series:
            files = self._files_of_series(uid)
            if files:
                key = series_key(uid)
                self._pending_overlays[key] = derived.path
                self.statusBar().showMessage(f"Opening the series {self._file_label(derived.path)} was drawn on…")
                request = OpenRequest(key, files[0].parent, activate=True, from_catalog=True)
                self._open(request, opening.series_job(files, uid, key))
                return
        needed = ", ".join(derived.referenced_series) or "(it names none)"
        self.message_bar.add(
            f"{derived.path}: a {derived.kind.value} drawn on series {needed}, which is neither shown nor in the "
            "catalog: open or import that series, then open this file again"
        )

    def _files_of_series(self, uid: str) -> list[Path]:
        """The existing files of a series: from the folder just listed, else from the catalog."""
        listing = self._listing
        if listing is not None:
            for info in listing.images:
                if info.series_uid == uid:
                    return [f for f in info.files if f.is_file()]
        if self.catalog is None:
            return []
        return [f for f in self.catalog.series_files(uid) if f.is_file()]

    def open_entry(self, entry: PanelEntry) -> None:
        """Show a patient-panel row: at once if open, else read from its catalogued files.

        Files gone since the last check are left out (and the check run again, so the row greys): a moved
        file is a fact to show, not an error on every click."""
        if entry.key in self.opened:
            self._show_opened(entry.key)
            return
        gone = f"{entry.label}: its files were moved or deleted since they were imported"
        if entry.missing:
            self.statusBar().showMessage(gone)
        elif entry.kind == "slide" and entry.path is not None:
            if not entry.path.is_file():
                self.statusBar().showMessage(gone)
                self.check_missing()
                return
            self._named_paths.add(str(entry.path))
            self.statusBar().showMessage(f"Opening {entry.label}…")
            request = OpenRequest(entry.key, entry.path, activate=True, from_catalog=True)
            self._open(request, opening.open_job(entry.path))
        elif entry.kind == "series" and entry.series_uid is not None and self.catalog is not None:
            recorded = self.catalog.series_files(entry.series_uid)
            files = [f for f in recorded if f.is_file()]
            if len(files) < len(recorded):
                self.check_missing()
            if not files:
                self.statusBar().showMessage(gone)
                return
            self._named_paths.add(str(files[0].parent))
            self.statusBar().showMessage(f"Opening {entry.label}…")
            request = OpenRequest(entry.key, files[0].parent, activate=True, from_catalog=True)
            self._open(request, opening.catalog_series_job(files, entry.series_uid))

    def busy(self) -> bool:
        """Whether a job (or the AI runtime's probe, or a slide tile) is still under way."""
        return self.jobs.busy() or self.ai_panel.busy() or self.slide_view.busy()

    def wait_until_idle(self, timeout_ms: int) -> bool:
        """Run the event loop until loads, imports and the runtime probe finish; False on timeout."""
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

    def _on_opened(self, request: OpenRequest, done: Opened) -> None:
        """An open has ended: recorded in the audit trail already; shown here for what it is."""
        for problem in done.problems.messages:
            self.message_bar.add(problem)
        opened = done.content
        if isinstance(opened, OpenedReport):
            self._show_report(opened)
            return
        if isinstance(opened, list):  # a catalog series of several reports or segmentations: choose one
            self._on_listed(ListRequest(request.path), SeriesListing(request.path, opened))
            return
        if isinstance(opened, DerivedObject):
            self._place_derived(opened)
            return
        key = request.key if request.from_catalog else self._image_key(request.path, opened)
        self.opened[key] = opened
        if not request.from_catalog:
            self._remember(request.path)
            if opening.to_catalog(opened.image, request.path):
                self.import_paths([request.path], quietly=True)
            else:
                self.patient_panel.add_other_file(opened)
        for warning in getattr(opened.image, "warnings", []):
            self.message_bar.add(f"{request.path}: {warning}", about=key)
        if request.activate:
            self._show_opened(key)
        elif isinstance(opened.image, Slide):
            if self.slide_view.slide is None:
                self.slide_view.set_slide(opened.image, opened.preview)
        elif self.volume_view.volume is None:
            self._show_volume(opened.image, opened.path)
        self.statusBar().showMessage(f"Opened {self._file_label(opened.path)}")

    @staticmethod
    def _image_key(path: Path, opened: OpenedImage) -> str:
        """The key the patient panel gives the same image, so its row is highlighted and not read twice."""
        if isinstance(opened.image, Slide):
            return slide_key(path)
        series_uid = opened.image.metadata.get("series_uid")
        return series_key(series_uid) if series_uid else str(path.absolute())

    def _file_label(self, path: Path) -> str:
        """A file's name for the status bar and title; under the anonymised display a stand-in, as folder
        and file names are often patient names."""
        return file_alias("Image", str(path.absolute())) if self.volume_view.anonymised else path.name

    def _on_overlay(self, request: OverlayRequest, label_map: LabelMap) -> None:
        if self.volume_view.volume is not request.volume:
            self.message_bar.add(f"{request.path}: not shown, because another volume was opened meanwhile")
            return
        for warning in label_map.warnings:
            self.message_bar.add(f"{request.path}: {warning}", about=self.shown_key)
        self.volume_view.set_label_map(label_map)
        self.docks["segmentDock"].raise_()
        self.statusBar().showMessage(f"Overlay {self._file_label(request.path)}: {len(label_map.names)} label(s)")

    def _show_opened(self, key: str) -> None:
        opened = self.opened.get(key)
        if opened is None:
            return
        self.shown_key = key
        self.message_bar.show_for(key)
        self.patient_panel.select_key(key)
        self.ai_panel.clear_result()
        identity = identity_of(opened.image, opened.path)
        if isinstance(opened.image, Slide):
            self.slide_view.set_slide(opened.image, opened.preview)
            self.ai_panel.set_slide(opened.image, self._selected_region, identity)
            self.tabs.setCurrentIndex(SLIDE_TAB)
        else:
            self._show_volume(opened.image, opened.path)
            self.ai_panel.set_volume(opened.image, int(round(self.volume_view.crosshair[0])), identity)
            self.tabs.setCurrentIndex(VOLUME_TAB)
            pending = self._pending_overlays.pop(key, None)
            if pending is not None:
                self.open_overlay(pending)
        self._show_stored_result(key)
        self._update_title()

    def _open_kept_result(self, entry: PanelEntry, kept: AiResultEntry) -> None:
        """Show a kept AI result chosen in the patient panel on its image, opening the image first if needed."""
        self._chosen_results[entry.key] = kept
        self.open_entry(entry)

    def _show_stored_result(self, key: str) -> None:
        """The AI result chosen for this image in the patient panel, else the latest kept for it, shown again
        as it was computed (no model run)."""
        kept = self._chosen_results.pop(key, None)
        if kept is None and self.catalog is not None:
            kept = next((row for row in self.catalog.ai_results(key) if row.result_file), None)
        if kept is None:
            return
        try:
            stored = load_result(results_folder() / kept.result_file)
        except MedviewerError as exc:
            self.message_bar.add(f"The AI result of {kept.model_name} kept for this image cannot be shown: {exc}")
            return
        refused = self.ai_panel.show_stored(stored, kept.created)
        if refused is not None:
            self.message_bar.add(f"The AI result of {kept.model_name} kept for this image is not shown: {refused}")

    def _on_failed(self, request: OpenRequest | OverlayRequest | ListRequest, message: str) -> None:
        """An open that failed (recorded as such in the audit trail by the job)."""
        path = request.path
        if isinstance(request, OpenRequest):
            self._chosen_results.pop(request.key, None)  # not to surface at a later, unrelated open
            self._pending_overlays.pop(request.key, None)  # nor a segmentation over a later open of it
        log.warning("open failed for %s", safe_path(path))
        self.message_bar.add(message)
        self.statusBar().showMessage(f"Could not open {self._file_label(path)}")

    # measurements, kept with their series -------------------------------------------------------

    def _show_volume(self, volume: Volume, path: Path) -> None:
        """Show a volume with the measurements kept for its series; every later change is saved at once."""
        series_uid = volume.metadata.get("series_uid")
        subject = series_key(series_uid) if series_uid else audit.path_subject(path)
        self.shown_volume = None  # the measurements restored below are not changes to save
        self.volume_view.set_volume(volume)
        loaded = load_measurements(volume, series_identity(volume, path))
        for problem in loaded.problems:
            self.message_bar.add(problem)
        for measurement in loaded.measurements:
            self.volume_view.add_measurement(measurement)
        self.shown_volume = ShownVolume(path, subject, loaded.sidecar)
        self.volume_view.measurement_panel.set_kept(loaded.sidecar is not None)

    def _save_measurements(self) -> None:
        shown = self.shown_volume
        if shown is None or shown.sidecar is None:
            return
        job = measurements.save_job(shown.sidecar, self.volume_view.measurements, shown.audit_subject)
        self.jobs.submit(job, self._report_problems)

    def _report_problems(self, problems: Problems) -> None:
        for problem in problems.messages:
            self.message_bar.add(problem)

    def _ask_export_measurements(self) -> None:
        shown, volume = self.shown_volume, self.volume_view.volume
        if shown is None or volume is None:
            self.message_bar.add(NO_SERIES_TO_REPORT)
            return
        # highdicom takes a tenth of a second to import: not before the window is shown
        from medviewer.annotations.measurement_report import check_reportable

        try:
            check_reportable(volume, self.volume_view.measurements, shown.source)
        except MedviewerError as exc:
            self.message_bar.add(str(exc))
            return
        name, _ = QFileDialog.getSaveFileName(
            self, "Export measurements as DICOM SR", self._last_folder(), REPORT_FILTER
        )
        if name:
            self.export_measurements(Path(name if name.lower().endswith(".dcm") else name + ".dcm"))

    def export_measurements(self, path: Path) -> None:
        """Write the shown volume's measurements as a DICOM SR in the background; the message bar says why not."""
        shown, volume = self.shown_volume, self.volume_view.volume
        if shown is None or volume is None:
            self.message_bar.add(NO_SERIES_TO_REPORT)
            return
        self.statusBar().showMessage(f"Writing {self._file_label(path)}…")
        job = measurements.report_job(path, volume, self.volume_view.measurements, shown.source, shown.audit_subject)
        self.jobs.submit(job, self._report_written, self.message_bar.add)

    def _report_written(self, done: measurements.ReportWritten) -> None:
        written = done.written
        self._report_problems(done.problems)
        self.statusBar().showMessage(f"Saved {written.measurements} measurement(s) to {self._file_label(written.path)}")
        if written.empty_regions_left_out:
            self.message_bar.add(
                f"{written.path}: {written.empty_regions_left_out} region(s) with no voxel inside were left out of "
                "the report"
            )

    # AI results ---------------------------------------------------------------------------------

    def _show_heatmap(self, heatmap: Volume, caption: str) -> None:
        if self.ai_panel.volume is self.volume_view.volume:
            style = self.ai_panel.overlay_style()
            self.volume_view.set_heatmap(
                heatmap, name=caption, colormap=style.colormap, opacity=style.opacity, threshold=style.threshold
            )

    def _go_to_slice(self, index: int) -> None:
        if self.volume_view.volume is not None:
            point = self.volume_view.crosshair.copy()
            point[0] = index
            self.volume_view.set_crosshair(point)

    def _show_slide_heatmap(self, heat: SlideHeatmap) -> None:
        """A run's per-patch values; probabilities on a fixed 0..1 scale (``maximum`` 1), so a probability of 0.3
        is never drawn red because it happens to be the slide's highest. Flagged patches (outside the model's
        training data) are hatched over it."""
        style = self.ai_panel.overlay_style()
        self.slide_view.set_heatmap(
            heat.values,
            heat.origin,
            heat.cell,
            heat.caption,
            style.colormap,
            style.opacity,
            style.threshold,
            maximum=heat.maximum,
            flagged=heat.flagged,
        )

    def _show_slide_detail(self, detail: SlideDetail | None) -> None:
        """A patch's saliency (0..1, like the probabilities under it, so one legend reads both), or none."""
        if detail is None:
            self.slide_view.set_detail(None)
            return
        style = self.ai_panel.overlay_style()
        self.slide_view.set_detail(
            detail.values,
            detail.origin,
            detail.pixel,
            detail.caption,
            style.colormap,
            style.detail_opacity,
            style.threshold,
            detail.maximum,
        )

    def _restyle_overlays(self) -> None:
        """The overlays on screen, drawn again in the panel's new colours, opacity or threshold."""
        style = self.ai_panel.overlay_style()
        self.volume_view.restyle_heatmap(style.colormap, style.opacity, style.threshold)
        self.slide_view.restyle_overlays(style.colormap, style.opacity, style.threshold, style.detail_opacity)

    def _selected_region(self) -> tuple[float, float, float, float] | None:
        """The selected annotation's bounding box (x, y, width, height), for a slide run on part of it."""
        document, selected = self.slide_view.document, self.slide_view.annotations.selected
        if document is None or len(selected) != 1:
            return None
        x0, y0, x1, y1 = document.get(next(iter(selected))).bounds()
        return x0, y0, x1 - x0, y1 - y0

    def _run_finished(self, run: ModelRun) -> None:
        """A run was recorded (audit trail; for a series or slide, the result file and the catalog's row): say
        what could not be recorded, and list the new result in the patient panel."""
        self._report_problems(run.recorded.problems)
        if run.recorded.catalogued:
            self.patient_panel.refresh_details()

    # the catalog ----------------------------------------------------------------------------------

    def _open_catalog(self) -> None:
        """Check the catalog in the background (SQLite's quick check, the schema brought up to date); a damaged
        one was copied aside by the check, and a rebuild is offered."""
        self.jobs.submit(catalog_view.check_job(self.catalog_file), self._catalog_checked)

    def _catalog_checked(self, check: catalog_view.CatalogCheck) -> None:
        if self._closing:
            return
        if check.problem is not None and check.damaged:
            problem = check.problem
            self.patient_panel.set_catalog(None, f"{problem}. File ▸ Rebuild the catalog… recreates it.")
            QTimer.singleShot(0, lambda: self._offer_rebuild(problem))
            return
        try:
            catalog = None if check.problem is not None else CatalogView.open(self.catalog_file)
        except MedviewerError as exc:  # it changed since the check (locked, removed)
            check = catalog_view.CatalogCheck(str(exc))
            catalog = None
        if catalog is None:
            self.patient_panel.set_catalog(None, check.problem or "")
            return
        self._set_catalog(catalog)
        self.patient_panel.set_catalog(catalog)
        self.check_missing()

    def _set_catalog(self, catalog: CatalogView | None) -> None:
        """What the window reads, and the catalog file runs and annotation files are listed in (by their own
        connections, in their jobs); None while there is no usable catalog."""
        if self.catalog is not None:
            self.catalog.close()
        self.catalog = catalog
        listed_in = self.catalog_file if catalog is not None else None
        self.ai_panel.catalog = self.slide_view.catalog = listed_in

    def _offer_rebuild(self, problem: str) -> None:
        answer = QMessageBox.question(
            self,
            "The catalog is damaged",
            f"{problem}.\n\nRebuild the catalog from the files it referenced? Your images are not touched; "
            "only the index is made again.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.rebuild_catalog()

    def _confirm_rebuild(self) -> None:
        self._offer_rebuild(f"The catalog {self.catalog_file} will be copied aside and made again")

    def rebuild_catalog(self) -> None:
        if self.jobs.busy(*CATALOG_JOBS):
            self.message_bar.add("Wait for the running import or check to finish before rebuilding the catalog.")
            return
        self._set_catalog(None)
        self.patient_panel.set_catalog(None, "Rebuilding the catalog…")
        self.patient_panel.show_import_progress(None, "Reading the files the catalog referenced…")
        self.jobs.submit(
            catalog_import.rebuild_job(self.catalog_file),
            lambda report: self._import_finished(report, quietly=False),
            lambda message: self._import_failed(message, quietly=False),
        )

    def _ask_import_folder(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Import a folder into the catalog", self._last_folder())
        if name:
            self.import_paths([Path(name)])

    def _ask_import_files(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(
            self, "Import files or a DICOMDIR into the catalog", self._last_folder(), "All files (*)"
        )
        if names:
            self.import_paths([Path(n) for n in names])

    def import_paths(self, paths: list[Path], quietly: bool = False) -> None:
        """Add ``paths`` to the catalog in the background (after any catalog job already running: the lane
        takes one at a time).

        ``quietly`` is for images the user opened: no progress bar, only the panel updating."""
        copy = self.copy_action.isChecked() and not quietly

        def progress(fraction: float, words: str) -> None:
            if not quietly:
                self.patient_panel.show_import_progress(fraction, words)

        self.jobs.submit(
            catalog_import.import_job(paths, self.catalog_file, copy),
            lambda report: self._import_finished(report, quietly),
            lambda message: self._import_failed(message, quietly),
            on_progress=lambda fraction, words: progress(fraction, words),
            on_cancelled=lambda: self.patient_panel.hide_import_progress(),
        )
        if not quietly:
            self.patient_panel.show_import_progress(0.0, "Looking for files…")

    def _import_finished(self, report: ImportReport, quietly: bool) -> None:
        if self._closing:
            return
        self.patient_panel.hide_import_progress()
        if self.catalog is None:
            self._open_catalog()
        else:
            self.patient_panel.set_catalog(self.catalog)
        if self.shown_key is not None and self.patient_panel.tree.currentItem() is None:
            self.patient_panel.select_key(self.shown_key)  # the image shown has just joined the catalog
        if not quietly:
            self.statusBar().showMessage(catalog_import.report_words(report))
            if report.unreadable:
                count = len(report.unreadable)
                first = "; ".join(f"{u.path}: {u.reason}" for u in report.unreadable[:3])
                more = f" (and {count - 3} more)" if count > 3 else ""
                self.message_bar.add(f"{count} file(s) could not be imported: {first}{more}")

    def _import_failed(self, message: str, quietly: bool) -> None:
        if self._closing:
            return
        self.patient_panel.hide_import_progress()
        self.message_bar.add(message)
        if self.catalog is None:
            self._open_catalog()

    def check_missing(self) -> None:
        """Flag files moved or deleted since import, so the panel greys them instead of failing on a click."""
        if self.jobs.busy(JobKind.CHECK_MISSING):
            self._check_again = True
            return
        self.jobs.submit(catalog_import.missing_check_job(self.catalog_file), self._missing_checked)

    def _missing_checked(self, _count: int) -> None:
        if self._closing:
            return
        if self._check_again:
            self._check_again = False
            self.check_missing()
        self.patient_panel.refresh()

    def _request_thumbnails(self) -> None:
        for key, entry in self.patient_panel.wanted_thumbnails:
            if key in self._thumbnails_asked:
                continue
            if entry.kind == "slide" and entry.path is not None:
                job = opening.slide_thumbnail_job(self.thumbnail_cache, entry.path)
            elif entry.kind == "series" and entry.series_uid is not None and self.catalog is not None:
                files = self.catalog.series_files(entry.series_uid)
                if not files:
                    continue
                job = opening.series_thumbnail_job(self.thumbnail_cache, files)
            else:
                continue
            self._thumbnails_asked.add(key)
            # a thumbnail that cannot be made leaves the row plain: opening it reports the problem properly
            self.jobs.submit(job, partial(self.patient_panel.set_thumbnail, key))

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
        self._closing = True
        self.jobs.cancel(JobKind.IMPORT)
        self.slide_view.shutdown()  # its last save goes to the write lane, which the runner waits for
        self.jobs.shutdown()
        for opened in self.opened.values():
            if isinstance(opened.image, Slide):
                opened.image.close()
        if self.catalog is not None:
            self.patient_panel.set_catalog(None)
        self._set_catalog(None)
        super().closeEvent(event)


def _write_png(image: QImage, path: Path, details: dict[str, object]) -> Problems:
    """On the write lane: QImage is reentrant, so a grabbed image is saved off the GUI thread."""
    # PySide6's stubs want bytes for the format, but PySide6 6.11 refuses bytes at runtime and takes only a str.
    if not image.save(str(path), "PNG"):  # type: ignore[call-overload]
        raise MedviewerError(path, "the image could not be written")
    return record_event("export", audit.path_subject(path), details)
