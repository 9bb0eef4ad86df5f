"""Writing parsed headers into the catalog: one transaction per batch, ids of parents cached within it.

Batches are written under ``BEGIN IMMEDIATE`` so that two importers (threads or processes) take turns
at the write lock instead of failing when both try to upgrade a read lock. Patient, study and series
rows are upserted by their natural keys (UIDs), so a concurrent importer adding the same study is harmless.

A re-imported file is the truth about itself: the study and series fields of its header replace the
recorded ones (where a series' files disagree, the last batch written wins), and an instance whose
series changed leaves its old series. A series left without instances is deleted, then a study left
without series, then a patient left without studies and slides, so the patient panel never lists an
empty or stale row.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from medviewer.catalog.headers import Header


@dataclass(frozen=True)
class InstanceRow:
    header: Header
    path: str
    source_path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class SlideRow:
    path: str
    vendor: str
    width: int
    height: int
    mpp: float | None
    size: int
    mtime_ns: int
    #: The DICOM header of a DICOM WSI file, which links the slide to its patient.
    header: Header | None = None


class CatalogWriter:
    """Writes batches through one connection, each batch in its own transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def write(self, instances: list[InstanceRow], slides: list[SlideRow]) -> None:
        if not instances and not slides:
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            batch = _Batch(self.conn)
            batch.write_instances(instances)
            batch.write_slides(slides)
            batch.prune()
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise


_PATIENT_UPSERT = (
    "INSERT INTO patients (patient_id, name, birth_date) VALUES (?, ?, ?)"
    " ON CONFLICT (patient_id, name) DO UPDATE SET birth_date = excluded.birth_date"
)
_STUDY_UPSERT = (
    "INSERT INTO studies (patient_ref, study_uid, study_date, study_time, accession, description)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (study_uid) DO UPDATE SET patient_ref = excluded.patient_ref,"
    " study_date = excluded.study_date, study_time = excluded.study_time, accession = excluded.accession,"
    " description = excluded.description"
)
_SERIES_UPSERT = (
    "INSERT INTO series (study_ref, series_uid, modality, description, series_number, rows, cols, orientation,"
    " spacing, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (series_uid) DO UPDATE SET"
    " study_ref = excluded.study_ref, modality = excluded.modality, description = excluded.description,"
    " series_number = excluded.series_number, rows = excluded.rows, cols = excluded.cols,"
    " orientation = excluded.orientation, spacing = excluded.spacing, kind = excluded.kind"
)
_INSTANCE_UPSERT = (
    "INSERT INTO instances (series_ref, path, source_path, sop_uid, instance_number, size, mtime_ns)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET series_ref = excluded.series_ref,"
    " source_path = excluded.source_path, sop_uid = excluded.sop_uid,"
    " instance_number = excluded.instance_number, size = excluded.size, mtime_ns = excluded.mtime_ns,"
    " missing = 0"
)
_SLIDE_UPSERT = (
    "INSERT INTO slides (path, vendor, width, height, mpp, patient_ref, size, mtime_ns)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET vendor = excluded.vendor,"
    " width = excluded.width, height = excluded.height, mpp = excluded.mpp,"
    " patient_ref = COALESCE(excluded.patient_ref, slides.patient_ref), size = excluded.size,"
    " mtime_ns = excluded.mtime_ns, missing = 0"
)

#: The parent a recorded row has now, looked up before an upsert may move it to another.
_INSTANCE_SERIES = "SELECT series_ref FROM instances WHERE path = ?"
_SLIDE_PATIENT = "SELECT patient_ref FROM slides WHERE path = ?"
_STUDY_PATIENT = "SELECT patient_ref FROM studies WHERE study_uid = ?"
_SERIES_STUDY = "SELECT study_ref FROM series WHERE series_uid = ?"
_DELETE_EMPTY_SERIES = "DELETE FROM series WHERE id = ? AND NOT EXISTS (SELECT 1 FROM instances WHERE series_ref = ?)"
_DELETE_EMPTY_STUDIES = "DELETE FROM studies WHERE id = ? AND NOT EXISTS (SELECT 1 FROM series WHERE study_ref = ?)"
_DELETE_EMPTY_PATIENTS = (
    "DELETE FROM patients WHERE id = ? AND NOT EXISTS (SELECT 1 FROM studies WHERE patient_ref = ?)"
    " AND NOT EXISTS (SELECT 1 FROM slides WHERE patient_ref = ?)"
)


@dataclass
class _Vacated:
    """Rows that lost a child in this batch and are deleted before it commits if that was their last."""

    series: set[int] = field(default_factory=set)
    studies: set[int] = field(default_factory=set)
    patients: set[int] = field(default_factory=set)


