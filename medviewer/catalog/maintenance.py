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

_FLAGGED_TABLES = ("instances", "slides")


def check_missing(conn: sqlite3.Connection) -> list[str]:
    """Flag instances and slides whose file is gone (and clear the flag of those back); the missing paths.

    Thousands of ``stat`` calls on a slow or network drive take seconds, so they run outside any
    transaction and only the changed flags are written, in one short one: an import running meanwhile
    is not kept waiting on the write lock. A row an importer rewrote in between (its modification time
    differs from the one seen) is left as the importer wrote it.
    """
    observed = {table: _observe(conn, table) for table in _FLAGGED_TABLES}
    _write_flags(conn, {table: changes for table, (_, changes) in observed.items() if changes})
    return sorted(path for missing, _ in observed.values() for path in missing)


def _write_flags(conn: sqlite3.Connection, changes: dict[str, list[tuple[int, int, int, int]]]) -> None:
    """Write the flag changes in one transaction, each only if its row is still as it was observed."""
    if not changes:
        return  # nothing to write: no need to wait for the write lock
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, rows in changes.items():
            conn.executemany(  # noqa: S608 - fixed table names
                f"UPDATE {table} SET missing = ? WHERE id = ? AND missing = ? AND mtime_ns = ?", rows
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _observe(conn: sqlite3.Connection, table: str) -> tuple[list[str], list[tuple[int, int, int, int]]]:
    """The paths of ``table`` that are gone, and the flag changes as (missing, id, missing before, mtime_ns)."""
    rows = conn.execute(f"SELECT id, path, missing, mtime_ns FROM {table}").fetchall()  # noqa: S608 - fixed names
    missing: list[str] = []
    changes = []
    for row_id, path, was_missing, mtime_ns in rows:
        gone = not os.path.isfile(path)
        if gone:
            missing.append(path)
        if gone != bool(was_missing):
            changes.append((int(gone), row_id, was_missing, mtime_ns))
    return missing, changes


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
    sources = [Path(p) for p in recorded_paths(path) if os.path.isfile(p)] if path.exists() else []
    if path.exists():
        back_up_damaged(path)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    log.info("rebuilding catalog %s from %d recorded files", safe_path(path), len(sources))
    return Importer([*sources, *(folders or [])], catalog=path).run()
