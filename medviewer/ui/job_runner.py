"""The window's one way to run work in the background (all but the tile loader's streaming reads).

A job (``medviewer.actions.jobs.Job``) runs on the thread pool of its lane, and what it ends in is handed
back on the GUI thread to the callbacks given with it: its typed result, one sentence on a failure (errors
are turned into words here and nowhere else), or its cancellation. Lanes keep work that must not overlap
apart: model runs one at a time (one model on one device), saves and exports one at a time and in order
(an older save must never land after a newer one), catalog jobs one at a time (one writer), reads two at a
time. ``busy()`` counts every job from submission until its callback is called, so a caller waiting for an
idle window (between events) sees the window already updated.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from medviewer.actions.jobs import MODEL_KINDS, Job, JobKind
from medviewer.core.errors import MedviewerError, is_decoder_panic
from medviewer.core.logs import log_unexpected, safe_path

log = logging.getLogger(__name__)

T = TypeVar("T")


class Lane(enum.Enum):
    READ = "read"  # opening images, thumbnails, the runtime probe
    MODEL = "model"  # model runs and saliency
    WRITE = "write"  # saves, exports, reports: in the order asked
    CATALOG = "catalog"  # imports, rebuilds, missing-file checks


THREADS = {Lane.READ: 2, Lane.MODEL: 1, Lane.WRITE: 1, Lane.CATALOG: 1}


LANES: dict[JobKind, Lane] = {
    JobKind.OPEN: Lane.READ,
    JobKind.OPEN_OVERLAY: Lane.READ,
    JobKind.LIST_SERIES: Lane.READ,
    JobKind.THUMBNAIL: Lane.READ,
    JobKind.PROBE_RUNTIME: Lane.READ,
    JobKind.CLASSIFY_SLICES: Lane.MODEL,
    JobKind.CLASSIFY_VOLUME: Lane.MODEL,
    JobKind.CLASSIFY_SLIDE: Lane.MODEL,
    JobKind.EXPLAIN_VOLUME: Lane.MODEL,
    JobKind.EXPLAIN_PATCH: Lane.MODEL,
    JobKind.SAVE: Lane.WRITE,
    JobKind.EXPORT: Lane.WRITE,
    JobKind.IMPORT: Lane.CATALOG,
    JobKind.EDIT_CATALOG: Lane.CATALOG,
    JobKind.REBUILD_CATALOG: Lane.CATALOG,
    JobKind.CHECK_MISSING: Lane.CATALOG,
}


class Ending(enum.Enum):
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(eq=False)
class Ticket(Generic[T]):
    """A submitted job and what to call on the GUI thread when it progresses and ends."""

    job: Job[T]
    on_done: Callable[[T], None]
    on_failed: Callable[[str], None] | None = None
    on_progress: Callable[[float, str], None] | None = None
    on_cancelled: Callable[[], None] | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancel_event.set()


@dataclass(frozen=True, eq=False)
class _Outcome:
    ticket: Ticket[Any]
    ending: Ending
    result: object = None
    message: str = ""


class _Relay(QObject):
    ended = Signal(object)  # _Outcome, queued from the job's thread
    progressed = Signal(object, float, str)  # (Ticket, fraction, words)


class _Task(QRunnable):
    def __init__(self, ticket: Ticket[Any], relay: _Relay) -> None:
        super().__init__()
        self.ticket, self.relay = ticket, relay

    def run(self) -> None:
        from medviewer.ai.inference import Cancelled

        ticket = self.ticket
        if ticket.cancel_event.is_set():
            self.relay.ended.emit(_Outcome(ticket, Ending.CANCELLED))
            return
        try:
            result = ticket.job.work(
                lambda fraction, words: self.relay.progressed.emit(ticket, fraction, words), ticket.cancel_event.is_set
            )
        except Cancelled:
            self.relay.ended.emit(_Outcome(ticket, Ending.CANCELLED))
        except BaseException as exc:  # a reader's or model's bug, a decoder's panic: never the window's end
            if isinstance(exc, (KeyboardInterrupt, SystemExit)) or not (
                isinstance(exc, Exception) or is_decoder_panic(exc)
            ):
                raise
            self.relay.ended.emit(_Outcome(ticket, Ending.FAILED, message=failure_words(ticket.job, exc)))
        else:  # a job that returns has finished, even when asked to stop (an import's partial report; a run
            # that ended before it noticed, and is recorded): its result is the truth to show
            self.relay.ended.emit(_Outcome(ticket, Ending.DONE, result))


def failure_words(job: Job[Any], exc: BaseException) -> str:
    """The one sentence a failed job ends in. A ``MedviewerError`` already names its file and the reason;
    anything else is a bug or a decoder's panic, logged by type and place (never its text, which may hold a
    path) and told by what was being done."""
    if isinstance(exc, MedviewerError):
        return str(exc)
    name = type(exc).__name__
    where = safe_path(job.path) if job.path is not None else job.kind.value
    if is_decoder_panic(exc):
        log_unexpected(log, "decoder panic in %s", where)
        return f"{job.path or job.description}: is damaged: its decoder failed ({name})"
    log_unexpected(log, "unexpected error in %s", where)
    if job.path is not None and job.kind.reads_a_file:
        return f"{job.path}: could not be opened ({name})"
    return f"{job.description} failed ({name}: {exc})"


class JobRunner(QObject):
    """Runs jobs on their lanes; ``idle`` is emitted when the last pending job's callback has run."""

    idle = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pools: dict[Lane, QThreadPool] = {}
        for lane in Lane:
            pool = QThreadPool(self)
            pool.setMaxThreadCount(THREADS[lane])
            self._pools[lane] = pool
        self._relay = _Relay(self)
        self._relay.ended.connect(self._on_ended)
        self._relay.progressed.connect(self._on_progress)
        self._pending: dict[Lane, list[Ticket[Any]]] = {lane: [] for lane in Lane}

    def submit(
        self,
        job: Job[T],
        on_done: Callable[[T], None],
        on_failed: Callable[[str], None] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        on_cancelled: Callable[[], None] | None = None,
    ) -> Ticket[T]:
        ticket = Ticket(job, on_done, on_failed, on_progress, on_cancelled)
        lane = LANES[job.kind]
        self._pending[lane].append(ticket)
        self._pools[lane].start(_Task(ticket, self._relay))
        return ticket

    def busy(self, *kinds: JobKind) -> bool:
        """Whether any job (of ``kinds``, when given) is still pending."""
        return any(not kinds or t.job.kind in kinds for tickets in self._pending.values() for t in tickets)

    def pending(self, *kinds: JobKind) -> list[Ticket[Any]]:
        return [t for tickets in self._pending.values() for t in tickets if not kinds or t.job.kind in kinds]

    def cancel(self, *kinds: JobKind) -> None:
        """Ask the pending jobs of ``kinds`` to stop: one not started, or one that stops by raising
        ``Cancelled``, ends in its ``on_cancelled``; one that returns (finished first, or stopped with a partial
        result such as an import's report) ends in its ``on_done``."""
        for ticket in self.pending(*kinds):
            ticket.cancel()

    def working(self) -> int:
        """How many threads are running a job now (none once ``shutdown`` has returned)."""
        return sum(pool.activeThreadCount() for pool in self._pools.values())

    def shutdown(self) -> None:
        """Cancel model runs and wait for every lane: a save cut off by exit would lose edits, and an import
        cut off mid-write crashes the process."""
        self.cancel(*MODEL_KINDS, JobKind.THUMBNAIL)
        for pool in self._pools.values():
            pool.waitForDone()

    def _on_progress(self, ticket: Ticket[Any], fraction: float, words: str) -> None:
        if ticket.on_progress is not None and not ticket.cancel_event.is_set():
            ticket.on_progress(fraction, words)

    def _on_ended(self, outcome: _Outcome) -> None:
        ticket = outcome.ticket
        # No longer pending while its callback runs (which asks whether more of its kind are), and busy() is
        # only ever asked between events, so a waiting caller still sees the callback's effects.
        self._pending[LANES[ticket.job.kind]].remove(ticket)
        try:
            if outcome.ending is Ending.DONE:
                ticket.on_done(outcome.result)
            elif outcome.ending is Ending.FAILED:
                if ticket.on_failed is not None:
                    ticket.on_failed(outcome.message)
            elif ticket.on_cancelled is not None:
                ticket.on_cancelled()
        finally:
            if not self.busy():
                self.idle.emit()
