"""The patient panel: what is open, grouped patient > study > series, with slides beside them."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from medviewer.core.volume import Volume
from medviewer.io.preview import ICON_SIZE, OpenedImage
from medviewer.io.slide import Slide
from medviewer.ui.qt_images import to_icon

PATH_ROLE = Qt.ItemDataRole.UserRole
UNASSIGNED_SLIDES = "Slides without a patient"


def _dicom_date(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:8]}" if len(value) == 8 and value.isdigit() else value


class PatientPanel(QTreeWidget):
    """Double-clicking an image row asks the window to show it (``activated_path``)."""

    activated_path = Signal(Path)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["Patient / study / image", "Details"])
        self.setIconSize(QSize(ICON_SIZE // 2 * 3 // 2, ICON_SIZE // 2 * 3 // 2))
        self.setColumnWidth(0, 230)
        self.setUniformRowHeights(False)
        self.itemDoubleClicked.connect(self._on_double_click)

    def _child(self, parent: QTreeWidget | QTreeWidgetItem, key: str, label: str, details: str) -> QTreeWidgetItem:
        container = parent.invisibleRootItem() if isinstance(parent, QTreeWidget) else parent
        for i in range(container.childCount()):
            if container.child(i).data(0, Qt.ItemDataRole.UserRole + 1) == key:
                return container.child(i)
        item = QTreeWidgetItem(container, [label, details])
        item.setData(0, Qt.ItemDataRole.UserRole + 1, key)
        item.setExpanded(True)
        return item

    def add_image(self, opened: OpenedImage) -> QTreeWidgetItem:
        image = opened.image
        if isinstance(image, Slide):
            group = self._child(self, "slides", UNASSIGNED_SLIDES, "")
            w, h = image.dimensions
            mpp = f", {image.mpp:.3g} µm/px" if image.mpp else ""
            item = self._child(group, str(opened.path), opened.path.name, f"slide {w}×{h}{mpp}")
        else:
            item = self._add_volume(opened.path, image)
        item.setIcon(0, to_icon(opened.icon))
        item.setData(0, PATH_ROLE, str(opened.path))
        return item

    def select_path(self, path: Path) -> None:
        """Highlight the image now shown, so the panel agrees with the viewer whatever finished loading last."""
        for item in self.findItems("", Qt.MatchFlag.MatchRecursive | Qt.MatchFlag.MatchContains, 0):
            if item.data(0, PATH_ROLE) == str(path):
                self.setCurrentItem(item)
                return

    def _add_volume(self, path: Path, volume: Volume) -> QTreeWidgetItem:
        patient = volume.patient
        if patient.patient_id or patient.name:
            patient_item = self._child(
                self, f"patient:{patient.patient_id}:{patient.name}", patient.display_name, patient.patient_id
            )
            study_item = self._child(
                patient_item,
                f"study:{patient.study_uid}",
                patient.study_description or "Study",
                _dicom_date(patient.study_date),
            )
        else:
            patient_item = self._child(self, "files", "Files without patient data", "")
            study_item = patient_item
        nz, ny, nx = volume.shape
        label = f"{volume.modality or 'Volume'} {volume.description}".strip()
        return self._child(study_item, str(path), label, f"{nz} slices {nx}×{ny}")

    def _on_double_click(self, item: QTreeWidgetItem, _column: int) -> None:
        path = item.data(0, PATH_ROLE)
        if path:
            self.activated_path.emit(Path(path))
