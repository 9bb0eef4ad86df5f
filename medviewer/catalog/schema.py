"""The catalog database: where it lives, how a connection is opened, and how its schema evolves.

The schema version sits in ``PRAGMA user_version`` and every change is a new entry of ``MIGRATIONS``,
so a catalog written by an older medviewer is upgraded in place rather than thrown away. WAL mode and a
busy timeout let a background import write while the window reads, and let two processes import into
the same file; sqlite3 connections must stay in the thread that made them, so each thread opens its own.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import time
from pathlib import Path

from medviewer.core.app_dirs import data_dir
from medviewer.core.errors import CorruptFileError, MedviewerError
from medviewer.core.logs import safe_path

log = logging.getLogger(__name__)

CATALOG_FILE_NAME = "catalog.sqlite"
BUSY_TIMEOUT_S = 10.0

_V1 = """
CREATE TABLE patients (
    id INTEGER PRIMARY KEY,
    patient_id TEXT NOT NULL,
    name TEXT NOT NULL,
    birth_date TEXT NOT NULL DEFAULT '',
    UNIQUE (patient_id, name)
);
CREATE TABLE studies (
    id INTEGER PRIMARY KEY,
    patient_ref INTEGER NOT NULL REFERENCES patients(id),
    study_uid TEXT NOT NULL UNIQUE,
    study_date TEXT NOT NULL DEFAULT '',
    study_time TEXT NOT NULL DEFAULT '',
    accession TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT ''
);
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    study_ref INTEGER NOT NULL REFERENCES studies(id),
    series_uid TEXT NOT NULL UNIQUE,
    modality TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    series_number INTEGER,
    instance_count INTEGER NOT NULL DEFAULT 0,
    rows INTEGER,
    cols INTEGER,
    orientation TEXT NOT NULL DEFAULT '',
    spacing TEXT NOT NULL DEFAULT ''
);
CREATE TABLE instances (
    id INTEGER PRIMARY KEY,
    series_ref INTEGER NOT NULL REFERENCES series(id),
    path TEXT NOT NULL UNIQUE,
    source_path TEXT NOT NULL,
    sop_uid TEXT NOT NULL,
    instance_number INTEGER,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    missing INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE slides (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    vendor TEXT NOT NULL DEFAULT '',
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    mpp REAL,
    patient_ref INTEGER REFERENCES patients(id),
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    missing INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE annotation_files (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    image_path TEXT NOT NULL,
    format TEXT NOT NULL DEFAULT '',
    mtime_ns INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE ai_results (
    id INTEGER PRIMARY KEY,
    image_path TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL DEFAULT '',
    model_hash TEXT NOT NULL DEFAULT '',
    created TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT ''
);
CREATE INDEX studies_patient ON studies(patient_ref);
CREATE INDEX studies_date ON studies(study_date);
CREATE INDEX studies_accession ON studies(accession);
CREATE INDEX series_study ON series(study_ref);
CREATE INDEX series_modality ON series(modality);
CREATE INDEX instances_series ON instances(series_ref);
CREATE INDEX instances_source ON instances(source_path);
CREATE INDEX slides_patient ON slides(patient_ref);
CREATE INDEX annotation_files_image ON annotation_files(image_path);
CREATE INDEX ai_results_image ON ai_results(image_path);
"""

#: Version 2: an AI result names the file holding its numbers (``medviewer.ai.stored_results``), so an image
#: opened again shows the result itself, not only a line saying there was one. Older rows have none ('').
_V2 = """
ALTER TABLE ai_results ADD COLUMN result_file TEXT NOT NULL DEFAULT ''
"""

#: Version 3: a series records what it is (``medviewer.io.dicom_kind``: volume, image, cine, segmentation,
#: structured report, ...), decided at import as the window decides it. Older rows have none ('') until
#: their files are imported again.
_V3 = """
ALTER TABLE series ADD COLUMN kind TEXT NOT NULL DEFAULT ''
"""

#: Schema changes in order; entry i moves a catalog from user_version i to i + 1. Append, never edit.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3)


def catalog_path() -> Path:
    return data_dir() / CATALOG_FILE_NAME


def connect(path: Path | None = None, *, verify: bool = True) -> sqlite3.Connection:
    """A connection for the calling thread, with the schema brought up to date.

    ``verify`` runs SQLite's quick check, so a damaged catalog is reported (and a copy kept) before
    anything is written into it; raises ``CorruptFileError``.
    """
    path = path or catalog_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        enable_wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        if verify:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {result}")
        _migrate(conn)
    except sqlite3.OperationalError as exc:  # locked or unwritable: the file itself is fine
        conn.close()
        raise MedviewerError(path, f"the catalog cannot be opened ({exc})") from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        backup = back_up_damaged(path)
        log.error("catalog %s is damaged (%s); copy kept as %s", safe_path(path), exc, safe_path(backup))
        raise CorruptFileError(path, f"the catalog is damaged ({exc}); a copy was kept as {backup.name}") from exc
    return conn


def enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting for another opener: SQLite answers BUSY here without calling its busy handler."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations this catalog lacks, each in its own transaction; concurrent openers wait."""
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= len(MIGRATIONS):
                conn.execute("COMMIT")
                return
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def back_up_damaged(path: Path) -> Path:
    """Copy a damaged catalog (and its WAL) beside it, so nothing the user had is lost to a rebuild."""
    backup = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    for suffix in ("", "-wal"):
        source = Path(str(path) + suffix)
        if source.exists():
            shutil.copy2(source, Path(str(backup) + suffix))
    return backup
