"""The series chooser: what a folder or DICOMDIR holds, for a person to pick, images first.

Each row shows a thumbnail, the modality and description, how many images, and what the object is
(volume, image, cine, segmentation, report, ...), as Weasis and Horos list a study's series.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from medviewer.io.dicom_kind import DicomKind
from medviewer.io.dicom_stacks import SeriesInfo
from medviewer.io.series_listing import SeriesListing
from medviewer.ui.qt_images import to_icon

ICON = 72


def describe_entry(info: SeriesInfo) -> str:
    """One row's words: modality, description, size and kind."""
    kind = DicomKind(info.kind)
    what = " · ".join(part for part in (info.modality, info.description) if part) or "series"
    if kind is DicomKind.VOLUME:
        size = f"{info.slices} slice{'s' * (info.slices != 1)} of {info.columns}x{info.rows}, {info.orientation}"
        if info.time_points > 1:
            size += f", {info.time_points} time points"
    elif kind in (DicomKind.CINE, DicomKind.IMAGE, DicomKind.COLOUR_IMAGE):
        size = f"{info.frames} frame{'s' * (info.frames != 1)} of {info.columns}x{info.rows}"
    elif kind is DicomKind.SEGMENTATION:
        size = f"{info.frames} frames, drawn over the series it segments"
    elif kind is DicomKind.RT_STRUCTURE_SET:
        size = "contours, drawn over the series they were drawn on"
    elif kind is DicomKind.STRUCTURED_REPORT:
        size = "a report, read as text"
    else:
        size = f"{len(info.files)} object(s)"
    return f"{what}\n{kind.value}: {size}"


class SeriesChooser(QDialog):
    """Emits ``chosen(SeriesInfo)`` for the row opened (double-click, Enter or Open)."""

    chosen = Signal(object)

    def __init__(self, listing: SeriesListing, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Choose a series")
        self.listing = listing
        self.list = QListWidget()
        self.list.setObjectName("seriesList")
        self.list.setIconSize(QSize(ICON, ICON))
        for info in listing.series:
            item = QListWidgetItem(describe_entry(info))
            item.setData(Qt.ItemDataRole.UserRole, info)
            icon = listing.icons.get(info.key)
            if icon is not None:
                item.setIcon(to_icon(icon, ICON))
            self.list.addItem(item)
        self.list.setCurrentRow(0)
        self.list.itemActivated.connect(lambda _item: self.accept())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Open | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        images = len(listing.images)
        others = len(listing.series) - images
        summary = f"{title} holds {images} stack(s) of images" + (f" and {others} other object(s)" if others else "")
        layout.addWidget(QLabel(summary + ". Open one:"))
        layout.addWidget(self.list, 1)
        layout.addWidget(buttons)
        self.resize(560, 520)

    def entries(self) -> list[SeriesInfo]:
        return [self.list.item(row).data(Qt.ItemDataRole.UserRole) for row in range(self.list.count())]

    def choose(self, row: int) -> None:
        """Open the entry at ``row`` (what a double-click does)."""
        self.list.setCurrentRow(row)
        self.accept()

    def accept(self) -> None:
        item = self.list.currentItem()
        super().accept()
        if item is not None:
            self.chosen.emit(item.data(Qt.ItemDataRole.UserRole))
