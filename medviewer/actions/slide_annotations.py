"""A slide's annotations while it is open: read, autosaved, rescued, imported, exported, recorded.

The session reads the sidecar (a damaged one is kept aside and reported), keeps the document, and turns its
edits into saves. A save is made in two steps so the window's thread never writes a file: ``due_save`` (on
the thread that edits the document) takes the annotations as GeoJSON bytes at that revision, and
``write_save`` (on any thread) writes them atomically, records ``annotation_save`` in the audit trail and
lists the sidecar in the catalog; ``settle`` then marks the revision saved or arms a retry. A last save that
fails (a full or read-only disk) is written to medviewer's data folder instead, so no work is lost.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from medviewer.actions.trail import Problems, record_event
from medviewer.annotations.asap_xml import read_asap_xml
from medviewer.annotations.autosave import Autosaver, SaveResult, Snapshot, write_snapshot
from medviewer.annotations.class_list import load_classes
from medviewer.annotations.document import AnnotationDocument
from medviewer.annotations.geojson import export_path, geojson_bytes, read_geojson
from medviewer.annotations.importing import ImportSummary, import_into
from medviewer.annotations.sidecar import in_user_data, load_sidecar
from medviewer.catalog import audit
from medviewer.catalog.browse import record_annotation_file, slide_key
from medviewer.catalog.schema import connect
from medviewer.core.errors import MedviewerError
from medviewer.io.atomic_write import write_atomic

#: The sidecar's format as the catalog lists it.
SIDECAR_FORMAT = "QuPath GeoJSON"


@dataclass(frozen=True)
class SaveOutcome:
    """A save's result (``error`` names the file and the cause) and what recording it ran into."""

    result: SaveResult
    problems: Problems


@dataclass(frozen=True)
class ImportOutcome:
    summary: ImportSummary
    #: Sentences on what was not added as it stood (already there; same id, other content).
    notes: tuple[str, ...]


class AnnotationSession:
    """One slide's annotations from opening to closing. ``catalog`` is the catalog file to list the sidecar
    and exports in, or None (no catalog, or a damaged one)."""

    def __init__(self, slide_path: Path, catalog: Path | None = None) -> None:
        self.slide_path, self.catalog = Path(slide_path), catalog
        problems: list[str] = []
        try:
            loaded = load_sidecar(slide_path)
        except MedviewerError as exc:
            problems.append(f"{exc}; annotations made now will not be saved")
            annotations, sidecar = [], None
        else:
            problems += loaded.problems
            annotations, sidecar = loaded.annotations, loaded.path
        #: Sentences for the person, each naming the file concerned: what opening the annotations ran into.
        self.opening_problems: tuple[str, ...] = tuple(problems)
        self.document = AnnotationDocument(annotations, classes=load_classes())
        self.sidecar = sidecar
        self._autosaver = Autosaver(self.document, sidecar) if sidecar is not None else None

    @property
    def audit_subject(self) -> str:
        return audit.path_subject(self.slide_path)

    def due_save(self, now: float | None = None) -> Snapshot | None:
        """The annotations to write, when the autosave delay since the first unsaved edit has passed."""
        return self._autosaver.due(now) if self._autosaver is not None else None

    def closing_save(self) -> Snapshot | None:
        """The last save, if edits are pending; the session stops listening to the document."""
        if self._autosaver is None:
            return None
        snapshot = self._autosaver.detach()
        self._autosaver = None
        return snapshot

    def write_save(self, snapshot: Snapshot, last: bool = False) -> SaveOutcome:
        """Write ``snapshot`` (any thread), record it, and for a failed ``last`` save write the rescue copy."""
        result = write_snapshot(snapshot)
        if result.error is None:
            problems = record_event("annotation_save", self.audit_subject, {"annotations": snapshot.count})
            return SaveOutcome(result, problems + self._list_in_catalog(snapshot.path, SIDECAR_FORMAT))
        if not last:
            return SaveOutcome(result, Problems())
        rescue = in_user_data(self.slide_path).with_suffix(".unsaved.geojson")
        try:
            write_atomic(rescue, snapshot.data)
        except OSError as exc:
            lost = f"{result.error}; a copy could not be written to {rescue} either ({exc})"
            return SaveOutcome(result, Problems((lost,)))
        return SaveOutcome(result, Problems((f"{result.error}; they were saved to {rescue} instead",)))

    def list_sidecar(self) -> Problems:
        """List a sidecar the slide already has in the catalog with the slide (a job: it is SQL)."""
        if self.sidecar is None or not self.sidecar.is_file():
            return Problems()
        return self._list_in_catalog(self.sidecar, SIDECAR_FORMAT)

    def settle(self, outcome: SaveOutcome) -> None:
        """On the document's thread: the revision written is saved, or the save is tried again later."""
        if self._autosaver is not None:
            self._autosaver.settle(outcome.result)

    def import_file(self, path: Path) -> ImportOutcome:
        """Add the annotations of a QuPath GeoJSON or ASAP XML file in one undo step; the classes the list
        lacks are added with the file's colours. Annotations already here (same id, same content: the file
        imported before) are skipped and the person is told how many, so a second import neither doubles the
        annotations nor looks like a failure."""
        reader = read_asap_xml if path.suffix.lower() == ".xml" else read_geojson
        summary = import_into(self.document, reader(path))
        notes = []
        if summary.skipped:
            notes.append(
                f"{path.name}: {summary.skipped} annotation(s) already on this slide (same id and shape) "
                "were not imported again"
            )
        if summary.copies:
            notes.append(
                f"{path.name}: {summary.copies} annotation(s) share an id with a different annotation on this "
                "slide; both are kept, the imported one under a new id"
            )
        return ImportOutcome(summary, tuple(notes))

    def export_snapshot(self, path: Path) -> Snapshot:
        """The annotations to export to ``path`` (``.geojson`` appended when the name has neither that suffix
        nor ``.json``), taken on the document's thread."""
        annotations = self.document.annotations
        return Snapshot(export_path(path), self.document.revision, len(annotations), geojson_bytes(annotations))

    def write_export(self, snapshot: Snapshot) -> tuple[Path, Problems]:
        """Write an export (any thread): recorded as an ``export`` and listed in the catalog with the slide.
        A write that fails raises ``MedviewerError`` naming the file."""
        try:
            write_atomic(snapshot.path, snapshot.data)
        except OSError as exc:
            reason = f"the annotations could not be written ({exc.strerror or exc})"
            raise MedviewerError(snapshot.path, reason) from exc
        problems = record_event("export", audit.path_subject(snapshot.path), {"what": "annotations GeoJSON"})
        return snapshot.path, problems + self._list_in_catalog(snapshot.path, "GeoJSON")

    def _list_in_catalog(self, path: Path, fmt: str) -> Problems:
        if self.catalog is None:
            return Problems()
        try:
            connection = connect(self.catalog, verify=False)
            try:
                record_annotation_file(connection, path, slide_key(self.slide_path), fmt)
            finally:
                connection.close()
        except (MedviewerError, sqlite3.Error, OSError) as exc:
            return Problems((f"{path}: not listed in the catalog ({exc})",))
        return Problems()
