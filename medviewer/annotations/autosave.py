"""Saving a document's annotations a moment after each edit, without Qt.

The window owns the clock: it asks ``due()`` from a QTimer every second or two, and ``detach()`` when the
slide is closed or the application quits; so every edit is on disk within ``delay_s`` plus one timer period
and the time a save takes. A save is taken as a ``Snapshot`` (the GeoJSON bytes at one revision) on the
thread that edits the document, written by ``write_snapshot`` on any thread, and ``settle``d back: the
window's thread never waits for a disk. Each save writes the whole sidecar atomically (see
``atomic_write``), so a crash or a power cut leaves the previous save or this one. A save that fails (disk
full, folder gone) keeps the edits pending, is retried at the next due time, and returns a result the window
can show. ``save_if_due`` and ``flush`` do all three steps at once, for callers without a window.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medviewer.annotations.document import AnnotationDocument, ChangeEvent
from medviewer.annotations.geojson import geojson_bytes
from medviewer.core.logs import safe_path
from medviewer.io.atomic_write import write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SaveResult:
    path: Path
    revision: int
    #: None when saved; otherwise a sentence naming the file and what went wrong.
    error: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """The annotations to write to ``path`` as they were at ``revision``: ``count`` of them as GeoJSON."""

    path: Path
    revision: int
    count: int
    data: bytes


def write_snapshot(snapshot: Snapshot) -> SaveResult:
    """Write a snapshot atomically, on any thread; a failure is a result naming the file, not an exception."""
    try:
        write_atomic(snapshot.path, snapshot.data)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        log.warning("autosave to %s failed: %s", safe_path(snapshot.path), reason)
        message = f"{snapshot.path}: annotations could not be saved ({reason})"
        return SaveResult(snapshot.path, snapshot.revision, message)
    return SaveResult(snapshot.path, snapshot.revision)


class Autosaver:
    def __init__(
        self,
        document: AnnotationDocument,
        path: Path,
        delay_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Starts listening to ``document``; ``path`` is normally ``load_sidecar(...).path``."""
        self.document, self.path, self.delay_s, self._clock = document, Path(path), delay_s, clock
        self._due_at: float | None = None
        document.changed.append(self.note_change)

    def note_change(self, event: ChangeEvent | None = None) -> None:
        """Record that a save is due ``delay_s`` after the first edit not yet saved."""
        if self._due_at is None:
            self._due_at = self._clock() + self.delay_s

    @property
    def due_at(self) -> float | None:
        """Clock time at which ``save_if_due`` will save, or None when nothing waits."""
        return self._due_at

    def due(self, now: float | None = None) -> Snapshot | None:
        """The save to make, when the delay since the first unsaved edit has passed; None when nothing is due."""
        now = self._clock() if now is None else now
        if self._due_at is None or now < self._due_at:
            return None
        return self.pending()

    def pending(self) -> Snapshot | None:
        """The save to make now if there are unsaved edits; edits made after it arm the next save."""
        self._due_at = None
        if not self.document.dirty:
            return None
        annotations = self.document.annotations
        return Snapshot(self.path, self.document.revision, len(annotations), geojson_bytes(annotations))

    def settle(self, result: SaveResult) -> None:
        """A written revision is saved (a later one may be pending already); a failed save is tried again."""
        if result.error is None:
            self.document.saved_revision = max(self.document.saved_revision, result.revision)
        elif self._due_at is None:
            self._due_at = self._clock() + self.delay_s

    def save_if_due(self, now: float | None = None) -> SaveResult | None:
        """Save if the delay since the first unsaved edit has passed; None when nothing was done."""
        return self._write(self.due(now))

    def flush(self) -> SaveResult | None:
        """Save now if there are unsaved edits (on closing the slide or quitting)."""
        return self._write(self.pending())

    def detach(self) -> Snapshot | None:
        """Stop listening to the document; the last save to make, if edits are pending."""
        self.document.changed.remove(self.note_change)
        return self.pending()

    def close(self) -> SaveResult | None:
        """Save what is pending and stop listening to the document."""
        return self._write(self.detach())

    def _write(self, snapshot: Snapshot | None) -> SaveResult | None:
        if snapshot is None:
            return None
        result = write_snapshot(snapshot)
        self.settle(result)
        return result
