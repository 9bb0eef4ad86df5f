"""Importing files, folders and DICOMDIRs into the catalog, in the background, without Qt.

Headers only, incremental (a file whose path, size and modification time are already recorded is not
opened again), and tolerant: a file that is not DICOM or is damaged is listed with its reason and the
import goes on. Headers are parsed by a process pool when there are many (pydicom parsing is CPU-bound
and the GIL would keep a thread pool on one core); the importing thread writes batches to SQLite.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from medviewer.catalog import audit
from medviewer.catalog.files import Candidate, find_files
from medviewer.catalog.headers import DICOMDIR_SOP_CLASS, WSI_SOP_CLASS, Header, die_with_parent, read_many
from medviewer.catalog.schema import connect
from medviewer.catalog.writer import CatalogWriter, InstanceRow, SlideRow
from medviewer.core.app_dirs import data_dir
from medviewer.core.errors import CorruptFileError, MedviewerError, input_error, reading
from medviewer.core.logs import register_identifiers, safe_path
from medviewer.io.formats import WHOLE_SLIDE
from medviewer.io.slide import Slide

log = logging.getLogger(__name__)
UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")

#: Files per header-parsing task and per write transaction.
BATCH = 250
#: Below this many files to parse, starting worker processes costs more than it saves.
POOL_THRESHOLD = 1000


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    files_per_s: float
    eta_s: float | None


@dataclass(frozen=True)
class Unreadable:
    path: str
    reason: str


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    slides: int = 0
    unreadable: list[Unreadable] = field(default_factory=list)
    elapsed_s: float = 0.0
    cancelled: bool = False

    @property
    def imported(self) -> int:
        """Files now in the catalog because of this import (new or changed instances and slides)."""
        return self.added + self.updated + self.slides


class Importer:
    """One import job: ``start()`` runs it on a thread (or ``run()`` in the caller), ``wait()`` gives the report.

    ``progress`` is called from the importing thread; a Qt caller forwards it with a queued signal.
    """

    def __init__(
        self,
        paths: list[Path] | list[str],
        *,
        catalog: Path | None = None,
        copy_to_store: bool = False,
        progress: Callable[[Progress], None] | None = None,
        workers: int | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.catalog = catalog
        self.copy_to_store = copy_to_store
        self.progress = progress
        self.workers = workers if workers is not None else (os.cpu_count() or 1)
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._report: ImportReport | None = None
        self._error: BaseException | None = None
        self._registered: set[tuple[str, ...]] = set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_in_thread, name="catalog-import", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        """Stop after the batch in hand; what was written stays written (the next import resumes)."""
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> ImportReport:
        """The report once the thread ends; re-raises what stopped it (e.g. a damaged catalog)."""
        assert self._thread is not None, "start() was not called"
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the import is still running")
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report

    def _run_in_thread(self) -> None:
        try:
            self._report = self.run()
        except BaseException as exc:  # handed to wait(), which re-raises it in the caller's thread
            self._error = exc

    def run(self) -> ImportReport:
        started = time.perf_counter()
        report = ImportReport()
        conn = connect(self.catalog)
        try:
            found = find_files(self.paths)
            report.unreadable.extend(Unreadable(p, r) for p, r in found.refused)
            known = dict(conn.execute("SELECT source_path, size || ':' || mtime_ns FROM instances"))
            known.update(conn.execute("SELECT path, size || ':' || mtime_ns FROM slides"))
            changed: list[tuple[Candidate, bool]] = []
            for candidate in found.files:
                stamp = known.get(candidate.path)
                if stamp == f"{candidate.size}:{candidate.mtime_ns}":
                    report.unchanged += 1
                else:
                    changed.append((candidate, stamp is not None))
            total = len(found.files)
            writer = CatalogWriter(conn)
            done = report.unchanged
            self._report_progress(done, total, started)
            for batch, results in self._parse(changed):
                if self._cancel.is_set():
                    report.cancelled = True
                    break
                before = (report.added, report.updated, report.slides)
                self._write_batch(writer, batch, results, report)
                self._audit_batch(before, report)
                done += len(batch)
                self._report_progress(done, total, started)
        finally:
            conn.close()
        report.elapsed_s = time.perf_counter() - started
        log.info(
            "catalog import: %d added, %d updated, %d unchanged, %d slides, %d unreadable in %.1f s%s",
            report.added,
            report.updated,
            report.unchanged,
            report.slides,
            len(report.unreadable),
            report.elapsed_s,
            " (cancelled)" if report.cancelled else "",
        )
        audit.record(
            "import",
            ",".join(audit.path_subject(path) for path in self.paths),
            {
                "added": report.added,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "slides": report.slides,
                "unreadable": len(report.unreadable),
                "cancelled": report.cancelled,
                "copied_to_store": self.copy_to_store,
            },
        )
        return report

    def _parse(
        self, changed: list[tuple[Candidate, bool]]
    ) -> Iterator[tuple[list[tuple[Candidate, bool]], list[Header | str]]]:
        """Batches of files with, for each, its header or why it has none; in a pool when there are many."""
        batches = [changed[i : i + BATCH] for i in range(0, len(changed), BATCH)]
        dicom_paths = [[c.path for c, _ in batch if not WHOLE_SLIDE.names(c.path)] for batch in batches]
        if self.workers < 2 or len(changed) < POOL_THRESHOLD:
            for batch, paths in zip(batches, dicom_paths, strict=True):
                yield batch, read_many(paths)
            return
        # spawn: forking the importing thread's process (which may run a Qt event loop) is unsafe, and a
        # spawned worker is the importing process's own child, so it can be made to die with it (a forkserver's
        # workers are the server's children, and outlived a killed import with the server).
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=context, initializer=die_with_parent, initargs=(os.getpid(),)
        )
        with pool:
            futures = [pool.submit(read_many, paths) for paths in dicom_paths]
            try:
                for batch, future in zip(batches, futures, strict=True):
                    yield batch, future.result()
            finally:
                for future in futures:
                    future.cancel()

    def _audit_batch(self, before: tuple[int, int, int], report: ImportReport) -> None:
        """What one committed batch added, in the trail at once: an import killed later (kill -9, a power cut)
        has no closing event, and what it had written must still be on record."""
        now = (report.added, report.updated, report.slides)
        added, updated, slides = (after - then for after, then in zip(now, before, strict=True))
        if added or updated or slides:
            audit.record(
                "import",
                ",".join(audit.path_subject(path) for path in self.paths),
                {"batch": True, "added": added, "updated": updated, "slides": slides},
            )

    def _write_batch(
        self,
        writer: CatalogWriter,
        batch: list[tuple[Candidate, bool]],
        results: list[Header | str],
        report: ImportReport,
    ) -> None:
        instances: list[InstanceRow] = []
        slides: list[SlideRow] = []
        known: set[str] = set()
        headers = iter(results)
        for candidate, existed in batch:
            header = None if WHOLE_SLIDE.names(candidate.path) else next(headers)  # slides: no DICOM header
            try:
                self._add_file(candidate, header, instances, slides, report)
            except BaseException as exc:  # one file never stops an import: it is listed with its reason
                reason = _failure(candidate.path, exc)
                log.warning("catalog import of %s failed: %s", safe_path(candidate.path), reason)
                report.unreadable.append(Unreadable(candidate.path, reason))
            if existed:
                known.add(candidate.path)
        instances, slides = _write_rows(writer, instances, slides, report)
        for row in instances:
            if row.source_path in known:
                report.updated += 1
            else:
                report.added += 1
        report.slides += len(slides)

    def _add_file(
        self,
        candidate: Candidate,
        header: Header | str | None,
        instances: list[InstanceRow],
        slides: list[SlideRow],
        report: ImportReport,
    ) -> None:
        """One file of a batch into ``instances`` or ``slides``, or into the report's unreadable list."""
        if header is None or (isinstance(header, Header) and header.sop_class == WSI_SOP_CLASS):
            slide = _slide_row(candidate, header, report)
            if slide is not None:
                slides.append(slide)
            return
        if isinstance(header, str):
            report.unreadable.append(Unreadable(candidate.path, header))
            return
        self._register(header)
        if header.sop_class == DICOMDIR_SOP_CLASS:
            return  # an index read on its own (not named DICOMDIR); its files are imported as found
        try:
            path = self._store(candidate.path, header) if self.copy_to_store else candidate.path
        except (CorruptFileError, OSError) as exc:
            reason = exc.reason if isinstance(exc, CorruptFileError) else f"cannot be copied ({exc.strerror})"
            report.unreadable.append(Unreadable(candidate.path, reason))
            return
        instances.append(InstanceRow(header, path, candidate.path, candidate.size, candidate.mtime_ns))

    def _register(self, header: Header) -> None:
        """Tell the log filter about the file's identifiers (once per distinct combination)."""
        if header.identifiers not in self._registered:
            register_identifiers(header.identifiers)
            self._registered.add(header.identifiers)

    def _store(self, source: str, header: Header) -> str:
        """Copy into the managed store, named by UIDs (never by patient), so the catalog owns the file.

        A value that is not a well-formed UID (a damaged or hostile header: "../..", a name) is replaced by
        a digest, so a file can neither land outside the store nor carry a patient's name into it."""
        store = data_dir() / "store"
        parts = [_uid_or_digest(value, source) for value in (header.study_uid, header.series_uid, header.sop_uid)]
        target = store / parts[0] / parts[1] / f"{parts[2]}.dcm"
        if not target.resolve().is_relative_to(store.resolve()):
            raise CorruptFileError(Path(source), "its identifiers would place it outside medviewer's store")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        return str(target)

    def _report_progress(self, done: int, total: int, started: float) -> None:
        if self.progress is None:
            return
        elapsed = time.perf_counter() - started
        rate = done / elapsed if elapsed > 0 else 0.0
        self.progress(Progress(done, total, rate, (total - done) / rate if rate > 0 else None))


