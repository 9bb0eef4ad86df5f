"""The patient panel: the local catalog as patient > study > series, with slides, searchable.

It shows what the catalog holds, not only what is open: a search box (name, ID, accession, description)
and modality and date filters narrow it; thumbnails arrive from a background maker; files moved or
deleted since import are greyed and say so instead of failing on a click. Images opened from outside
the catalog (NIfTI) are listed in a group of their own. With the anonymised display on, names and IDs
become stable pseudonyms and study dates are hidden.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QPoint, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.actions.catalog_view import CatalogView, assign_slide_job
from medviewer.catalog.browse import AiResultEntry, series_key, slide_key
from medviewer.catalog.pseudonyms import file_alias, pseudonym
from medviewer.catalog.search import SeriesHit, SlideEntry
from medviewer.core.patient import display_name
from medviewer.io.preview import ICON_SIZE, OpenedImage
from medviewer.ui.job_runner import JobRunner
from medviewer.ui.qt_images import to_icon

ENTRY_ROLE = Qt.ItemDataRole.UserRole
UNASSIGNED_SLIDES = "Slides without a patient"
OTHER_FILES = "Open files outside the catalog"
ANY_MODALITY = "All modalities"
MISSING_COLOUR = QColor(150, 150, 150)
THUMBNAIL_SIZE = ICON_SIZE // 2  # every row's picture in the same square, whatever the image's size
#: Date filter choices: label and how many days back (None: any date).
DATE_RANGES: tuple[tuple[str, int | None], ...] = (
    ("Any date", None),
    ("Today", 0),
    ("Last 7 days", 7),
    ("Last 30 days", 30),
    ("Last year", 365),
)


@dataclass(frozen=True)
class PanelEntry:
    """What a row stands for; ``key`` names it in the window's open images and in the catalog's
    annotation and AI tables (see ``medviewer.catalog.browse``)."""

    kind: str  # "series", "slide" or "file"
    key: str
    label: str
    path: Path | None = None
    series_uid: str | None = None
    missing: bool = False


def series_details(hit: SeriesHit) -> str:
    """What a series row says it holds: images, a cine, or the object it is (a segmentation, a report)."""
    count = hit.instance_count
    if hit.kind in ("", "volume", "image", "colour image"):
        return f"{count} image(s)"
    if hit.kind == "cine":
        return f"cine ({count} file(s))" if count > 1 else "cine"
    return hit.kind if count == 1 else f"{count} × {hit.kind}"


def dicom_date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


def _children(item: QTreeWidgetItem) -> list[QTreeWidgetItem]:
    # Qt's child(i) is None only for an index past childCount(): the filter is for the type checker.
    return [child for i in range(item.childCount()) if (child := item.child(i)) is not None]


class PatientPanel(QWidget):
    """``open_requested(entry)`` on double-click or Enter; ``import_requested()`` from the Import button."""

    open_requested = Signal(PanelEntry)
    #: A kept AI result double-clicked in the details list, to be shown on its image.
    result_requested = Signal(PanelEntry, AiResultEntry)
    import_requested = Signal()
    cancel_import = Signal()
    refreshed = Signal()  # the tree was rebuilt: rows listed in ``wanted_thumbnails`` have no picture yet

    def __init__(self, parent: QWidget | None = None, jobs: JobRunner | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs if jobs is not None else JobRunner(self)
        self.catalog: CatalogView | None = None
        self.anonymised = False
        self.icons: dict[str, QIcon] = {}
        self.other_files: dict[str, OpenedImage] = {}
        self.wanted_thumbnails: list[tuple[str, PanelEntry]] = []
        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("Search name, ID, accession, description")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.textChanged.connect(self.refresh)
        self.modality_box = QComboBox()
        self.modality_box.addItem(ANY_MODALITY)
        self.modality_box.currentIndexChanged.connect(self.refresh)
        self.date_box = QComboBox()
        for label, _days in DATE_RANGES:
            self.date_box.addItem(label)
        self.date_box.currentIndexChanged.connect(self.refresh)
        import_button = QPushButton("Import…")
        import_button.setToolTip("Add files, a folder or a DICOMDIR to the catalog (headers only, in the background)")
        import_button.clicked.connect(self.import_requested)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Patient / study / series", "Details"])
        self.tree.setIconSize(QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.tree.setColumnWidth(0, 220)
        self.tree.itemActivated.connect(self._on_activated)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._context_menu)
        self.tree.currentItemChanged.connect(lambda *_: self.refresh_details())
        self.details = QTreeWidget()
        self.details.setHeaderLabels(["Annotations and AI results", "When"])
        self.details.setRootIsDecorated(False)
        self.details.setColumnWidth(0, 200)
        self.details.itemActivated.connect(self._on_detail_activated)
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress_label = QLabel()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_import)

        filters = QHBoxLayout()
        filters.addWidget(self.modality_box)
        filters.addWidget(self.date_box)
        top = QHBoxLayout()
        top.addWidget(self.search_box, 1)
        top.addWidget(import_button)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        self.progress_box = QWidget()
        progress_layout = QVBoxLayout(self.progress_box)
        progress_layout.setContentsMargins(0, 0, 0, 0)
        progress_layout.addLayout(progress_row)
        progress_layout.addWidget(self.progress_label)
        self.progress_box.hide()
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.tree)
        splitter.addWidget(self.details)
        splitter.setSizes([600, 140])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addLayout(filters)
        layout.addWidget(self.progress_box)
        layout.addWidget(self.status)
        layout.addWidget(splitter, 1)
        self.status.hide()

    # what is shown --------------------------------------------------------------------------------

    def set_catalog(self, catalog: CatalogView | None, problem: str = "") -> None:
        """Show this catalog (or, with None, why there is none) and fill the modality filter from it."""
        self.catalog = catalog
        self.status.setText(problem)
        self.status.setVisible(bool(problem))
        self._fill_modalities()
        self.refresh()

    def set_anonymised(self, anonymised: bool) -> None:
        self.anonymised = anonymised
        self.refresh()

    def add_other_file(self, opened: OpenedImage) -> None:
        """An image opened from outside the catalog (a NIfTI file): listed so it can be shown again."""
        self.other_files[str(opened.path.absolute())] = opened
        self.icons[str(opened.path.absolute())] = to_icon(opened.icon, THUMBNAIL_SIZE)
        self.refresh()

    def set_thumbnail(self, key: str, pixels: np.ndarray) -> None:
        self.icons[key] = to_icon(pixels, THUMBNAIL_SIZE)
        for item in self._items():
            entry = item.data(0, ENTRY_ROLE)
            if entry is not None and entry.key == key:
                item.setIcon(0, self.icons[key])

    def select_key(self, key: str) -> None:
        """Highlight the image now shown, so the panel agrees with the viewer whatever finished loading last."""
        for item in self._items():
            entry = item.data(0, ENTRY_ROLE)
            if entry is not None and entry.key == key:
                self.tree.setCurrentItem(item)
                return

    def entries(self) -> list[PanelEntry]:
        return [entry for item in self._items() if (entry := item.data(0, ENTRY_ROLE)) is not None]

    def item_for(self, key: str) -> QTreeWidgetItem | None:
        return next((item for item in self._items() if (e := item.data(0, ENTRY_ROLE)) and e.key == key), None)

    def show_import_progress(self, fraction: float | None, text: str) -> None:
        """A bar with words under it; ``fraction`` None is a busy bar (a rebuild cannot count ahead)."""
        self.progress_box.show()
        self.progress.setRange(0, 0 if fraction is None else 1000)
        if fraction is not None:
            self.progress.setValue(round(fraction * 1000))
        self.progress_label.setText(text)

    def hide_import_progress(self) -> None:
        self.progress_box.hide()

    def refresh(self) -> None:
        """Rebuild the tree from the catalog with the current search and filters (indexed queries); the
        current row stays current."""
        current = self.tree.currentItem()
        current_entry = current.data(0, ENTRY_ROLE) if current is not None else None
        self.tree.clear()
        self.wanted_thumbnails = []
        self._patient_rows: dict[tuple[str, str], QTreeWidgetItem] = {}
        if self.catalog is not None:
            text, modality, date_from = self._criteria()
            self._add_series(self.catalog.series(text, modality, date_from))
            if modality in (None, "SM"):
                self._add_slides(self.catalog.slides(), text)
        text = self.search_box.text().strip().lower()
        others = [o for o in self.other_files.values() if not text or text in o.path.name.lower()]
        if others:
            group = QTreeWidgetItem(self.tree, [OTHER_FILES, ""])
            for opened in others:
                self._add_other(group, opened)
        self.tree.expandToDepth(1)
        if current_entry is not None:
            self.select_key(current_entry.key)
        self.refreshed.emit()

    # building the tree ----------------------------------------------------------------------------

    def _criteria(self) -> tuple[str | None, str | None, str | None]:
        """(search text, modality, first study date) as the catalog's search takes them."""
        text = self.search_box.text().strip() or None
        modality = self.modality_box.currentText()
        days = DATE_RANGES[self.date_box.currentIndex()][1]
        date_from = None
        if days is not None:
            date_from = (datetime.date.today() - datetime.timedelta(days=days)).strftime("%Y%m%d")
        return text, (None if modality == ANY_MODALITY else modality), date_from

    def _add_series(self, hits: list[SeriesHit]) -> None:
        studies: dict[str, QTreeWidgetItem] = {}
        for hit in hits:
            patient = self._patient_row(hit.patient_id, hit.patient_name)
            study = studies.get(hit.study_uid)
            if study is None:
                date = "" if self.anonymised else dicom_date(hit.study_date)
                study = QTreeWidgetItem(patient, [hit.study_description or "Study", date])
                study.setToolTip(0, f"Accession {hit.accession}" if hit.accession and not self.anonymised else "")
                studies[hit.study_uid] = study
            label = f"{hit.modality} {hit.series_description}".strip() or "Series"
            details = series_details(hit)
            missing = hit.missing >= hit.instance_count > 0
            if hit.missing:
                details += f", {hit.missing} missing"
            entry = PanelEntry("series", series_key(hit.series_uid), label, series_uid=hit.series_uid, missing=missing)
            self._add_entry(study, entry, details, partly_missing=bool(hit.missing))
        for row in self._patient_rows.values():
            count = row.childCount()
            counted = f"{count} stud{'y' if count == 1 else 'ies'}"
            row.setText(1, f"{row.text(1)}  ·  {counted}" if row.text(1) else counted)
        for study in studies.values():
            study.setToolTip(1, f"{study.childCount()} series")

    def _add_slides(self, entries: list[SlideEntry], text: str | None) -> None:
        text = (text or "").lower()
        unassigned: QTreeWidgetItem | None = None
        for slide in entries:
            path = Path(slide.path)
            searched = [path.name, *(slide.patient or ())]
            if text and not any(text in field.lower() for field in searched):
                continue
            if slide.patient is not None:
                group = self._patient_row(*slide.patient)
            else:
                unassigned = unassigned or QTreeWidgetItem(self.tree, [UNASSIGNED_SLIDES, ""])
                group = unassigned
            mpp = f", {slide.mpp:.3g} µm/px" if slide.mpp else ""
            label = file_alias("Slide", str(path)) if self.anonymised else path.name
            entry = PanelEntry("slide", slide_key(path), label, path=path, missing=slide.missing)
            self._add_entry(group, entry, f"slide {slide.width}×{slide.height}{mpp}", partly_missing=slide.missing)

    def _add_other(self, group: QTreeWidgetItem, opened: OpenedImage) -> None:
        image = opened.image
        shape = getattr(image, "shape", None)
        details = f"{shape[0]} slices {shape[2]}×{shape[1]}" if shape is not None else ""
        label = file_alias("File", str(opened.path)) if self.anonymised else opened.path.name
        entry = PanelEntry("file", str(opened.path.absolute()), label, path=opened.path)
        self._add_entry(group, entry, details, partly_missing=False)

    def _add_entry(self, parent: QTreeWidgetItem, entry: PanelEntry, details: str, partly_missing: bool) -> None:
        item = QTreeWidgetItem(parent, [entry.label, details])
        item.setData(0, ENTRY_ROLE, entry)
        if entry.key in self.icons:
            item.setIcon(0, self.icons[entry.key])
        elif not entry.missing and entry.kind != "file":
            self.wanted_thumbnails.append((entry.key, entry))
        if partly_missing:
            for column in (0, 1):
                item.setForeground(column, QBrush(MISSING_COLOUR))
            item.setToolTip(0, "Files of this item were moved or deleted since they were imported")

    def _identity(self, patient_id: str, name: str) -> tuple[str, str]:
        if self.anonymised:
            alias = pseudonym(patient_id, name)
            return alias.name, alias.patient_id
        return (display_name(name) if name else patient_id or "(no name)"), patient_id

    def _patient_row(self, patient_id: str, name: str) -> QTreeWidgetItem:
        """One row per catalogued patient, keyed as the catalog keys them: by ID and name together."""
        row = self._patient_rows.get((patient_id, name))
        if row is None:
            label, shown_id = self._identity(patient_id, name)
            row = QTreeWidgetItem(self.tree, [label, shown_id])
            self._patient_rows[(patient_id, name)] = row
        return row

    def _fill_modalities(self) -> None:
        current = self.modality_box.currentText()
        self.modality_box.blockSignals(True)
        self.modality_box.clear()
        self.modality_box.addItem(ANY_MODALITY)
        if self.catalog is not None:
            for modality in self.catalog.modalities():
                self.modality_box.addItem(modality)
        index = self.modality_box.findText(current)
        self.modality_box.setCurrentIndex(max(index, 0))
        self.modality_box.blockSignals(False)

    def _items(self) -> list[QTreeWidgetItem]:
        found: list[QTreeWidgetItem] = []
        stack = _children(self.tree.invisibleRootItem())  # its children are the top-level items
        while stack:
            item = stack.pop()
            found.append(item)
            stack.extend(_children(item))
        return found

    # reacting -------------------------------------------------------------------------------------

    def _on_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        entry = item.data(0, ENTRY_ROLE)
        if entry is not None:
            self.open_requested.emit(entry)

    def _on_detail_activated(self, item: QTreeWidgetItem, _column: int) -> None:
        result, tree_item = item.data(0, ENTRY_ROLE), self.tree.currentItem()
        entry = tree_item.data(0, ENTRY_ROLE) if tree_item is not None else None
        if entry is not None and isinstance(result, AiResultEntry) and result.result_file:
            self.result_requested.emit(entry, result)

    def refresh_details(self) -> None:
        """The current item's annotation files and AI results, from the catalog."""
        self.details.clear()
        item = self.tree.currentItem()
        entry = item.data(0, ENTRY_ROLE) if item is not None else None
        if entry is None or self.catalog is None or entry.kind == "file":
            return
        for note in self.catalog.annotation_files(entry.key):
            name = file_alias("File", note.path) if self.anonymised else Path(note.path).name
            QTreeWidgetItem(self.details, [f"Annotations: {name}", f"{note.format}, {note.modified}"])
        for result in self.catalog.ai_results(entry.key):
            row = QTreeWidgetItem(self.details, [f"AI: {result.model_name} {result.model_version}", result.created])
            shown = "\nDouble-click to show it." if result.result_file else ""
            row.setToolTip(0, f"{result.summary}\nmodel SHA-256 {result.model_hash}{shown}")
            row.setData(0, ENTRY_ROLE, result)
        if self.details.topLevelItemCount() == 0:
            QTreeWidgetItem(self.details, ["No annotations or AI results yet", ""])

    def assign(self, entry: PanelEntry, patient: tuple[str, str] | None) -> None:
        """Link a slide to a catalogued patient, as (ID, name) (None: unlink), then show it under them."""
        assert self.catalog is not None and entry.path is not None
        self.jobs.submit(
            assign_slide_job(self.catalog.path, entry.path, patient), lambda problem: self._assigned(entry, problem)
        )

    def _assigned(self, entry: PanelEntry, problem: str | None) -> None:
        if problem is not None:
            self.status.setText(f"{entry.label}: {problem}")
            self.status.show()
        self.refresh()
        self.select_key(entry.key)

    def _context_menu(self, position: QPoint) -> None:
        item = self.tree.itemAt(position)
        entry = item.data(0, ENTRY_ROLE) if item is not None else None
        if entry is None or entry.kind != "slide" or self.catalog is None:
            return
        menu = QMenu(self)
        menu.addAction("Assign to a patient…", lambda: self._ask_assign(entry))
        menu.addAction("Remove the patient link", lambda: self.assign(entry, None))
        menu.exec(self.tree.viewport().mapToGlobal(position))

    def _ask_assign(self, entry: PanelEntry) -> None:
        assert self.catalog is not None
        choices = self.catalog.patients()
        if not choices:
            self.status.setText("The catalog holds no patients yet: import their studies first.")
            self.status.show()
            return
        labels = [" · ".join(self._identity(patient_id, name)) for patient_id, name in choices]
        label, accepted = QInputDialog.getItem(self, "Assign the slide to a patient", entry.label, labels, 0, False)
        if accepted:
            self.assign(entry, choices[labels.index(label)])
