"""One door for every path a user can give: decide what it holds (``medviewer.io.formats``), then read it
with the right reader."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from medviewer.core.errors import (
    CorruptFileError,
    MedviewerError,
    NoImagesFoundError,
    PathNotFoundError,
    UnsupportedFileError,
    reading,
)
from medviewer.core.logs import safe_path
from medviewer.core.volume import Volume
from medviewer.io.dicom_kind import DicomKind, frame_count, not_an_image_reason
from medviewer.io.dicom_series import DicomFile, ScanResult, read_dataset, scan, scan_files
from medviewer.io.dicom_stacks import SeriesInfo, Stack, split_series
from medviewer.io.dicom_volume import read_stack
from medviewer.io.formats import ImageKind, classify, may_be_dicom
from medviewer.io.nifti import is_nifti, read_nifti
from medviewer.io.slide import Slide

log = logging.getLogger(__name__)


#: What to say when a single file is opened as an image but is something else.
NOT_PIXELS_REASONS = {
    DicomKind.SEGMENTATION: "a DICOM segmentation (SEG): it is drawn over the series it segments, not shown alone",
    DicomKind.RT_STRUCTURE_SET: (
        "a DICOM RT structure set: its contours are drawn over the series they were drawn on, not shown alone"
    ),
    DicomKind.STRUCTURED_REPORT: "a DICOM structured report: it is read as text (medviewer info prints it)",
}


def dicom_kind_of(path: Path) -> DicomKind | None:
    """The kind of a single DICOM file, from its header; None when it is not one (the readers say why)."""
    if not may_be_dicom(path):
        return None
    try:
        return DicomFile.read(path).kind
    except MedviewerError:
        return None


def _scan_path(path: Path) -> ScanResult:
    """The images in a folder, or the one in a file, which must then be a DICOM image (else the error says why)."""
    if path.is_dir():
        return scan(path)
    dicom_file = DicomFile.read(path)
    if "DirectoryRecordSequence" in dicom_file.header:  # a DICOMDIR: the file set it indexes
        return scan_files(_file_set(path))
    if not dicom_file.is_image:
        kind = dicom_file.kind
        reason = NOT_PIXELS_REASONS.get(kind) or (
            "a DICOM object without pixels (a directory or a bare dataset)"
            if "SOPClassUID" not in dicom_file.header
            else not_an_image_reason(dicom_file.header)
        )
        raise UnsupportedFileError(path, reason)
    return ScanResult(series={dicom_file.series_uid: [dicom_file]})


def _file_set(path: Path) -> list[Path]:
    """The files a DICOMDIR indexes, through pydicom's File-set reader."""
    from pydicom.fileset import FileSet

    try:
        file_set = FileSet(read_dataset(path))
        return [Path(instance.path) for instance in file_set]
    except (ValueError, KeyError, AttributeError, TypeError, OSError) as exc:
        raise CorruptFileError(path, f"the DICOMDIR cannot be read as a file set ({type(exc).__name__})") from exc


def _stacks(found: ScanResult, path: Path) -> list[Stack]:
    """Every stack of every series ``found``, largest first; ``path`` is what the user opened, for messages."""
    stacks = [stack for uid, files in found.series.items() for stack in split_series(uid, files)]
    if not stacks:
        raise NoImagesFoundError(path, "no DICOM images were found in this folder")
    stacks.sort(key=lambda stack: len(stack.records), reverse=True)
    return stacks


def list_series(path: str | Path) -> list[SeriesInfo]:
    """Each stack of images in a DICOM folder or file, largest first, from headers only; then the objects
    that are not images (segmentations, structure sets, reports), for a person choosing what to open."""
    path = Path(path)
    if not path.exists():
        raise PathNotFoundError(path)
    with reading(path):
        return _listed(_scan_path(path), path)


def list_series_files(files: list[Path]) -> list[SeriesInfo]:
    """``list_series`` of exactly these files (a catalog series), named in messages by their folder."""
    where = Path(os.path.commonpath([Path(f).absolute() for f in files])) if files else Path()
    return _listed(scan_files([Path(f) for f in files]), where)


def _listed(found: ScanResult, path: Path) -> list[SeriesInfo]:
    images = [stack.info() for stack in _stacks(found, path)] if found.series else []
    if not images and not found.objects:
        raise NoImagesFoundError(path, "no DICOM images were found in this folder")
    return images + _object_infos(found)


