"""Help ▸ Keyboard shortcuts: every key and mouse gesture the window answers, in one table.

Kept as data beside the dialog so the README's tables and the dialog can be checked against the same
list (``tests/ui/test_main_window.py`` presses each key listed here that it can).
"""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

#: (where, keys, what they do)
SHORTCUTS: tuple[tuple[str, str, str], ...] = (
    ("Window", "Ctrl+O", "Open files"),
    ("Window", "Ctrl+Shift+O", "Open a folder (a series chooser opens when it holds several)"),
    ("Window", "Ctrl+E", "Export the view as PNG"),
    ("Window", "Ctrl+Q", "Quit (measurements and annotations are already saved)"),
    ("Window", "F1", "This list"),
    ("Images", "Mouse wheel, PageUp/PageDown, arrow keys", "Previous / next slice or frame"),
    ("Images", "Ctrl+wheel", "Zoom around the cursor"),
    ("Images", "Middle-drag", "Pan"),
    ("Images", "Right-drag", "Window (left-right) and level (up-down)"),
    ("Images", "0", "The file's own window (or the default)"),
    ("Images", "1 to 9", "Window presets, in the order of the preset box"),
    ("Images", "R", "Reset zoom, pan and window"),
    ("Images", "Space", "Play or pause a cine loop"),
    ("Images", "Esc", "Cancel the measurement being drawn"),
    ("Images", "Delete", "Delete the measurement selected in the Measurements panel"),
    ("Slides", "Mouse wheel", "Zoom around the cursor"),
    ("Slides", "Left-drag (Move tool), middle-drag, arrow keys", "Pan"),
    ("Slides", "F", "Whole slide"),
    ("Slides", "Ctrl+Z", "Undo the last annotation change"),
    ("Slides", "Ctrl+Shift+Z, Ctrl+Y", "Redo"),
    ("Slides", "Delete", "Delete the selected annotation"),
    ("Slides", "Esc", "Cancel the shape being drawn"),
)


class ShortcutsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.table = QTableWidget(len(SHORTCUTS), 3)
        self.table.setHorizontalHeaderLabels(["Where", "Keys", "What"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, cells in enumerate(SHORTCUTS):
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(760, 560)
