"""The model card as a person reads it before trusting a model: facts first, then the card, scrollable.

A message box grows with its text, so a real card (pages of Markdown) made it taller than a 1080p screen,
with its buttons out of reach, and showed the Markdown's raw asterisks and hashes. Here the facts are a
fixed block, the card is rendered from Markdown, and the dialog never exceeds most of the screen.

The card is text from the package, not yet trusted: its facts are plain text, its control characters are
written out (ESC as \\x1b), its Markdown is drawn without HTML, it loads no image or file and a link in it
goes nowhere, so it can neither reach outside the dialog nor look like the facts medviewer checked.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QByteArray, Qt, QUrl
from PySide6.QtGui import QGuiApplication, QTextDocument
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextBrowser, QVBoxLayout, QWidget

from medviewer.ai.model_card import RUNS_CODE, card_facts, card_lines
from medviewer.ai.package import ModelPackage

#: The dialog's largest share of the screen, so its buttons always stay on it.
SCREEN_SHARE = 0.8
NO_CARD = "*This package has no model card (docs/README.md).*"


class _CardView(QTextBrowser):
    """A QTextBrowser that loads nothing a card names: an image or a file on this computer, by absolute or
    relative path, is neither read nor shown (QTextDocument reads a local file itself when the view returns
    nothing, so an empty non-null value is returned)."""

    def loadResource(self, kind: int, name: QUrl | str) -> Any:  # noqa: N802 - Qt's name
        return QByteArray(b" ")


class ModelCardDialog(QDialog):
    """The card of ``package``; with ``question`` (e.g. "Approve it?"), Yes and No buttons instead of OK."""

    def __init__(
        self, package: ModelPackage, hashes: dict, question: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Model card: {package.name} {package.version}")
        facts = QLabel(f"{card_facts(package, hashes)}\n\n{RUNS_CODE}")
        facts.setTextFormat(Qt.TextFormat.PlainText)  # metadata is text from the package, never markup
        facts.setObjectName("cardFacts")
        facts.setStyleSheet("font-family: monospace;")
        facts.setWordWrap(True)
        self.card = _CardView()
        self.card.setObjectName("cardText")
        self.card.setOpenLinks(False)  # the card is offline text: no link opens a browser or another file
        # Markdown without its HTML: a card must not carry markup or images of its own
        card = "\n".join(card_lines(package.card)) if package.card else NO_CARD
        self.card.document().setMarkdown(
            card,
            QTextDocument.MarkdownFeature.MarkdownDialectGitHub | QTextDocument.MarkdownFeature.MarkdownNoHTML,
        )
        layout = QVBoxLayout(self)
        layout.addWidget(facts)
        layout.addWidget(self.card, 1)
        if question:
            layout.addWidget(QLabel(question))
            buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Yes | QDialogButtonBox.StandardButton.No)
        else:
            buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        screen = (parent.screen() if parent is not None else None) or QGuiApplication.primaryScreen()
        available = screen.availableGeometry()
        self.setMaximumHeight(int(available.height() * SCREEN_SHARE))
        self.resize(min(820, int(available.width() * SCREEN_SHARE)), int(available.height() * SCREEN_SHARE))
