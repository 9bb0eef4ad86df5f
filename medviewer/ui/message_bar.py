"""A strip at the top of the window for problems, so no error needs a modal dialog to be seen."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget


class MessageBar(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.setStyleSheet(
            "#messageBar { background: #fdecea; border: 1px solid #f5c2c0; } QLabel { color: #611a15; padding: 4px; }"
        )
        self.label = QLabel()
        self.label.setWordWrap(True)
        close = QPushButton("Dismiss")
        close.clicked.connect(self.clear)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.messages: list[str] = []
        self.hide()

    def add(self, message: str) -> None:
        self.messages.append(message)
        self.label.setText("\n".join(f"⚠ {m}" for m in self.messages[-6:]))
        self.show()

    def clear(self) -> None:
        self.messages.clear()
        self.hide()
