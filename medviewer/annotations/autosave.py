"""Saving a document's annotations a moment after each edit, without Qt.

The window owns the clock: it calls ``save_if_due()`` from a QTimer every second or two, and ``flush()``
when the slide is closed or the application quits; so every edit is on disk within ``delay_s`` plus one
timer period. Each save writes the whole sidecar atomically (see ``atomic_write``), so a crash or a
power cut leaves the previous save or this one. A save that fails (disk full, folder gone) keeps the
edits pending, is retried at the next due time, and returns a result the window can show.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medviewer.annotations.document import AnnotationDocument, ChangeEvent
from medviewer.annotations.geojson import write_geojson
from medviewer.core.logs import safe_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SaveResult:
    path: Path
    revision: int
    #: None when saved; otherwise a sentence naming the file and what went wrong.
    error: str | None = None


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

    def save_if_due(self, now: float | None = None) -> SaveResult | None:
        """Save if the delay since the first unsaved edit has passed; None when nothing was done."""
        now = self._clock() if now is None else now
        if self._due_at is None or now < self._due_at:
            return None
        return self.flush()

    def flush(self) -> SaveResult | None:
        """Save now if there are unsaved edits (on closing the slide or quitting)."""
        if not self.document.dirty:
            self._due_at = None
            return None
        revision = self.document.revision
        try:
            write_geojson(self.path, self.document.annotations)
        except OSError as error:
            self._due_at = self._clock() + self.delay_s
            log.warning("autosave to %s failed: %s", safe_path(self.path), error.strerror or type(error).__name__)
            return SaveResult(self.path, revision, f"{self.path}: annotations could not be saved ({error.strerror})")
        self.document.saved_revision = revision
        self._due_at = None
        return SaveResult(self.path, revision)

    def close(self) -> SaveResult | None:
        """Save what is pending and stop listening to the document."""
        self.document.changed.remove(self.note_change)
        return self.flush()
