"""Catalog work off the GUI thread: imports with progress and cancel, rebuilds, missing-file checks,
and patient-panel thumbnails.

Each job uses its own SQLite connection in its own thread (sqlite3 connections stay in the thread that
made them) and reports back through queued signals, so the window keeps painting while ten thousand
headers are read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from medviewer.catalog import Importer, ImportReport, Progress, check_missing, connect, rebuild
from medviewer.core.errors import MedviewerError
from medviewer.core.logs import log_unexpected
from medviewer.io.thumbnails import ThumbnailCache

log = logging.getLogger(__name__)


class ImportJob(QObject):
    """One import (or rebuild) at a time; ``finished(report)`` or ``failed(message)`` ends it.

    The job counts as running until its ending signal is handled on the GUI thread, not merely until
    its thread returns: a caller waiting for an idle window then sees the panel already updated.
    """

    progress = Signal(object)  # Progress
    finished = Signal(object)  # ImportReport
    failed = Signal(str)
    _ended = Signal(object, str)  # (report or None, message): from the job's thread

    def __init__(self, catalog: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self._importer: Importer | None = None
        self._thread: threading.Thread | None = None
        self._active = False
        self._ended.connect(self._on_ended)

    def running(self) -> bool:
        return self._active

    def start_import(self, paths: list[Path], copy_to_store: bool = False) -> None:
        self._importer = Importer(paths, catalog=self.catalog, copy_to_store=copy_to_store, progress=self.progress.emit)
        self._start(self._importer.run)

    def start_rebuild(self) -> None:
        self._importer = None
        self._start(lambda: rebuild(self.catalog))

    def cancel(self) -> None:
        if self._importer is not None:
            self._importer.cancel()

    def wait(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _start(self, work: Callable[[], ImportReport]) -> None:
        assert not self._active, "one catalog job at a time"
        self._active = True
        self._thread = threading.Thread(target=self._run, args=(work,), name="catalog-job", daemon=True)
        self._thread.start()

    def _run(self, work: Callable[[], ImportReport]) -> None:
        try:
            report = work()
        except MedviewerError as exc:
            self._ended.emit(None, str(exc))
        except Exception as exc:  # a bug must end in a message, not a silent dead thread
            log_unexpected(log, "catalog job failed")
            self._ended.emit(None, f"{self.catalog}: the catalog job stopped ({type(exc).__name__})")
        else:
            self._ended.emit(report, "")

    def _on_ended(self, report: ImportReport | None, message: str) -> None:
        self._active = False
        if report is None:
            self.failed.emit(message)
        else:
            self.finished.emit(report)


class MissingCheck(QObject):
    """Flags files moved or deleted since import, so the panel greys them instead of failing on a click."""

    finished = Signal(int)  # how many files are missing
    _ended = Signal(int)

    def __init__(self, catalog: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self._active = False
        self._again = False  # asked again while running: files may have gone since this check looked
        self._ended.connect(self._on_ended)

    def start(self) -> None:
        if self._active:
            self._again = True
            return
        self._active = True
        threading.Thread(target=self._run, name="catalog-missing", daemon=True).start()

    def running(self) -> bool:
        return self._active

    def _run(self) -> None:
        missing: list[str] = []
        try:
            conn = connect(self.catalog, verify=False)
            try:
                missing = check_missing(conn)
            finally:
                conn.close()
        except Exception:  # the panel then simply shows what the catalog last knew
            log_unexpected(log, "missing-file check failed")
        self._ended.emit(len(missing))

    def _on_ended(self, count: int) -> None:
        self._active = False
        if self._again:
            self._again = False
            self.start()
        self.finished.emit(count)


class _ThumbnailRelay(QObject):
    done = Signal(str, object)  # (item key, uint8 pixels, or None when the file could not be read)


class _ThumbnailTask(QRunnable):
    def __init__(self, key: str, make: Callable[[], np.ndarray], relay: _ThumbnailRelay) -> None:
        super().__init__()
        self.key, self.make, self.relay = key, make, relay

    def run(self) -> None:
        pixels = None
        try:
            pixels = self.make()
        except MedviewerError:
            pass  # the row keeps its plain look; opening it reports the problem properly
        except Exception:
            log_unexpected(log, "thumbnail failed")
        self.relay.done.emit(self.key, pixels)


class ThumbnailMaker(QObject):
    """Middle-slice and slide thumbnails, one at a time in the background, cached on disk by the cache."""

    made = Signal(str, object)

    def __init__(self, cache: ThumbnailCache | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache = cache or ThumbnailCache()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._relay = _ThumbnailRelay(self)
        self._relay.done.connect(self._done)
        self._asked: set[str] = set()
        self._pending = 0  # asked and not yet handed back on the GUI thread

    def series(self, key: str, files: list[Path]) -> None:
        self._ask(key, lambda: self.cache.series_thumbnail(files))

    def slide(self, key: str, path: Path) -> None:
        self._ask(key, lambda: self.cache.slide_thumbnail(path))

    def busy(self) -> bool:
        return self._pending > 0

    def shutdown(self) -> None:
        self._pool.clear()
        self._pool.waitForDone()
        self._pending = 0

    def _ask(self, key: str, make: Callable[[], np.ndarray]) -> None:
        if key not in self._asked:
            self._asked.add(key)
            self._pending += 1
            self._pool.start(_ThumbnailTask(key, make, self._relay))

    def _done(self, key: str, pixels: np.ndarray | None) -> None:
        self._pending -= 1
        if pixels is not None:
            self.made.emit(key, pixels)


def describe_progress(progress: Progress) -> str:
    """What the import bar says: how far, how fast, how long still."""
    eta = f" · about {progress.eta_s:.0f} s left" if progress.eta_s is not None else ""
    return f"{progress.done:,} of {progress.total:,} files · {progress.files_per_s:,.0f} files/s{eta}"


def describe_report(report: ImportReport) -> str:
    parts = [f"{report.added} added", f"{report.updated} updated", f"{report.unchanged} unchanged"]
    if report.slides:
        parts.append(f"{report.slides} slide(s)")
    if report.unreadable:
        parts.append(f"{len(report.unreadable)} unreadable")
    verb = "Import cancelled" if report.cancelled else "Import finished"
    return f"{verb}: " + ", ".join(parts) + f" in {report.elapsed_s:.1f} s"