#: What SQLite raises for one row's values (an integer it cannot hold, text it cannot encode); a locked,
#: full or damaged catalog raises ``sqlite3.OperationalError``/``DatabaseError`` and stops the import.
ROW_ERRORS = (OverflowError, UnicodeError, ValueError, TypeError, sqlite3.InterfaceError, sqlite3.IntegrityError)


def _write_rows(
    writer: CatalogWriter, instances: list[InstanceRow], slides: list[SlideRow], report: ImportReport
) -> tuple[list[InstanceRow], list[SlideRow]]:
    """The rows written: the batch in one transaction, or, when one row's values are refused, each row on
    its own, so the file at fault is listed with its reason and the rest are catalogued."""
    try:
        writer.write(instances, slides)
        return instances, slides
    except ROW_ERRORS:
        log.warning("a catalog batch was refused; writing its %d files one by one", len(instances) + len(slides))
    written_instances = [row for row in instances if _write_one(writer, [row], [], row.source_path, report)]
    written_slides = [row for row in slides if _write_one(writer, [], [row], row.path, report)]
    return written_instances, written_slides


def _write_one(
    writer: CatalogWriter, instances: list[InstanceRow], slides: list[SlideRow], path: str, report: ImportReport
) -> bool:
    try:
        writer.write(instances, slides)
    except ROW_ERRORS as exc:
        report.unreadable.append(
            Unreadable(path, f"its header holds values the catalog cannot store ({type(exc).__name__})")
        )
        return False
    return True


