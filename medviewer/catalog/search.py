"""Finding series in the catalog and listing it as patients > studies > series.

Substring matching of names and IDs cannot use a B-tree index, so it runs over the small patients
table and reaches studies and series through their foreign-key indexes; date ranges, accession numbers
and modalities narrow through their own indexes. Results are plain dataclasses, sorted for display.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True)
class SeriesHit:
    patient_id: str
    patient_name: str
    study_uid: str
    study_date: str
    accession: str
    study_description: str
    series_uid: str
    modality: str
    series_description: str
    series_number: int | None
    instance_count: int
    #: Instances whose file ``check_missing`` found gone (they still count in ``instance_count``).
    missing: int
    #: What the series is (``DicomKind`` value: volume, image, cine, segmentation, ...); '' if not yet known.
    kind: str = ""


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with its own % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_query(
    *,
    patient: str | None = None,
    accession: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    modality: str | None = None,
    description: str | None = None,
    any_text: str | None = None,
) -> tuple[str, list[object]]:
    """The SQL and parameters of ``search`` (separate so a test can ask SQLite for its plan).

    ``patient`` matches a case-insensitive substring of the name or the ID; ``description`` of the study or
    series description; ``any_text`` any of these or the exact accession number (the patient panel's one
    search box, as in PACS worklists); dates are DICOM ``YYYYMMDD`` strings, both ends included.
    """
    where: list[str] = []
    params: list[object] = []
    if any_text:
        where.append(
            "(p.name LIKE ? ESCAPE '\\' OR p.patient_id LIKE ? ESCAPE '\\' OR st.accession = ?"
            " OR st.description LIKE ? ESCAPE '\\' OR se.description LIKE ? ESCAPE '\\')"
        )
        params += [_like(any_text), _like(any_text), any_text, _like(any_text), _like(any_text)]
    if patient:
        where.append("(p.name LIKE ? ESCAPE '\\' OR p.patient_id LIKE ? ESCAPE '\\')")
        params += [_like(patient), _like(patient)]
    if accession:
        where.append("st.accession = ?")
        params.append(accession)
    if date_from:
        where.append("st.study_date >= ?")
        params.append(date_from)
    if date_to:
        where.append("st.study_date <= ?")
        params.append(date_to)
    if modality:
        where.append("se.modality = ?")
        params.append(modality.upper())
    if description:
        where.append("(st.description LIKE ? ESCAPE '\\' OR se.description LIKE ? ESCAPE '\\')")
        params += [_like(description), _like(description)]
    sql = (
        "SELECT p.patient_id, p.name, st.study_uid, st.study_date, st.accession, st.description, se.series_uid,"
        " se.modality, se.description, se.series_number, se.instance_count,"
        " (SELECT count(*) FROM instances i WHERE i.series_ref = se.id AND i.missing = 1), se.kind"
        " FROM patients p JOIN studies st ON st.patient_ref = p.id JOIN series se ON se.study_ref = st.id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY p.name, p.patient_id, st.study_date, st.study_uid, se.series_number, se.series_uid"
    )
    return sql, params


def search(conn: sqlite3.Connection, **criteria: str | None) -> list[SeriesHit]:
    """Series matching every given criterion (see ``search_query``), by patient, study date, series number."""
    sql, params = search_query(**criteria)
    return [SeriesHit(*row) for row in conn.execute(sql, params)]


@dataclass(frozen=True)
class SlideEntry:
    path: str
    vendor: str
    width: int
    height: int
    mpp: float | None
    #: The linked patient as (ID, name), the catalog's key for a patient; None when unassigned.
    patient: tuple[str, str] | None
    missing: bool


def slides(conn: sqlite3.Connection) -> list[SlideEntry]:
    rows = conn.execute(
        "SELECT s.path, s.vendor, s.width, s.height, s.mpp, s.patient_ref, p.patient_id, p.name, s.missing"
        " FROM slides s LEFT JOIN patients p ON p.id = s.patient_ref ORDER BY s.path"
    )
    return [
        SlideEntry(
            row[0], row[1], row[2], row[3], row[4], (row[6], row[7]) if row[5] is not None else None, bool(row[8])
        )
        for row in rows
    ]


def tree(conn: sqlite3.Connection) -> list[dict]:
    """Patients > studies > series with counts, as nested dicts (what ``medviewer list --json`` prints)."""
    patients: dict[tuple[str, str], dict] = {}
    studies: dict[str, dict] = {}
    for hit in search(conn):
        patient = patients.setdefault(
            (hit.patient_id, hit.patient_name),
            {"patient_id": hit.patient_id, "name": hit.patient_name, "studies": []},
        )
        if hit.study_uid not in studies:
            studies[hit.study_uid] = {
                "study_uid": hit.study_uid,
                "date": hit.study_date,
                "accession": hit.accession,
                "description": hit.study_description,
                "series": [],
            }
            patient["studies"].append(studies[hit.study_uid])
        studies[hit.study_uid]["series"].append(
            {
                "series_uid": hit.series_uid,
                "modality": hit.modality,
                "number": hit.series_number,
                "description": hit.series_description,
                "instances": hit.instance_count,
                "kind": hit.kind,
                "missing": hit.missing,
            }
        )
    return list(patients.values())
