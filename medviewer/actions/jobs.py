"""The background jobs of the program, as data: what kind, on which image, and the work itself.

A job is described once here and run by whoever holds it: the window's job runner on a worker thread,
or the command line in its own thread. Its kind is an enum, so the code that shows a result matches on a
type rather than on strings spelled in several files.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from medviewer.core.volume import Volume
from medviewer.io.slide import Slide

#: Told how far a job is (0..1) and what it is doing, in words a person reads.
Progress = Callable[[float, str], None]
#: Asked now and then by a job; True stops it at the next safe point (``medviewer.ai.inference.Cancelled``).
CancelCheck = Callable[[], bool]

T = TypeVar("T")
#: Covariant: a job that yields a ``SliceRun`` is a job that yields a ``ModelRun`` (``work`` only returns it).
T_co = TypeVar("T_co", covariant=True)


class JobKind(enum.Enum):
    """Every kind of work the window runs in the background, except the tile loader's streaming reads."""

    OPEN = "open"
    OPEN_OVERLAY = "open an overlay"
    LIST_SERIES = "list series"
    THUMBNAIL = "make a thumbnail"
    SAVE = "save"
    EXPORT = "export"
    IMPORT = "import"
    EDIT_CATALOG = "change the catalog"
    REBUILD_CATALOG = "rebuild the catalog"
    CHECK_MISSING = "check for missing files"
    CLASSIFY_SLICES = "classify slices"
    CLASSIFY_VOLUME = "classify a volume"
    CLASSIFY_SLIDE = "classify a slide"
    EXPLAIN_VOLUME = "explain a volume"
    EXPLAIN_PATCH = "explain a patch"
    PROBE_RUNTIME = "probe the runtime"

    @property
    def reads_a_file(self) -> bool:
        """Whether a failure is the file's: its message then says the file could not be opened."""
        return self in (JobKind.OPEN, JobKind.OPEN_OVERLAY, JobKind.LIST_SERIES)


#: The kinds that run a model: one at a time, cancelled together.
MODEL_KINDS = (
    JobKind.CLASSIFY_SLICES,
    JobKind.CLASSIFY_VOLUME,
    JobKind.CLASSIFY_SLIDE,
    JobKind.EXPLAIN_VOLUME,
    JobKind.EXPLAIN_PATCH,
)


@dataclass(frozen=True, eq=False)
class Job(Generic[T_co]):
    """``work(progress, cancelled)`` returns the job's typed result or raises ``MedviewerError`` (a message
    for the person), ``medviewer.ai.inference.Cancelled``, or anything else (a bug, logged by the runner)."""

    kind: JobKind
    description: str
    work: Callable[[Progress, CancelCheck], T_co]
    #: The image the job works on, when it has one: a result for another image than the one shown is not
    #: drawn over the shown one.
    image: Volume | Slide | None = None
    #: The file or folder the job reads, when it reads one: what a failure's message names.
    path: Path | None = None


def plain_job(
    kind: JobKind,
    description: str,
    work: Callable[[], T],
    image: Volume | Slide | None = None,
    path: Path | None = None,
) -> Job[T]:
    """A job that reports no progress and cannot stop midway (a save, a thumbnail, a catalog check)."""
    return Job(kind, description, lambda _progress, _cancelled: work(), image, path)


def no_progress(fraction: float, words: str) -> None:
    """For callers that show no progress (tests, scripts)."""


def never_cancelled() -> bool:
    return False
