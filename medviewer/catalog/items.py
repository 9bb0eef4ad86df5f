"""Turning what a user names on the command line (a path, a series or study UID, a patient ID) into files.

Paths win: an existing file or folder is taken as it is. Anything else is looked up in the catalog, as
``medviewer list`` shows it; a name that matches nothing is an error naming it, so an export never
silently leaves out what was asked for.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from medviewer.core.errors import NoImagesFoundError

_INSTANCES_BY = {
    "series": "SELECT i.path FROM instances i JOIN series se ON se.id = i.series_ref WHERE se.series_uid = ?",
    "study": (
        "SELECT i.path FROM instances i JOIN series se ON se.id = i.series_ref "
        "JOIN studies st ON st.id = se.study_ref WHERE st.study_uid = ?"
    ),
    "patient": (
        "SELECT i.path FROM instances i JOIN series se ON se.id = i.series_ref "
        "JOIN studies st ON st.id = se.study_ref JOIN patients p ON p.id = st.patient_ref WHERE p.patient_id = ?"
    ),
}


def resolve_items(conn: sqlite3.Connection, items: list[str]) -> list[Path]:
    """Files and folders for ``items``, in order, without repeats."""
    resolved: list[Path] = []
    for item in items:
        path = Path(item)
        if path.exists():
            found = [path]
        else:
            found = []
            for query in _INSTANCES_BY.values():
                found = [Path(row[0]) for row in conn.execute(query + " AND i.missing = 0 ORDER BY i.path", (item,))]
                if found:
                    break
            if not found:
                raise NoImagesFoundError(
                    path, "neither a file or folder nor a series UID, study UID or patient ID in the catalog"
                )
        resolved.extend(p for p in found if p not in resolved)
    return resolved
