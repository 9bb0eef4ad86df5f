"""Keeping the catalog true to the disk: files that went missing, and rebuilding a damaged catalog.

A file moved or deleted after import is a fact to show (greyed out in the patient panel), not an error,
so it is flagged rather than removed: it may come back when a drive is plugged in again.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

from medviewer.catalog.importer import Importer, ImportReport
from medviewer.catalog.schema import back_up_damaged, catalog_path
from medviewer.core.logs import safe_path

log = logging.getLogger(__name__)


def check_missing(conn: sqlite3.Connection) -> list[str]:
    """Flag instances and slides whose file is gone (and clear the flag of those back); the missing paths."""
    missing: list[str] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in ("instances", "slides"):
            rows = conn.execute(f"SELECT id, path, missing FROM {table}").fetchall()  # noqa: S608 - fixed names
            changes = []
            for row_id, path, was_missing in rows:
                gone = not os.path.isfile(path)
                if gone:
                    missing.append(path)
                if gone != bool(was_missing):
                    changes.append((int(gone), row_id))
            conn.executemany(f"UPDATE {table} SET missing = ? WHERE id = ?", changes)  # noqa: S608
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return sorted(missing)


def recorded_paths(path: Path) -> list[str]:
    """The files a (possibly damaged) catalog refers to, as far as they can still be read from it."""
    paths: list[str] = []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.DatabaseError:
        return paths
    try:
        for sql in ("SELECT path FROM instances", "SELECT path FROM slides"):
            try:
                paths.extend(row[0] for row in conn.execute(sql))
            except sqlite3.DatabaseError as exc:
                log.warning("could not read %s from the damaged catalog: %s", sql.split()[-1], exc)
    finally:
        conn.close()
    return paths


def rebuild(path: Path | None = None, folders: list[Path] | None = None) -> ImportReport:
    """Recreate the catalog from the files it referenced (and ``folders``, for what cannot be recovered).

    The old file is first copied aside (``back_up_damaged``), then removed with its WAL and shared-memory
    files, and every recorded path that still exists is imported again in place.
    """
    path = path or catalog_path()
    sources = [p for p in recorded_paths(path) if os.path.isfile(p)] if path.exists() else []
    if path.exists():
        back_up_damaged(path)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    log.info("rebuilding catalog %s from %d recorded files", safe_path(path), len(sources))
    return Importer([*sources, *(folders or [])], catalog=path).run()
