"""Writing parsed headers into the catalog: one transaction per batch, ids of parents cached.

Batches are written under ``BEGIN IMMEDIATE`` so that two importers (threads or processes) take turns
at the write lock instead of failing when both try to upgrade a read lock. Patient, study and series
rows are upserted by their natural keys (UIDs), so a concurrent importer adding the same study is harmless.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

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
    """Upserts for one connection; keeps the row ids it has looked up for the length of an import."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._patients: dict[tuple[str, str], int] = {}
        self._studies: dict[str, int] = {}
        self._series: dict[str, int] = {}

    def write(self, instances: list[InstanceRow], slides: list[SlideRow]) -> None:
        if not instances and not slides:
            return
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = []
            touched: set[int] = set()
            for item in instances:
                h = item.header
                series_ref = self._series_id(h)
                touched.add(series_ref)
                rows.append(
                    (series_ref, item.path, item.source_path, h.sop_uid, h.instance_number, item.size, item.mtime_ns)
                )
            conn.executemany(
                "INSERT INTO instances (series_ref, path, source_path, sop_uid, instance_number, size, mtime_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET series_ref = excluded.series_ref,"
                " source_path = excluded.source_path, sop_uid = excluded.sop_uid,"
                " instance_number = excluded.instance_number, size = excluded.size, mtime_ns = excluded.mtime_ns,"
                " missing = 0",
                rows,
            )
            conn.executemany(
                "UPDATE series SET instance_count = (SELECT count(*) FROM instances WHERE series_ref = ?) WHERE id = ?",
                [(ref, ref) for ref in touched],
            )
            conn.executemany(
                "INSERT INTO slides (path, vendor, width, height, mpp, patient_ref, size, mtime_ns)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET vendor = excluded.vendor,"
                " width = excluded.width, height = excluded.height, mpp = excluded.mpp,"
                " patient_ref = excluded.patient_ref, size = excluded.size, mtime_ns = excluded.mtime_ns, missing = 0",
                [
                    (
                        s.path,
                        s.vendor,
                        s.width,
                        s.height,
                        s.mpp,
                        self._patient_id(s.header) if s.header else None,
                        s.size,
                        s.mtime_ns,
                    )
                    for s in slides
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            # Ids cached during a rolled-back batch may name rows that were never committed.
            self._patients.clear()
            self._studies.clear()
            self._series.clear()
            raise

    def _patient_id(self, h: Header) -> int:
        key = (h.patient_id, h.name)
        if key not in self._patients:
            self.conn.execute(
                "INSERT INTO patients (patient_id, name, birth_date) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (h.patient_id, h.name, h.birth_date),
            )
            self._patients[key] = self.conn.execute(
                "SELECT id FROM patients WHERE patient_id = ? AND name = ?", key
            ).fetchone()[0]
        return self._patients[key]

    def _study_id(self, h: Header) -> int:
        if h.study_uid not in self._studies:
            self.conn.execute(
                "INSERT INTO studies (patient_ref, study_uid, study_date, study_time, accession, description)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (self._patient_id(h), h.study_uid, h.study_date, h.study_time, h.accession, h.study_description),
            )
            self._studies[h.study_uid] = self.conn.execute(
                "SELECT id FROM studies WHERE study_uid = ?", (h.study_uid,)
            ).fetchone()[0]
        return self._studies[h.study_uid]

    def _series_id(self, h: Header) -> int:
        if h.series_uid not in self._series:
            self.conn.execute(
                "INSERT INTO series (study_ref, series_uid, modality, description, series_number, rows, cols,"
                " orientation, spacing) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    self._study_id(h),
                    h.series_uid,
                    h.modality,
                    h.series_description,
                    h.series_number,
                    h.rows,
                    h.cols,
                    h.orientation,
                    h.spacing,
                ),
            )
            self._series[h.series_uid] = self.conn.execute(
                "SELECT id FROM series WHERE series_uid = ?", (h.series_uid,)
            ).fetchone()[0]
        return self._series[h.series_uid]
