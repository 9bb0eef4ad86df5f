"""``medviewer export --deidentify --out DIR ITEM...``: the command-line face of the de-identified export.

Items are files or folders, or a series UID, study UID or patient ID from the catalog; the export itself
is ``medviewer.actions.deidentified_export``, which records it in the audit trail by digests only. Files
refused for burned-in annotation are listed on stderr (to the person exporting, not to the log) before
anything is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from medviewer.actions.deidentified_export import export_items
from medviewer.core.errors import MedviewerError
from medviewer.deid.export import BurnedInAnnotationError


def export_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="medviewer export", description="Export images with identifiers removed.")
    parser.add_argument(
        "--deidentify", action="store_true", required=True, help="required: only de-identified export is offered"
    )
    parser.add_argument("--out", type=Path, required=True, help="a new or empty folder")
    parser.add_argument(
        "--allow-burned-in",
        action="store_true",
        help="export images that may show identifiers in their pixels (after checking them)",
    )
    parser.add_argument(
        "items",
        nargs="+",
        help="DICOM or slide files, folders holding them, or a series UID, study UID or patient ID ('medviewer list')",
    )
    args = parser.parse_args(list(argv))
    try:
        exported = export_items(list(args.items), args.out, allow_burned_in=args.allow_burned_in)
    except BurnedInAnnotationError as exc:
        print("nothing exported: these files may show patient identifiers in their pixels:", file=sys.stderr)
        for path, reason in exc.flagged:
            print(f"  {path}: {reason}", file=sys.stderr)
        print("check them and pass --allow-burned-in to export them anyway", file=sys.stderr)
        return 1
    except MedviewerError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    result = exported.result
    print(f"exported {result.dicom_files} DICOM files and {result.slides} slides to {args.out}")
    if result.skipped:
        print(f"skipped {result.skipped} files that are neither DICOM nor slides")
    for problem in exported.problems.messages:  # exported, but not recorded: say so, and fail
        print(f"medviewer export: {problem}", file=sys.stderr)
    return 1 if exported.problems else 0
