"""The segment list of the label map shown: each segment or ROI with its colour, name and volume, and a box
to hide it; the list is also the overlay's legend (colour to name), as 3D Slicer's Segments list is.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from medviewer.core.label_map import LabelMap
from medviewer.core.volume import Volume

SWATCH = 14


class SegmentPanel(QWidget):
    """Emits ``visibility_changed(label, visible)`` when a segment's box is ticked or cleared."""

    visibility_changed = Signal(int, bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("No segmentation or structure set is shown.")
        self.title.setWordWrap(True)
        self.list = QListWidget()
        self.list.setObjectName("segmentList")
        self.list.itemChanged.connect(self._item_changed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.list, 1)
        self._label_map: LabelMap | None = None
        self._hide_source = False

    def set_source_hidden(self, hidden: bool) -> None:
        """Under the anonymised display the file's name is not shown (file names can be patient names)."""
        self._hide_source = hidden
        self._show_title()

    def _show_title(self) -> None:
        label_map = self._label_map
        if label_map is None:
            self.title.setText("No segmentation or structure set is shown.")
            return
        source = "Segmentation" if self._hide_source else label_map.source
        self.title.setText(f"{source}: {len(label_map.names)} segment(s)")

    def set_label_map(self, label_map: LabelMap | None, volume: Volume | None) -> None:
        self.list.blockSignals(True)
        self.list.clear()
        self._label_map = label_map if volume is not None else None
        self._show_title()
        if label_map is None or volume is None:
            self.list.blockSignals(False)
            return
        volumes = label_map.volumes_mm3(volume) if volume.spacing_known else {}
        for label, name in sorted(label_map.names.items()):
            size = f"{volumes[label] / 1000:.2f} mL" if label in volumes else "not in this volume"
            item = QListWidgetItem(f"{name}  ·  {size}")
            item.setData(Qt.ItemDataRole.UserRole, label)
            item.setIcon(_swatch(label_map.colours.get(label, (255, 255, 255))))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.list.addItem(item)
        self.list.blockSignals(False)

    def rows(self) -> list[tuple[int, str, bool]]:
        """(label, text, visible) per segment, as listed."""
        return [
            (
                self.list.item(row).data(Qt.ItemDataRole.UserRole),
                self.list.item(row).text(),
                self.list.item(row).checkState() == Qt.CheckState.Checked,
            )
            for row in range(self.list.count())
        ]

    def _item_changed(self, item: QListWidgetItem) -> None:
        label = int(item.data(Qt.ItemDataRole.UserRole))
        self.visibility_changed.emit(label, item.checkState() == Qt.CheckState.Checked)


def _swatch(colour: tuple[int, int, int]) -> QIcon:
    pixmap = QPixmap(SWATCH, SWATCH)
    pixmap.fill(QColor(*colour))
    return QIcon(pixmap)
