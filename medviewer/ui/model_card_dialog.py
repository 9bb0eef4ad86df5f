"""The model card as a person reads it before trusting a model: facts first, then the card, scrollable.

A message box grows with its text, so a real card (pages of Markdown) made it taller than a 1080p screen,
with its buttons out of reach, and showed the Markdown's raw asterisks and hashes. Here the facts are a
fixed block, the card is rendered from Markdown, and the dialog never exceeds most of the screen.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QTextDocument
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextBrowser, QVBoxLayout, QWidget

from medviewer.ai.commands import RUNS_CODE, card_facts
from medviewer.ai.package import ModelPackage

#: The dialog's largest share of the screen, so its buttons always stay on it.
SCREEN_SHARE = 0.8


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
        self.card = QTextBrowser()
        self.card.setObjectName("cardText")
        self.card.setOpenExternalLinks(False)  # the card is offline text: no link opens a browser
        # Markdown without its HTML: a card must not carry markup or images of its own
        self.card.document().setMarkdown(
            package.card or "*This package has no model card (docs/README.md).*",
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