class _Batch:
    """The upserts of one transaction.

    Row ids are cached for this transaction only: between two, another importer may delete a row it left
    empty, and a cached id would then name nothing.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.vacated = _Vacated()
        self._patients: dict[tuple[str, str], int] = {}
        self._studies: dict[str, int] = {}
        self._series: dict[str, int] = {}

    def write_instances(self, instances: list[InstanceRow]) -> None:
        rows = []
        counted: set[int] = set()
        for item in instances:
            h = item.header
            series_ref = self._series_id(h)
            counted.add(series_ref)
            self._note_move(_INSTANCE_SERIES, item.path, series_ref, self.vacated.series)
            rows.append(
                (series_ref, item.path, item.source_path, h.sop_uid, h.instance_number, item.size, item.mtime_ns)
            )
        self.conn.executemany(_INSTANCE_UPSERT, rows)
        counted |= self.vacated.series
        self.conn.executemany(
            "UPDATE series SET instance_count = (SELECT count(*) FROM instances WHERE series_ref = ?) WHERE id = ?",
            [(ref, ref) for ref in counted],
        )

    def write_slides(self, slides: list[SlideRow]) -> None:
        rows = []
        for s in slides:
            # A file naming its patient (DICOM WSI) decides; one that names none keeps the user's assignment.
            patient_ref = self._patient_id(s.header) if s.header else None
            if patient_ref is not None:
                self._note_move(_SLIDE_PATIENT, s.path, patient_ref, self.vacated.patients)
            rows.append((s.path, s.vendor, s.width, s.height, s.mpp, patient_ref, s.size, s.mtime_ns))
        self.conn.executemany(_SLIDE_UPSERT, rows)

    def prune(self) -> None:
        """Delete vacated rows left childless, lowest level first; the parents of each are candidates next."""
        vacated = self.vacated
        vacated.studies |= self._parents("SELECT study_ref FROM series WHERE id = ?", vacated.series)
        self.conn.executemany(_DELETE_EMPTY_SERIES, [(ref, ref) for ref in vacated.series])
        vacated.patients |= self._parents("SELECT patient_ref FROM studies WHERE id = ?", vacated.studies)
        self.conn.executemany(_DELETE_EMPTY_STUDIES, [(ref, ref) for ref in vacated.studies])
        self.conn.executemany(_DELETE_EMPTY_PATIENTS, [(ref, ref, ref) for ref in vacated.patients])

    def _parents(self, sql: str, ids: set[int]) -> set[int]:
        return {row[0] for row_id in ids for row in self.conn.execute(sql, (row_id,))}

    def _note_move(self, sql: str, key: str, new_parent: int | None, vacated: set[int]) -> None:
        """Mark the parent the recorded row (found by ``sql`` with ``key``) had, if it is leaving it."""
        row = self.conn.execute(sql, (key,)).fetchone()
        if row is not None and row[0] is not None and row[0] != new_parent:
            vacated.add(row[0])

    def _patient_id(self, h: Header) -> int:
        key = (h.patient_id, h.name)
        if key not in self._patients:
            self.conn.execute(_PATIENT_UPSERT, (h.patient_id, h.name, h.birth_date))
            self._patients[key] = self.conn.execute(
                "SELECT id FROM patients WHERE patient_id = ? AND name = ?", key
            ).fetchone()[0]
        return self._patients[key]

    def _study_id(self, h: Header) -> int:
        if h.study_uid not in self._studies:
            patient_ref = self._patient_id(h)
            self._note_move(_STUDY_PATIENT, h.study_uid, patient_ref, self.vacated.patients)
            self.conn.execute(
                _STUDY_UPSERT,
                (patient_ref, h.study_uid, h.study_date, h.study_time, h.accession, h.study_description),
            )
            self._studies[h.study_uid] = self.conn.execute(
                "SELECT id FROM studies WHERE study_uid = ?", (h.study_uid,)
            ).fetchone()[0]
        return self._studies[h.study_uid]

    def _series_id(self, h: Header) -> int:
        if h.series_uid not in self._series:
            study_ref = self._study_id(h)
            self._note_move(_SERIES_STUDY, h.series_uid, study_ref, self.vacated.studies)
            self.conn.execute(
                _SERIES_UPSERT,
                (
                    study_ref,
                    h.series_uid,
                    h.modality,
                    h.series_description,
                    h.series_number,
                    h.rows,
                    h.cols,
                    h.orientation,
                    h.spacing,
                    h.kind,
                ),
            )
            self._series[h.series_uid] = self.conn.execute(
                "SELECT id FROM series WHERE series_uid = ?", (h.series_uid,)
            ).fetchone()[0]
        return self._series[h.series_uid]
