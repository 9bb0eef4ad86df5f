"""Export files and folders de-identified: DICOM by the basic profile, whole-slide images re-written.

Every file is checked before anything is written, so a refusal (burned-in annotation) leaves the output
folder untouched. Output names are made of new UIDs and counters, never of the input names, which are
often patient names or accession numbers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from medviewer.core.errors import CorruptFileError, MedviewerError, PathNotFoundError
from medviewer.core.logs import safe_path
from medviewer.deid.dicom import UidMap, burned_in_reason, deidentify
from medviewer.deid.slide import export_slide
from medviewer.io.dicom_series import read_dataset, read_header
from medviewer.io.formats import DICOM, WHOLE_SLIDE

log = logging.getLogger(__name__)


class BurnedInAnnotationError(MedviewerError):
    """Some pixels may show identifiers, which no header rewrite can remove; nothing was exported."""

    def __init__(self, flagged: list[tuple[Path, str]]) -> None:
        self.flagged = flagged
        super().__init__(flagged[0][0], f"{len(flagged)} file(s) may show patient identifiers in their pixels")


@dataclass
class ExportPlan:
    dicom: list[Path] = field(default_factory=list)
    slides: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class ExportResult:
    dicom_files: int
    slides: int
    skipped: int


DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


def plan_export(items: list[Path]) -> ExportPlan:
    """Sort the files under ``items`` into DICOM, slides and files that are neither (skipped, reported)."""
    plan = ExportPlan()
    for item in items:
        if not item.exists():
            raise PathNotFoundError(item)
        files = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
        for path in files:
            if DICOM.recognises(path):
                header = read_header(path)
                if (
                    str(header.get("MediaStorageSOPClassUID", "")) == DICOMDIR_SOP_CLASS
                    or "DirectoryRecordSequence" in header
                ):
                    plan.skipped.append(path)  # a media directory: its records name the original files
                    continue
                missing = [k for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID") if not header.get(k)]
                if missing:
                    raise CorruptFileError(path, f"the file has no {', '.join(missing)}, so it cannot be exported")
                plan.dicom.append(path)
            elif WHOLE_SLIDE.recognises(path):
                plan.slides.append(path)
            else:
                plan.skipped.append(path)
    return plan


def burned_in_files(plan: ExportPlan) -> list[tuple[Path, str]]:
    """Files whose pixels may hold identifiers, with the reason, from their headers alone."""
    return [(path, reason) for path in plan.dicom if (reason := burned_in_reason(read_header(path))) is not None]


def export_deidentified(items: list[Path], out: Path, allow_burned_in: bool = False) -> ExportResult:
    """De-identify everything under ``items`` into ``out`` (which must be new or empty).

    DICOM goes to ``out/<study>/<series>/<instance>.dcm`` under new UIDs shared by the whole export, so a
    segmentation exported with its CT still references it; slides go to ``out/slide-0001.tiff`` onwards.
    """
    plan = plan_export(items)
    if out.exists() and any(out.iterdir()):
        raise MedviewerError(out, "the export folder is not empty")
    flagged = [] if allow_burned_in else burned_in_files(plan)
    if flagged:
        raise BurnedInAnnotationError(flagged)
    uids = UidMap()
    out.mkdir(parents=True, exist_ok=True)
    for path in plan.dicom:
        ds = read_dataset(path)
        deidentify(ds, uids)
        target = out / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
        if target.exists():
            raise MedviewerError(path, "two files of the export share one SOP Instance UID")
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
    for number, path in enumerate(plan.slides, start=1):
        export_slide(path, out / f"slide-{number:04d}.tiff")
    for path in plan.skipped:
        log.info("export skipped %s: neither DICOM nor a slide", safe_path(path))
    return ExportResult(len(plan.dicom), len(plan.slides), len(plan.skipped))
