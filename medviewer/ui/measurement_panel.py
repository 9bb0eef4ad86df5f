"""The list of measurements on the open volume, where each can be found again or deleted, and whether they are
kept: a reader should not have to guess whether switching series will lose them."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QLabel, QListWidget, QPushButton, QVBoxLayout, QWidget

from medviewer.core.measurements import Measurement

KEPT_NOTE = "Saved with this series as you measure"
NOT_KEPT_NOTE = "Not saved: see the message above the images"


class MeasurementPanel(QWidget):
    delete_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setObjectName("measurementList")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setEnabled(False)
        self.delete_button.clicked.connect(self._delete_current)
        self.list.currentRowChanged.connect(lambda row: self.delete_button.setEnabled(row >= 0))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.note = QLabel("")
        self.note.setObjectName("measurementNote")
        self.note.setWordWrap(True)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.note)
        layout.addWidget(self.delete_button)

    def add(self, measurement: Measurement, text: str, where: str) -> None:
        """``where`` names the slice, image or frame as the view does ("axial 12", "image 1", "frame 30")."""
        self.list.addItem(f"{measurement.kind.value.capitalize()} ({where}): {text}")

    def set_kept(self, kept: bool) -> None:
        self.note.setText(KEPT_NOTE if kept else NOT_KEPT_NOTE)

    def remove(self, row: int) -> None:
        self.list.takeItem(row)

    def texts(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _delete_current(self) -> None:
        if self.list.currentRow() >= 0:
            self.delete_requested.emit(self.list.currentRow())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self._delete_current()
        else:
            super().keyPressEvent(event)
