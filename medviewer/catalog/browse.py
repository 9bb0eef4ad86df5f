"""What the patient panel shows of one series or slide: its files, its annotation files, its AI results.

Annotation files and AI results belong to an image, named in their ``image_path`` column by an image
key: ``series_key(uid)`` (``"series:"`` followed by the SeriesInstanceUID) for a DICOM series, which has
no single path, and ``slide_key(path)`` (the slide's absolute path, as the importer records it in
``slides.path``) for a whole-slide image. A key outlives the catalog rows it names: a series re-imported
or a slide moved back keeps its annotations and results.

Every function takes the caller's connection (one per thread, see ``schema.connect``, which opens it in
autocommit mode) and each write is one statement, so it commits at once and holds the write lock no longer.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SERIES_KEY_PREFIX = "series:"
#: The keys passed as one JSON array: any number of them in one parameter, whatever SQLite's limit on
#: parameters, and still looked up through the ``image_path`` index.
_KEYS = "(SELECT value FROM json_each(?))"


def series_key(series_uid: str) -> str:
    return SERIES_KEY_PREFIX + series_uid


def slide_key(path: Path) -> str:
    return os.path.abspath(path)


def series_files(conn: sqlite3.Connection, series_uid: str) -> list[Path]:
    """The series' files that were there at the last check, so a viewer opens them without a folder scan."""
    rows = conn.execute(
        "SELECT i.path FROM instances i JOIN series se ON se.id = i.series_ref"
        " WHERE se.series_uid = ? AND i.missing = 0 ORDER BY i.instance_number, i.path",
        (series_uid,),
    )
    return [Path(path) for (path,) in rows]


@dataclass(frozen=True)
class AnnotationFileEntry:
    path: str
    image_path: str
    format: str
    #: The file's modification time when it was recorded, ISO 8601 in UTC.
    modified: str


def annotation_files_for(conn: sqlite3.Connection, image_keys: list[str]) -> list[AnnotationFileEntry]:
    """Annotation files recorded for any of ``image_keys``, most recently modified first."""
    rows = conn.execute(
        "SELECT path, image_path, format, mtime_ns FROM annotation_files"
        f" WHERE image_path IN {_KEYS} ORDER BY mtime_ns DESC, path",
        (json.dumps(image_keys),),
    )
    return [AnnotationFileEntry(path, image, fmt, _iso_from_ns(mtime_ns)) for path, image, fmt, mtime_ns in rows]


def record_annotation_file(conn: sqlite3.Connection, path: Path, image_key: str, fmt: str) -> None:
    """Remember an annotation file just saved or loaded; saving it again updates the same row."""
    conn.execute(
        "INSERT INTO annotation_files (path, image_path, format, mtime_ns) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (path) DO UPDATE SET image_path = excluded.image_path, format = excluded.format,"
        " mtime_ns = excluded.mtime_ns",
        (os.path.abspath(path), image_key, fmt, path.stat().st_mtime_ns),
    )


@dataclass(frozen=True)
class AiResultEntry:
    image_path: str
    model_name: str
    model_version: str
    model_hash: str
    #: When the result was recorded, ISO 8601 in UTC.
    created: str
    summary: str
    #: The file in ``stored_results.results_folder()`` holding the result's numbers; '' when none was kept.
    result_file: str = ""


def ai_results_for(conn: sqlite3.Connection, image_keys: list[str]) -> list[AiResultEntry]:
    """AI results recorded for any of ``image_keys``, newest first."""
    rows = conn.execute(
        "SELECT image_path, model_name, model_version, model_hash, created, summary, result_file FROM ai_results"
        f" WHERE image_path IN {_KEYS} ORDER BY created DESC, id DESC",
        (json.dumps(image_keys),),
    )
    return [AiResultEntry(*row) for row in rows]


def record_ai_result(
    conn: sqlite3.Connection,
    image_key: str,
    model_name: str,
    model_version: str,
    model_hash: str,
    summary: str,
    result_file: str = "",
) -> None:
    # Fixed-width microseconds: the text sorts in time order, which ``ai_results_for`` relies on.
    created = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    conn.execute(
        "INSERT INTO ai_results (image_path, model_name, model_version, model_hash, created, summary, result_file)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (image_key, model_name, model_version, model_hash, created, summary, result_file),
    )


def _iso_from_ns(mtime_ns: int) -> str:
    return datetime.fromtimestamp(mtime_ns // 1_000_000_000, tz=timezone.utc).isoformat(timespec="seconds")


def patients(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(patient ID, name), the catalog's key for a patient, of everyone catalogued, by name: the choices
    for assigning a slide."""
    return [(row[0], row[1]) for row in conn.execute("SELECT patient_id, name FROM patients ORDER BY name, patient_id")]


def assign_slide(conn: sqlite3.Connection, path: Path, patient: tuple[str, str] | None) -> None:
    """Link a slide whose file names no patient to a catalogued patient, given as (ID, name); None unlinks.

    One statement, so the lookup and the link cannot be split by another writer. The link survives
    re-import; a DICOM slide's own patient, read from its header, replaces it."""
    patient_id, name = patient if patient is not None else (None, None)
    found = "(SELECT id FROM patients WHERE patient_id = ? AND name = ?)"
    changed = conn.execute(
        f"UPDATE slides SET patient_ref = {found} WHERE path = ? AND (? IS NULL OR {found} IS NOT NULL)",
        (patient_id, name, slide_key(path), patient_id, patient_id, name),
    ).rowcount
    if not changed:
        raise KeyError("that slide or patient is no longer in the catalog")
