"""``medviewer import`` and ``medviewer list``: the catalog from a terminal.

``list`` prints patient names and IDs because the person asked for them; nothing here logs them, and
progress lines name counts, never files.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from medviewer.actions.catalog_import import import_into_catalog, unreadable_lines
from medviewer.catalog.importer import ImportReport
from medviewer.catalog.importer import Progress as ImportCounts
from medviewer.catalog.schema import connect
from medviewer.catalog.search import slides, tree
from medviewer.core.errors import MedviewerError


def _print_progress(progress: ImportCounts) -> None:
    eta = f", about {progress.eta_s:.0f} s left" if progress.eta_s is not None else ""
    print(f"{progress.done}/{progress.total} files, {progress.files_per_s:.0f} files/s{eta}", flush=True)


def _summary(report: ImportReport) -> str:
    lines = [
        f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged, {report.slides} slides, "
        f"{len(report.unreadable)} not imported, in {report.elapsed_s:.1f} s"
        + (" (cancelled)" if report.cancelled else "")
    ]
    return "\n".join(lines + [f"  {line}" for line in unreadable_lines(report)])


def import_main(argv: list[str]) -> int:
    """Import files, folders or DICOMDIRs; exit status 1 when nothing could be imported."""
    parser = argparse.ArgumentParser(prog="medviewer import", description="Add DICOM files and slides to the catalog.")
    parser.add_argument("paths", nargs="+", type=Path, help="files, folders (searched recursively) or DICOMDIRs")
    parser.add_argument("--copy", action="store_true", help="copy the files into medviewer's own store")
    args = parser.parse_args(argv)
    try:
        report = import_into_catalog(args.paths, copy_to_store=args.copy, progress=_print_progress)
    except MedviewerError as exc:
        print(f"medviewer: {exc}", file=sys.stderr)
        return 1
    print(_summary(report))
    return 0 if report.imported or report.unchanged else 1


def list_main(argv: list[str]) -> int:
    """Print the catalog as patients > studies > series, then slides; ``--json`` for scripts."""
    parser = argparse.ArgumentParser(prog="medviewer list", description="Show what the catalog holds.")
    parser.add_argument("--json", action="store_true", help="print JSON instead of an indented list")
    args = parser.parse_args(argv)
    try:
        conn = connect()
    except MedviewerError as exc:
        print(f"medviewer: {exc}", file=sys.stderr)
        return 1
    try:
        patients, slide_entries = tree(conn), slides(conn)
    finally:
        conn.close()
    if args.json:
        listed = [
            {**vars(s), "patient": s.patient and {"patient_id": s.patient[0], "name": s.patient[1]}}
            for s in slide_entries
        ]
        print(json.dumps({"patients": patients, "slides": listed}, indent=2))
        return 0
    for patient in patients:
        print(
            f"{patient['name'] or '(no name)'} [{patient['patient_id'] or 'no ID'}]: {len(patient['studies'])} studies"
        )
        for study in patient["studies"]:
            print(f"  {study['date'] or '(no date)'} {study['description']} ({len(study['series'])} series)")
            for series in study["series"]:
                label = f"{series['modality']} #{series['number']} {series['description']}".rstrip()
                print(f"    {label}: {series['instances']} images")
    for slide in slide_entries:
        mpp = f"{slide.mpp:.3f} um/px" if slide.mpp else "no resolution"
        flag = " (missing)" if slide.missing else ""
        print(f"slide {slide.path}: {slide.vendor} {slide.width}x{slide.height}, {mpp}{flag}")
    return 0
