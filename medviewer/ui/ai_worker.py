"""One background thread that runs model jobs from a queue, so the window never waits for a model.

A job is a function ``work(progress, cancelled) -> result`` that runs on the worker thread, where torch
is imported and its thread settings made. It reports ``progress(fraction, words)`` and checks
``cancelled()`` between batches, so Cancel takes effect within one batch. Results, failures and
cancellations come back as queued signals; nothing a job does can raise into the GUI thread. Closing
the window cancels the running job, drops the queued ones and waits for the thread to end.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QThread, Signal

from medviewer.core.errors import MedviewerError
from medviewer.core.logs import log_unexpected

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
Work = Callable[[Progress, Callable[[], bool]], object]


@dataclass(eq=False)
class AiJob:
    """``kind`` tells the receiver what ``result`` holds (e.g. "slices", "saliency")."""

    kind: str
    description: str
    work: Work
    context: dict = field(default_factory=dict)
    cancel_event: threading.Event = field(default_factory=threading.Event)

    @property
    def image(self) -> object | None:
        """The slide or volume the job works on (``context["slide"]`` or ``["volume"]``)."""
        return self.context.get("slide", self.context.get("volume"))


class _Stop:
    """Put on the queue to end the thread."""


class AiWorker(QThread):
    progress = Signal(object, float, str)  # (job, fraction, words)
    finished_job = Signal(object, object)  # (job, result)
    failed = Signal(object, str)  # (job, message)
    cancelled = Signal(object)  # (job)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._jobs: queue.Queue[AiJob | _Stop] = queue.Queue()
        self._current: AiJob | None = None
        self._pending = 0  # submitted and not yet reported back on the GUI thread
        for signal in (self.finished_job, self.failed, self.cancelled):
            signal.connect(self._settle)

    def submit(self, job: AiJob) -> None:
        if not self.isRunning():
            self.start()
        self._pending += 1
        self._jobs.put(job)

    def busy(self) -> bool:
        return self._pending > 0

    def cancel(self) -> None:
        """Stop the running job at its next batch and drop the queued ones."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if isinstance(job, AiJob):
                job.cancel_event.set()
                self.cancelled.emit(job)
        current = self._current
        if current is not None:
            current.cancel_event.set()

    def shutdown(self) -> None:
        self.cancel()
        if self.isRunning():
            self._jobs.put(_Stop())
            self.wait()

    def run(self) -> None:
        from medviewer.ai.inference import set_torch_threads

        set_torch_threads()
        while not isinstance(job := self._jobs.get(), _Stop):
            if job.cancel_event.is_set():
                continue  # already reported as cancelled by cancel()
            self._current = job
            self._run_one(job)
            self._current = None

    def _run_one(self, job: AiJob) -> None:
        from medviewer.ai.inference import Cancelled

        try:
            result = job.work(lambda fraction, words: self.progress.emit(job, fraction, words), job.cancel_event.is_set)
        except Cancelled:
            self.cancelled.emit(job)
        except MedviewerError as exc:
            self.failed.emit(job, str(exc))
        except Exception as exc:  # a model or a bug must not take the window down
            log_unexpected(log, "AI job failed")
            self.failed.emit(job, f"{job.description} failed ({type(exc).__name__}: {exc})")
        else:
            if job.cancel_event.is_set():
                self.cancelled.emit(job)
            else:
                self.finished_job.emit(job, result)

    def _settle(self, job: AiJob, *_: object) -> None:
        self._pending -= 1
