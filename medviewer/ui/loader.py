"""Opening files off the GUI thread, with a count of what is still pending.

The window never decodes pixels itself: a thread pool opens each path (an image, or an overlay for
the shown volume) and posts back either the finished result or a message naming the file and the
reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from medviewer.core.errors import MedviewerError, is_decoder_panic
from medviewer.core.logs import log_unexpected, safe_path
from medviewer.io.preview import open_for_viewing

log = logging.getLogger(__name__)


class _Relay(QObject):
    opened = Signal(object, object)  # (request, result)
    failed = Signal(object, str)  # (request, message)


class _OpenTask(QRunnable):
    def __init__(self, request: object, path: Path, work: Callable[[], object], relay: _Relay) -> None:
        super().__init__()
        self.request, self.path, self.work, self.relay = request, path, work, relay

    def run(self) -> None:
        try:
            result = self.work()
        except MedviewerError as exc:
            self.relay.failed.emit(self.request, str(exc))
        except Exception as exc:  # a reader bug must not take the window down
            log_unexpected(log, "unexpected error opening %s", safe_path(self.path))
            self.relay.failed.emit(self.request, f"{self.path}: could not be opened ({type(exc).__name__})")
        except BaseException as exc:  # a Rust decoder's panic passes every ``except Exception``
            if not is_decoder_panic(exc):
                raise
            log_unexpected(log, "decoder panic opening %s", safe_path(self.path))
            self.relay.failed.emit(self.request, f"{self.path}: is damaged: its decoder failed ({type(exc).__name__})")
        else:
            self.relay.opened.emit(self.request, result)


class ImageLoader(QObject):
    """Emits ``opened(request, result)`` or ``failed(request, message)``, then ``idle`` when none pend."""

    opened = Signal(object, object)
    failed = Signal(object, str)
    idle = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._relay = _Relay(self)
        self._relay.opened.connect(self._on_opened)
        self._relay.failed.connect(self._on_failed)
        self.pending = 0

    def open(self, path: Path, request: object) -> None:
        """Open what ``path`` holds for what it is: an image with its preview, a report, a segmentation."""
        self.submit(path, request, lambda: open_for_viewing(path))

    def submit(self, path: Path, request: object, work: Callable[[], object]) -> None:
        """Run ``work`` (which reads ``path``) off the GUI thread."""
        self.pending += 1
        self._pool.start(_OpenTask(request, path, work, self._relay))

    def _settle(self) -> None:
        self.pending -= 1
        if self.pending == 0:
            self.idle.emit()

    def _on_opened(self, request: object, result: object) -> None:
        self.opened.emit(request, result)
        self._settle()

    def _on_failed(self, request: object, message: str) -> None:
        self.failed.emit(request, message)
        self._settle()

    def shutdown(self) -> None:
        """Drop queued opens and wait for the ones already reading."""
        self._pool.clear()
        self._pool.waitForDone()
