"""The AI panel. It reports the compute runtime, probed in the background after the window is up.

PyTorch takes seconds to import, so it is imported on a pool thread once the window is showing; the
panel says what it is doing until then. ``runtime_ready`` fires when the probe has finished.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from medviewer.ai.runtime import describe_runtime
from medviewer.core.logs import log_unexpected

log = logging.getLogger(__name__)


class _ProbeRelay(QObject):
    done = Signal(str, float)


class _ProbeTask(QRunnable):
    def __init__(self, relay: _ProbeRelay) -> None:
        super().__init__()
        self.relay = relay

    def run(self) -> None:
        try:
            text = describe_runtime()
        except Exception as exc:  # a broken torch install must not take the window down
            log_unexpected(log, "AI runtime unavailable")
            text = f"The AI runtime could not be loaded ({type(exc).__name__}); images can still be viewed."
        self.relay.done.emit(text, time.time())


class AiPanel(QWidget):
    runtime_ready = Signal(float)  # epoch seconds when torch finished importing

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.runtime_label = QLabel("Waiting to load the AI runtime…")
        self.runtime_label.setWordWrap(True)
        box = QGroupBox("Runtime")
        QVBoxLayout(box).addWidget(self.runtime_label)
        layout = QVBoxLayout(self)
        layout.addWidget(box)
        layout.addStretch(1)
        self._relay = _ProbeRelay(self)
        self._relay.done.connect(self._on_probe)
        self._pool = QThreadPool(self)
        self.probing = False
        self.ready = False

    def schedule_probe(self, delay_ms: int = 0) -> None:
        """Probe from the event loop after ``delay_ms``; counts as busy from now on."""
        if self.probing or self.ready:
            return
        self.probing = True
        QTimer.singleShot(delay_ms, self._start_probe)

    def _start_probe(self) -> None:
        self.runtime_label.setText("Loading the AI runtime in the background…")
        self._pool.start(_ProbeTask(self._relay))

    def shutdown(self) -> None:
        """Let a running probe finish: an import cut off by interpreter exit crashes the process."""
        self._pool.waitForDone()

    def _on_probe(self, text: str, finished_at: float) -> None:
        self.runtime_label.setText(text)
        self.probing = False
        self.ready = True
        self.runtime_ready.emit(finished_at)
