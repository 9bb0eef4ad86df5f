"""The few header attributes the catalog keeps, read fast enough to index ten thousand files in seconds.

Only the first bytes of a file are read and only the listed tags are parsed (``specific_tags``), never
pixel data. The result is a plain tuple of strings and numbers so it can cross a process boundary cheaply
when a pool parses headers. Reading here does not register identifiers with the log filter: the importer
does that in its own process, where the logging happens.
"""

from __future__ import annotations

import io
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import pydicom
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.multival import MultiValue

from medviewer.core.errors import input_error
from medviewer.io.dicom_kind import file_kind
from medviewer.io.dicom_series import IDENTIFYING_KEYWORDS, READ_ERRORS

#: Bytes read per file: headers of ordinary images end well before this; a longer header is read whole.
HEAD_BYTES = 16 * 1024
WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

_CATALOG_KEYWORDS = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "StudyTime",
    "StudyDescription",
    "Modality",
    "SeriesDescription",
    "SeriesNumber",
    "InstanceNumber",
    "Rows",
    "Columns",
    "ImageOrientationPatient",
    "PixelSpacing",
    "SliceThickness",
    # what ``medviewer.io.dicom_kind.file_kind`` decides the object is from
    "NumberOfFrames",
    "PhotometricInterpretation",
    "ImagePositionPatient",
    "FrameTime",
    "FrameTimeVector",
    "CineRate",
    "RecommendedDisplayFrameRate",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
)
TAGS = [*_CATALOG_KEYWORDS, *IDENTIFYING_KEYWORDS]


@dataclass(frozen=True)
class Header:
    """What the catalog records of one DICOM file."""

    sop_class: str
    sop_uid: str
    study_uid: str
    series_uid: str
    patient_id: str
    name: str
    birth_date: str
    study_date: str
    study_time: str
    accession: str
    study_description: str
    modality: str
    series_description: str
    series_number: int | None
    instance_number: int | None
    rows: int | None
    cols: int | None
    orientation: str
    spacing: str
    #: What the object is, as the window decides it (a ``DicomKind`` value).
    kind: str
    #: Every identifying value in the header, for the log filter.
    identifiers: tuple[str, ...]


#: IS values are signed 32-bit integers (PS3.5 6.2).
IS_LIMIT = 2**31
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
PARENT_POLL_S = 1.0


class HeaderError(Exception):
    """Why a file is not catalogued, in words for the import report."""


def read_catalog_header(path: str) -> Header:
    """The catalog's view of one file; raises ``HeaderError`` with a reason for anything else."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
            if len(head) == HEAD_BYTES:  # the header may go on: let pydicom read the rest from the file
                handle.seek(0)
                ds = pydicom.dcmread(handle, stop_before_pixels=True, specific_tags=TAGS)
            else:
                ds = pydicom.dcmread(io.BytesIO(head), stop_before_pixels=True, specific_tags=TAGS)
        return _header(ds)
    except InvalidDicomError as exc:
        raise HeaderError("not a DICOM file") from exc
    except OSError as exc:
        raise HeaderError(f"cannot be read ({type(exc).__name__})") from exc
    except READ_ERRORS as exc:
        raise HeaderError(f"damaged DICOM file ({type(exc).__name__})") from exc


Values = dict[str, object]


def _text(values: Values, keyword: str) -> str:
    value = values.get(keyword)
    return "" if value is None else str(value)


def _number(values: Values, keyword: str) -> int | None:
    """An IS or US value, or None when missing, not a number or outside what the standard allows (IS is a
    32-bit integer): a 23-digit InstanceNumber overflows SQLite's integer and would stop the batch."""
    value = values.get(keyword)
    try:
        number = None if value in (None, "") else int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if number is not None and -IS_LIMIT <= number < IS_LIMIT else None


def _numbers(values: Values, keyword: str) -> str:
    """Finite decimals joined by backslashes, or "" when any is missing, not a number or not finite: a
    spacing or orientation the catalog cannot use is no reason to leave the file out of it."""
    value = values.get(keyword)
    if value is None or value == "":
        return ""
    items = value if isinstance(value, (list, tuple, MultiValue)) else [value]
    try:
        numbers = [float(v) for v in items]  # type: ignore[arg-type]  # any element value: float() decides
    except (TypeError, ValueError, OverflowError):
        return ""
    return "\\".join(f"{n:g}" for n in numbers) if all(math.isfinite(n) for n in numbers) else ""


def _values(ds: pydicom.Dataset) -> Values:
    """Each element converted once (keyword look-ups on the dataset would convert them again); one whose
    value does not convert (a DS of "abc") is left out, so one bad optional value does not cost the file."""
    values: Values = {}
    for tag in list(ds.keys()):
        try:
            element = ds[tag]
        except (ValueError, TypeError, OverflowError, BytesLengthException):
            continue
        values[element.keyword] = element.value
    return values


def _header(ds: pydicom.Dataset) -> Header:
    values = _values(ds)
    meta = getattr(ds, "file_meta", None)
    sop_class = _text(values, "SOPClassUID") or (str(meta.get("MediaStorageSOPClassUID", "")) if meta else "")
    study_uid, series_uid = _text(values, "StudyInstanceUID"), _text(values, "SeriesInstanceUID")
    if sop_class != DICOMDIR_SOP_CLASS and not (study_uid and series_uid):
        raise HeaderError("DICOM file without study and series identifiers")
    spacing = _numbers(values, "PixelSpacing")
    thickness = _numbers(values, "SliceThickness")
    identifiers = tuple(str(v) for keyword in IDENTIFYING_KEYWORDS if (v := values.get(keyword)) not in (None, ""))
    return Header(
        sop_class=sop_class,
        sop_uid=_text(values, "SOPInstanceUID"),
        study_uid=study_uid,
        series_uid=series_uid,
        patient_id=_text(values, "PatientID"),
        name=_text(values, "PatientName"),
        birth_date=_text(values, "PatientBirthDate"),
        study_date=_text(values, "StudyDate"),
        study_time=_text(values, "StudyTime"),
        accession=_text(values, "AccessionNumber"),
        study_description=_text(values, "StudyDescription"),
        modality=_text(values, "Modality"),
        series_description=_text(values, "SeriesDescription"),
        series_number=_number(values, "SeriesNumber"),
        instance_number=_number(values, "InstanceNumber"),
        rows=_number(values, "Rows"),
        cols=_number(values, "Columns"),
        orientation=_numbers(values, "ImageOrientationPatient"),
        spacing=f"{spacing}\\{thickness}" if spacing and thickness else spacing,
        kind=file_kind(ds).value,
        identifiers=identifiers,
    )


def read_many(paths: list[str]) -> list[Header | str]:
    """Headers of a chunk of files (a pool task): each entry a ``Header`` or the reason it is not one."""
    results: list[Header | str] = []
    for path in paths:
        try:
            results.append(read_catalog_header(path))
        except HeaderError as exc:
            results.append(str(exc))
        except BaseException as exc:  # noqa: BLE001 - hostile files make pydicom raise anything, a decoder panic too
            error = input_error(path, exc, "the DICOM header")
            if error is None:
                raise
            results.append(error.reason)
    return results


def die_with_parent(parent_pid: int) -> None:
    """A pool worker's initializer: end when the importing process ends, however it ends. A worker blocked
    on its task queue would otherwise outlive a ``kill -9`` of the import for ever, holding the dead
    process's output open (a script waiting on it hangs). Linux signals it (PR_SET_PDEATHSIG); elsewhere a
    thread watches the parent."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before the signal was armed
            os._exit(1)
        return
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_S)
    os._exit(1)
