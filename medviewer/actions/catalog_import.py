"""Adding images to the catalog, rebuilding it, and checking it against the disk.

The window's import menu, the quiet import of an image just opened, ``medviewer import`` and
``medviewer infer`` all go through ``import_into_catalog``; the importer records each batch in the audit
trail. Progress arrives as the importer's counts; the words for them are made here once, for the window's
bar and the terminal alike.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medviewer.actions.jobs import CancelCheck, Job, JobKind, Progress, never_cancelled, plain_job
from medviewer.catalog.importer import Importer, ImportReport
from medviewer.catalog.importer import Progress as ImportCounts
from medviewer.catalog.maintenance import check_missing, rebuild
from medviewer.catalog.schema import connect

#: Unreadable files a report lists by name; the rest are counted.
LISTED_UNREADABLE = 20


def import_into_catalog(
    paths: list[Path],
    catalog: Path | None = None,
    copy_to_store: bool = False,
    progress: Callable[[ImportCounts], None] | None = None,
    cancelled: CancelCheck = never_cancelled,
) -> ImportReport:
    """Import files, folders (searched recursively) or DICOMDIRs; ``cancelled`` is asked at each progress
    report and stops the import between batches (what was written stays)."""
    importer: Importer

    def report(counts: ImportCounts) -> None:
        if cancelled():
            importer.cancel()
        if progress is not None:
            progress(counts)

    importer = Importer(paths, catalog=catalog, copy_to_store=copy_to_store, progress=report)
    return importer.run()


def import_job(paths: list[Path], catalog: Path, copy_to_store: bool) -> Job[ImportReport]:
    """An import whose progress is told as a fraction of the files found and in words."""

    def work(progress: Progress, cancelled: CancelCheck) -> ImportReport:
        def told(counts: ImportCounts) -> None:
            if counts.total:
                progress(counts.done / counts.total, progress_words(counts))

        return import_into_catalog(paths, catalog, copy_to_store, told, cancelled)

    return Job(JobKind.IMPORT, f"Importing {len(paths)} item(s)", work)


def rebuild_job(catalog: Path) -> Job[ImportReport]:
    return plain_job(JobKind.REBUILD_CATALOG, "Rebuilding the catalog", lambda: rebuild(catalog))


def count_missing(catalog: Path) -> int:
    """Flag the files moved or deleted since import (and unflag those back); how many are missing now."""
    connection = connect(catalog, verify=False)
    try:
        return len(check_missing(connection))
    finally:
        connection.close()


def missing_check_job(catalog: Path) -> Job[int]:
    return plain_job(JobKind.CHECK_MISSING, "Checking for missing files", lambda: count_missing(catalog))


def progress_words(progress: ImportCounts) -> str:
    """How far, how fast, how long still."""
    eta = f" · about {progress.eta_s:.0f} s left" if progress.eta_s is not None else ""
    return f"{progress.done:,} of {progress.total:,} files · {progress.files_per_s:,.0f} files/s{eta}"


def report_words(report: ImportReport) -> str:
    parts = [f"{report.added} added", f"{report.updated} updated", f"{report.unchanged} unchanged"]
    if report.slides:
        parts.append(f"{report.slides} slide(s)")
    if report.unreadable:
        parts.append(f"{len(report.unreadable)} unreadable")
    verb = "Import cancelled" if report.cancelled else "Import finished"
    return f"{verb}: " + ", ".join(parts) + f" in {report.elapsed_s:.1f} s"


def unreadable_lines(report: ImportReport) -> list[str]:
    """The files not imported, each with why; past ``LISTED_UNREADABLE`` only their number."""
    lines = [f"{item.path}: {item.reason}" for item in report.unreadable[:LISTED_UNREADABLE]]
    if len(report.unreadable) > LISTED_UNREADABLE:
        lines.append(f"... and {len(report.unreadable) - LISTED_UNREADABLE} more")
    return lines