def _failure(path: str, exc: BaseException) -> str:
    """Why one file could not be catalogued; interrupts and exits pass on (``input_error`` returns None)."""
    error = input_error(path, exc, "the file")
    if error is None:
        raise exc
    return error.reason


def _uid_or_digest(value: str, source: str) -> str:
    if UID_PATTERN.fullmatch(value or ""):
        return value
    return "x" + hashlib.sha256(f"{source}|{value}".encode()).hexdigest()[:32]


def _slide_row(candidate: Candidate, header: Header | None, report: ImportReport) -> SlideRow | None:
    """A slide's vendor, size and resolution, or None (and a reason in the report) if it does not open."""
    path = Path(candidate.path)
    if header is None and not WHOLE_SLIDE.recognises(path):
        report.unreadable.append(Unreadable(candidate.path, "not a whole-slide image OpenSlide or tifffile reads"))
        return None
    try:
        with reading(path, "the slide"), Slide(path) as slide:
            width, height = slide.dimensions
            return SlideRow(
                candidate.path, slide.vendor, width, height, slide.mpp, candidate.size, candidate.mtime_ns, header
            )
    except MedviewerError as exc:
        log.warning("slide %s not catalogued: %s", safe_path(path), exc.reason)
        report.unreadable.append(Unreadable(candidate.path, exc.reason))
        return None
