"""Opening what a person chose, and recording that they did.

An image is read for what it is (``medviewer.io.preview``), and the open is written to the audit trail, a
failed open too, in the thread that read it. Adding the image to the catalog is a separate action
(``catalog_import.import_into_catalog`` with ``to_catalog``): the window shows the image first and catalogues
it in the background, the command line catalogues it before its run, and both ask ``to_catalog`` which files
of an open belong in the catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviewer.actions.jobs import CancelCheck, Job, JobKind, Progress, never_cancelled, no_progress, plain_job
from medviewer.actions.trail import ImageIdentity, Problems, identity_of, record_event
from medviewer.catalog import audit
from medviewer.catalog.browse import series_key
from medviewer.core.errors import MedviewerError
from medviewer.core.label_map import LabelMap
from medviewer.core.volume import Volume
from medviewer.io.dicom_stacks import SeriesInfo
from medviewer.io.label_maps import open_label_map
from medviewer.io.nifti import is_nifti
from medviewer.io.open_path import open_path
from medviewer.io.preview import (
    DerivedObject,
    OpenedImage,
    OpenedReport,
    catalog_series_for_viewing,
    open_for_viewing,
    series_with_preview,
)
from medviewer.io.series_listing import SeriesListing, listing_with_icons
from medviewer.io.slide import Slide
from medviewer.io.thumbnails import ThumbnailCache

Content = OpenedImage | OpenedReport | DerivedObject | list[SeriesInfo]


@dataclass(frozen=True, eq=False)
class Opened:
    """What an open produced: an image with its preview, a structured report, a segmentation or structure set
    (drawn over the series it names), or the objects of a catalog series for a person to choose from."""

    path: Path
    content: Content
    problems: Problems


@dataclass(frozen=True, eq=False)
class OpenedForRun:
    """An image opened to run a model on, without a preview."""

    path: Path
    image: Volume | Slide
    problems: Problems

    @property
    def identity(self) -> ImageIdentity:
        return identity_of(self.image, self.path)


def open_file(path: Path, progress: Progress = no_progress, cancelled: CancelCheck = never_cancelled) -> Opened:
    """A file or folder a person chose (the open dialog, a drop, the command line)."""
    progress(0.0, f"Opening {path.name}…")
    return _opened(path, audit.path_subject(path), lambda: open_for_viewing(path))


def open_catalog_series(
    files: list[Path], series_uid: str, progress: Progress = no_progress, cancelled: CancelCheck = never_cancelled
) -> Opened:
    """A series chosen in the catalog, read from exactly its recorded files (its folder may hold others)."""
    progress(0.0, "Opening the series…")
    return _opened(files[0].parent, series_key(series_uid), lambda: catalog_series_for_viewing(files, series_uid))


def open_series(files: list[Path], series_uid: str, subject: str) -> Opened:
    """One series of a folder (chosen among several, or the one a segmentation was drawn on), from exactly its
    files; ``subject`` is how the trail names the open (the series key for one found in the catalog)."""
    return _opened(files[0].parent, subject, lambda: series_with_preview(files, series_uid))


def open_job(path: Path) -> Job[Opened]:
    return Job(
        JobKind.OPEN,
        f"Opening {path.name}",
        lambda progress, cancelled: open_file(path, progress, cancelled),
        path=path,
    )


def catalog_series_job(files: list[Path], series_uid: str) -> Job[Opened]:
    return Job(
        JobKind.OPEN,
        "Opening the series",
        lambda progress, cancelled: open_catalog_series(files, series_uid, progress, cancelled),
        path=files[0].parent,
    )


def series_job(files: list[Path], series_uid: str, subject: str) -> Job[Opened]:
    return plain_job(
        JobKind.OPEN,
        "Opening the series",
        lambda: open_series(files, series_uid, subject),
        path=files[0].parent,
    )


def listing_job(path: Path) -> Job[SeriesListing]:
    """What a folder or DICOMDIR holds, with an icon per series, for a person to choose before anything opens."""
    return plain_job(JobKind.LIST_SERIES, f"Listing {path.name}", lambda: listing_with_icons(path), path=path)


def overlay_job(path: Path, volume: Volume) -> Job[LabelMap]:
    """A label map (NIfTI or DICOM SEG) resampled onto ``volume``."""
    return plain_job(
        JobKind.OPEN_OVERLAY,
        f"Opening overlay {path.name}",
        lambda: open_label_map(path, volume),
        image=volume,
        path=path,
    )


def series_thumbnail_job(cache: ThumbnailCache, files: list[Path]) -> Job[np.ndarray]:
    return plain_job(JobKind.THUMBNAIL, "A series thumbnail", lambda: cache.series_thumbnail(files))


def slide_thumbnail_job(cache: ThumbnailCache, path: Path) -> Job[np.ndarray]:
    return plain_job(JobKind.THUMBNAIL, "A slide thumbnail", lambda: cache.slide_thumbnail(path))


def open_image(path: Path) -> OpenedForRun:
    """An image to run a model on, without the window's preview: the command line's open."""
    image, problems = _read_and_record(path, audit.path_subject(path), lambda: open_path(path))
    assert isinstance(image, (Volume, Slide))
    return OpenedForRun(path, image, problems)


def to_catalog(image: Volume | Slide, path: Path) -> list[Path]:
    """The paths of an opened image the catalog should list: DICOM and slides. A NIfTI file has no patient or
    series to file it under."""
    return [] if isinstance(image, Volume) and is_nifti(path) else [path]


def _opened(path: Path, subject: str, read: Callable[[], Content]) -> Opened:
    content, problems = _read_and_record(path, subject, read)
    assert not isinstance(content, (Volume, Slide))
    return Opened(path, content, problems)


def _read_and_record(
    path: Path, subject: str, read: Callable[[], Content | Volume | Slide]
) -> tuple[Content | Volume | Slide, Problems]:
    """Read, and write the open (or the failed open) to the audit trail."""
    try:
        content = read()
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        problems = record_event("failed_open", audit.path_subject(path), {})
        if problems and isinstance(exc, MedviewerError):
            raise MedviewerError(exc.path, f"{exc.reason}. {' '.join(problems.messages)}") from exc
        raise
    image = content.image if isinstance(content, OpenedImage) else content
    if isinstance(image, (Volume, Slide)):
        kind = "slide" if isinstance(image, Slide) else "volume"
        return content, record_event("open", subject, {"kind": kind})
    if isinstance(content, OpenedReport):
        return content, record_event("open", audit.path_subject(content.path), {"kind": "structured report"})
    return content, Problems()
