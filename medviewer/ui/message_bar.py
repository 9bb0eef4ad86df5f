"""A strip at the top of the window for problems, so no error needs a modal dialog to be seen.

A warning about an image (irregular slices, a pixel size at the detector) belongs to that image: it is
shown while that image is, not carried over to the next one, and not repeated when the image is shown
again. Problems that concern no image (a failed open, an export) stay until dismissed.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

#: The most messages drawn at once; the strip must not push the images off the window.
SHOWN = 6


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
        #: (image key or None for the window, text), oldest first, each once
        self._entries: list[tuple[str | None, str]] = []
        self._shown_image: str | None = None
        self._rewrite: Callable[[str], str] | None = None
        self.hide()

    @property
    def messages(self) -> list[str]:
        """What the strip shows now, as shown (file names hidden under the anonymised display)."""
        visible = [text for about, text in self._entries if about is None or about == self._shown_image]
        return [self._rewrite(text) if self._rewrite else text for text in visible]

    def add(self, message: str, about: str | None = None) -> None:
        """Show ``message``; with ``about`` (an image key) only while that image is the one shown."""
        entry = (about, message)
        if entry not in self._entries:
            self._entries.append(entry)
        self._refresh()

    def show_for(self, image: str | None) -> None:
        """The image now on screen: its own warnings show, another image's hide (until it is shown again)."""
        self._shown_image = image
        self._refresh()

    def set_rewrite(self, rewrite: Callable[[str], str] | None) -> None:
        """A function applied to every message before it is drawn (hiding file names), or None."""
        self._rewrite = rewrite
        self._refresh()

    def clear(self) -> None:
        self._entries.clear()
        self._refresh()

    def _refresh(self) -> None:
        shown = self.messages
        self.label.setText("\n".join(f"⚠ {m}" for m in shown[-SHOWN:]))
        self.setVisible(bool(shown))
