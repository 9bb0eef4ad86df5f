"""Exporting images with their identifiers removed, and recording that it was done.

Items are files or folders, or a series UID, study UID or patient ID from the catalog. The export is
recorded in the audit trail by digests and counts only: the trail never names a patient.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medviewer.actions.trail import Problems, record_event
from medviewer.catalog import audit
from medviewer.catalog.items import resolve_items
from medviewer.catalog.schema import connect
from medviewer.deid.export import ExportResult, export_deidentified


@dataclass(frozen=True)
class Exported:
    result: ExportResult
    problems: Problems


def export_items(items: list[str], out: Path, allow_burned_in: bool = False, catalog: Path | None = None) -> Exported:
    """Resolve ``items`` through the catalog and export them de-identified into ``out`` (a new or empty folder).
    Raises ``BurnedInAnnotationError`` before writing anything when a file may show identifiers in its pixels
    (unless ``allow_burned_in``), and ``MedviewerError`` for anything else that stops the export."""
    connection = connect(catalog)
    try:
        paths = resolve_items(connection, items)
    finally:
        connection.close()
    result = export_deidentified(paths, out, allow_burned_in=allow_burned_in)
    details = {
        "deidentified": True,
        "dicom_files": result.dicom_files,
        "slides": result.slides,
        "allow_burned_in": allow_burned_in,
    }
    return Exported(result, record_event("export", audit.path_subject(out), details))
