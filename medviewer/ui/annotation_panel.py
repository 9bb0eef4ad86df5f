"""The list of a slide's annotations with class, area and perimeter; the class list editor.

Only classes the user edits here are saved to the settings; classes that arrive with a slide's
sidecar or an imported file stay with that document.

Areas are in µm² and perimeters and line lengths in µm from the slide's pixel size, or in pixels when
the slide has none (the column headers say which, and a line under the list says where the pixel size
came from: the file, or a person who set it by hand). Choosing a row selects the annotation and centres
the view on it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.annotations.class_list import save_classes
from medviewer.annotations.document import AnnotationDocument, ChangeEvent
from medviewer.annotations.model import AREA_KINDS, Annotation, AnnotationEditError, AnnotationKind

UNCLASSIFIED = "(no class)"


def colour_icon(rgb: tuple[int, int, int]) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(*rgb))
    return QIcon(pixmap)


class AnnotationPanel(QWidget):
    """Emits ``chosen(annotation id)`` when a row is picked; the slide view selects and centres it."""

    chosen = Signal(str)
    delete_requested = Signal()
    problem = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document: AnnotationDocument | None = None
        self.mpp: float | None = None
        self.mpp_by_hand = False
        self.class_box = QComboBox()
        self.class_box.setToolTip("Class given to new annotations, and to the selected ones with Set class")
        set_class = QPushButton("Set class")
        set_class.clicked.connect(self._classify_selected)
        edit = QPushButton("Classes…")
        edit.setToolTip("Add, rename, recolour or remove classes (kept in your settings)")
        edit.clicked.connect(self._edit_classes)
        self.tree = QTreeWidget()
        self.tree.setObjectName("annotationList")
        self.tree.setRootIsDecorated(False)
        self.tree.itemClicked.connect(lambda item, _column: self.chosen.emit(item.data(0, Qt.ItemDataRole.UserRole)))
        delete = QPushButton("Delete")
        delete.clicked.connect(self.delete_requested)
        self.pixel_size_label = QLabel()
        self.pixel_size_label.setObjectName("annotationPixelSize")
        self.pixel_size_label.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(self.class_box, 1)
        top.addWidget(set_class)
        top.addWidget(edit)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.pixel_size_label)
        layout.addWidget(delete)
        self.selected_ids: set[str] = set()

    def set_document(self, document: AnnotationDocument | None, mpp: float | None, by_hand: bool = False) -> None:
        self.document = document
        if document is not None:
            document.changed.append(self._document_changed)
        self.set_pixel_size(mpp, by_hand)

    def set_pixel_size(self, mpp: float | None, by_hand: bool = False) -> None:
        """Measure in µm from ``mpp`` (``by_hand``: a person set it, the file has none), or in pixels."""
        self.mpp, self.mpp_by_hand = mpp, by_hand
        unit = "µm" if mpp else "px"
        self.tree.setHeaderLabels(["Annotation", "Class", f"Area ({unit}²)", f"Perimeter / length ({unit})"])
        if mpp is None:
            self.pixel_size_label.setText("No pixel size: areas and lengths are in pixels")
        else:
            source = "set by hand" if by_hand else "from the file"
            self.pixel_size_label.setText(f"Pixel size {mpp:.4g} µm/px, {source}")
        self.refresh()

    def current_class(self) -> str | None:
        text = self.class_box.currentText()
        return None if text in ("", UNCLASSIFIED) else text

    def refresh(self) -> None:
        """Rebuild the class box and every row."""
        chosen = self.class_box.currentText()
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItem(UNCLASSIFIED)
        for cls in self.document.classes if self.document is not None else ():
            self.class_box.addItem(colour_icon(cls.colour), cls.name)
        index = self.class_box.findText(chosen)
        self.class_box.setCurrentIndex(max(index, 0))
        self.class_box.blockSignals(False)
        self.tree.clear()
        for number, annotation in enumerate(self.document.annotations if self.document is not None else (), start=1):
            self.tree.addTopLevelItem(self._row(number, annotation))
        for column in range(4):
            self.tree.resizeColumnToContents(column)

    def _document_changed(self, event: ChangeEvent) -> None:
        """Rewrite only the rows an edit names (a drag sends one event per mouse step); rebuild the list
        when annotations came or went, were reordered, or the classes changed."""
        assert self.document is not None, "only a document the panel shows calls back"
        annotations = self.document.annotations
        listed = [self._item(i).data(0, Qt.ItemDataRole.UserRole) for i in range(self.tree.topLevelItemCount())]
        if event.classes_changed or listed != [a.id for a in annotations]:
            self.refresh()
            return
        counted = False
        for number, annotation in enumerate(annotations, start=1):
            if annotation.id in event.annotation_ids:
                self._fill(self._item(number - 1), number, annotation)
                counted |= annotation.kind is AnnotationKind.POINTS
        if counted:
            self.tree.resizeColumnToContents(0)  # a points row's title carries its count, which grows per click

    def _row(self, number: int, annotation: Annotation) -> QTreeWidgetItem:
        item = QTreeWidgetItem()
        item.setData(0, Qt.ItemDataRole.UserRole, annotation.id)
        for column in (2, 3):
            item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._fill(item, number, annotation)
        return item

    def _fill(self, item: QTreeWidgetItem, number: int, annotation: Annotation) -> None:
        title = annotation.name or f"{annotation.kind.value.capitalize()} {number}"
        if annotation.kind is AnnotationKind.POINTS:
            title += f" ({len(annotation.vertices)} point{'s' if len(annotation.vertices) != 1 else ''})"
        cls = annotation.classification
        item.setText(0, title + (" (locked)" if annotation.locked else ""))
        item.setText(1, cls.name if cls else "")
        item.setIcon(1, colour_icon(cls.colour) if cls is not None else QIcon())
        item.setText(2, f"{annotation.area(self.mpp):,.1f}" if annotation.kind in AREA_KINDS else "")
        measured = annotation.kind is not AnnotationKind.POINTS
        item.setText(3, f"{annotation.perimeter(self.mpp):,.1f}" if measured else "")

    def rows(self) -> list[list[str]]:
        return [[self._item(i).text(c) for c in range(4)] for i in range(self.tree.topLevelItemCount())]

    def _item(self, row: int) -> QTreeWidgetItem:
        item = self.tree.topLevelItem(row)
        assert item is not None, f"row {row} is past the list's end"
        return item

    def _classify_selected(self) -> None:
        if self.document is None:
            return
        ids = {annotation_id for annotation_id in self.selected_ids if annotation_id in self.document}
        if ids:
            try:
                self.document.classify(ids, self.current_class())
            except AnnotationEditError as exc:
                self.problem.emit(str(exc))

    def _edit_classes(self) -> None:
        """A small editor: pick a class, then rename, recolour or remove it, or add a new one."""
        if self.document is None:
            return
        names = [c.name for c in self.document.classes]
        actions = ["Add a class…"] + [f"Rename {n}…" for n in names] + [f"Recolour {n}…" for n in names]
        actions += [f"Remove {n}" for n in names]
        choice, ok = QInputDialog.getItem(self, "Classes", "Change:", actions, 0, False)
        if not ok:
            return
        try:
            if choice == actions[0]:
                name, ok = QInputDialog.getText(self, "New class", "Name:")
                colour = QColorDialog.getColor(QColor(0, 120, 255), self, "Colour") if ok and name else None
                if colour is not None and colour.isValid():
                    self.document.add_class(name, (colour.red(), colour.green(), colour.blue()))
            elif choice.startswith("Rename "):
                old = choice.removeprefix("Rename ").removesuffix("…")
                name, ok = QInputDialog.getText(self, "Rename class", "New name:", text=old)
                if ok and name and name != old:
                    self.document.rename_class(old, name)
            elif choice.startswith("Recolour "):
                name = choice.removeprefix("Recolour ").removesuffix("…")
                cls = self.document.class_named(name)
                assert cls is not None, "the name was picked from the document's own classes"
                colour = QColorDialog.getColor(QColor(*cls.colour), self, name)
                if colour.isValid():
                    self.document.recolour_class(name, (colour.red(), colour.green(), colour.blue()))
            else:
                self.document.remove_class(choice.removeprefix("Remove "))
            save_classes(self.document.classes)  # the user's own edit of the list: kept for next time
        except (AnnotationEditError, ValueError) as exc:
            self.problem.emit(str(exc))
        except OSError as exc:
            self.problem.emit(f"the class list could not be saved in your settings ({exc.strerror})")

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        if event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_requested.emit()
        else:
            super().keyPressEvent(event)
