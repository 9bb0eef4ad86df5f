"""The Report panel: a DICOM structured report as its content tree, indented, readable as a document.

A report is not an image, so it gets no view of its own; the tree is what a clinician reads (findings,
measurements with their units, the images they refer to), as Weasis and OHIF show an SR.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QLabel, QTextBrowser, QVBoxLayout, QWidget

from medviewer.io.dicom_sr import SrDocument, render_sr


class ReportPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Open a DICOM structured report (SR) to read it here.")
        self.title.setWordWrap(True)
        self.text = QTextBrowser()
        self.text.setObjectName("reportText")
        self.text.setOpenLinks(False)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.text, 1)
        self.document: SrDocument | None = None
        #: The report's file, set by the window (which names it, by alias under the anonymised display).
        self.path: Path | None = None

    def show_report(self, document: SrDocument, label: str) -> None:
        """``label`` names the file as the window names files (an alias under the anonymised display)."""
        self.document = document
        self.title.setText(f"{label}: {document.sop_class}")
        # indentation carries the tree, so it is kept exactly (a fixed-width font keeps hanging lines aligned)
        self.text.setPlainText("\n".join(render_sr(document)))

    def lines(self) -> list[str]:
        """What the panel shows, one line per content item, without indentation."""
        return [line for line in self.text.toPlainText().splitlines() if line.strip()]