def _object_infos(found: ScanResult) -> list[SeriesInfo]:
    """One entry per object that is not an image (each report or segmentation of a series is its own
    document), in the order a person looks for them."""
    infos = []
    for uid, files in found.objects.items():
        for number, file in enumerate(files, start=1):
            header = file.header
            infos.append(
                SeriesInfo(
                    series_uid=uid,
                    key=uid if len(files) == 1 else f"{uid}@{number}",
                    modality=str(header.get("Modality", "")),
                    description=str(header.get("SeriesDescription", "")),
                    slices=0,
                    frames=frame_count(header) if file.kind is DicomKind.SEGMENTATION else 0,
                    rows=int(header.get("Rows") or 0),
                    columns=int(header.get("Columns") or 0),
                    orientation="",
                    time_points=1,
                    image_type="",
                    files=[file.path],
                    kind=file.kind.value,
                )
            )
    return sorted(infos, key=lambda info: DicomKind(info.kind).order)


def _stack_summary(info: SeriesInfo) -> str:
    times = f" {info.time_points} time points x" if info.time_points > 1 else ""
    kind = f" ({info.image_type})" if info.image_type else ""
    return f"{info.orientation},{times} {info.slices} slices of {info.columns}x{info.rows}{kind}"


def _open_dicom(found: ScanResult, path: Path, series_uid: str | None, time_index: int) -> Volume:
    stacks = _stacks(found, path)
    chosen = stacks
    if series_uid is not None:
        chosen = [s for s in stacks if series_uid in (s.series_uid, s.key)]
        # a stack key ("<uid>#2") given with only that stack's files: read alone they are the series' one stack
        same_series = [s for s in stacks if s.series_uid == series_uid.split("#")[0]]
        if not chosen and len(same_series) == 1:
            chosen = same_series
        if not chosen:
            raise NoImagesFoundError(path, "the requested series is not in this folder")
    stack = chosen[0]
    volume = read_stack(stack, path, time_index)
    notes = []
    skipped = found.skipped_warning()
    if skipped:
        notes.append(skipped)
    other_series = {s.series_uid for s in stacks} - {stack.series_uid}
    if other_series and series_uid is None:
        notes.append(f"the folder holds {len(other_series) + 1} series; showing the largest")
    others = [f for files in found.objects.values() for f in files]
    if others:
        kinds = sorted({f.kind.value for f in others})
        notes.append(f"the folder also holds {len(others)} object(s) that are not images ({', '.join(kinds)})")
    siblings = [s for s in stacks if s.series_uid == stack.series_uid]
    if len(siblings) > 1:
        summaries = "; ".join(_stack_summary(s.info()) for s in siblings)
        notes.append(
            f"the series holds {len(siblings)} separate stacks of slices ({summaries}); showing "
            f"{_stack_summary(stack.info())}"
        )
    volume.warnings[:0] = notes
    return volume


def _opened(volume: Volume, path: Path) -> Volume:
    """The volume as every viewer receives it (closest to LPS), logged without naming whose it is."""
    volume = volume.closest_to_lps()
    log.info("opened volume %s: %s %s", safe_path(path), volume.modality or "?", "x".join(map(str, volume.shape)))
    return volume


def open_volume(path: str | Path, series_uid: str | None = None, time_index: int = 0) -> Volume:
    """A DICOM file or folder, or a NIfTI file, as a Volume.

    A folder opens its largest stack of slices unless ``series_uid`` names a series (its largest
    stack) or a stack key from ``list_series``; ``time_index`` chooses the time point of a 4-D series.
    """
    path = Path(path)
    if not path.exists():
        raise PathNotFoundError(path)
    with reading(path):
        if is_nifti(path) and not path.is_dir():
            volume = read_nifti(path, time_index=time_index)
        else:
            volume = _open_dicom(_scan_path(path), path, series_uid, time_index)
        return _opened(volume, path)


def open_volume_files(files: list[Path], series_uid: str | None = None, time_index: int = 0) -> Volume:
    """Exactly ``files``, as ``open_volume`` opens a folder holding only them (same choice, same warnings).

    The catalog knows which files make a series; reading only those spares the scan of a folder that may
    hold thousands of others. Messages and the log name the files' common folder.
    """
    paths = [Path(f) for f in files]
    for path in paths:
        if not path.exists():
            raise PathNotFoundError(path)
    if not paths:
        raise NoImagesFoundError(Path(), "no files were given")
    where = Path(os.path.commonpath([p.absolute() for p in paths]))
    with reading(where):
        return _opened(_open_dicom(scan_files(paths), where, series_uid, time_index), where)


def open_slide(path: str | Path) -> Slide:
    """A whole-slide image, through OpenSlide or, for files it refuses, the TIFF or DICOM reader."""
    path = Path(path)
    if not path.exists():
        raise PathNotFoundError(path)
    with reading(path, "the slide"):
        slide = Slide(path)
    log.info("opened slide %s: %s via %s, %dx%d", safe_path(path), slide.vendor, slide.backend, *slide.dimensions)
    return slide


def open_path(path: str | Path) -> Volume | Slide:
    try:
        kind = classify(path)
        return open_slide(path) if kind is ImageKind.SLIDE else open_volume(path)
    except MedviewerError as exc:
        log.warning("could not open %s: %s", safe_path(path), type(exc).__name__)
        raise
