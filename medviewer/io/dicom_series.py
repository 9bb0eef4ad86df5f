"""Reading DICOM headers and gathering the image files under a path into series.

Every header read here registers the file's patient identifiers with the log filter, so no later
message can leak them. Headers are read once, stopping before the pixel data, and the byte offset of
the pixel data is kept: uncompressed pixels are then read straight from that offset without a second
parse of the file.
"""

from __future__ import annotations

import io
import logging
import os
import re
import struct
import warnings
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_partial
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from medviewer.core.errors import CorruptFileError, MedviewerError, PathNotFoundError, UnsupportedFileError, input_error
from medviewer.core.logs import register_identifiers, safe_path
from medviewer.core.patient import PatientInfo
from medviewer.io.dicom_kind import DicomKind, file_kind
from medviewer.io.memory_guard import memory_budget, refuse_if_too_large

log = logging.getLogger(__name__)

#: Header attributes that identify a person; registered with the log filter whenever a file is read.
IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "OtherPatientIDs",
    "AccessionNumber",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "InstitutionName",
    "ReferringPhysicianName",
    "StudyID",
)
#: Identifier combinations already registered, as undecoded values; cleared when it grows past the size.
REGISTERED_CACHE_SIZE = 1024
_registered: set[tuple[object, ...]] = set()
#: pydicom raises these (and no others we expect) for files that start as DICOM but are damaged.
READ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError, IndexError)
#: The file meta group, where a deflated file names its transfer syntax, lies within this many first bytes.
DEFLATE_PROBE_BYTES = 4096
#: A file without preamble is probed from at most this many bytes before pydicom is forced to read it.
BARE_DATASET_PROBE_BYTES = 64 * 1024
#: The probe stops after (0008,0060) Modality: SOPClassUID (0008,0016) and SOPInstanceUID (0008,0018) precede it.
_LAST_PROBED_TAG = 0x00080060
UNDEFINED_LENGTH = 0xFFFFFFFF
_UID = re.compile(r"[0-9]+(\.[0-9]+)+")
_EXPLICIT_VRS = frozenset(
    vr.encode()
    for vr in (
        "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV"
    ).split()
)


def has_dicom_preamble(path: Path) -> bool:
    if not path.is_file():  # FIFOs and devices would block or never end
        return False
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def register_dataset_identifiers(ds: Dataset) -> None:
    """Register the file's identifiers with the log filter.

    The files of a series repeat the same identifiers, so the undecoded bytes are compared first and
    only combinations not seen before are decoded and registered: that keeps a 300-file scan fast.
    """
    raw = tuple(_undecoded(ds, keyword) for keyword in IDENTIFYING_KEYWORDS)
    if raw in _registered:
        return
    register_identifiers(ds.get(keyword, "") for keyword in IDENTIFYING_KEYWORDS)
    if len(_registered) > REGISTERED_CACHE_SIZE:
        _registered.clear()
    _registered.add(raw)


def _undecoded(ds: Dataset, keyword: str) -> object:
    element = ds.get_item(keyword) if keyword in ds else None
    value = element.value if element is not None else None
    return value if isinstance(value, (bytes, str, type(None))) else str(value)


def _read(path: Path, stop_before_pixels: bool) -> tuple[Dataset, int]:
    """The dataset and the file offset where reading stopped (the PixelData tag when stopping before it).

    Files without the 128-byte preamble and "DICM" prefix (older writers, pydicom's own rtstruct.dcm,
    datasets saved straight from a network transfer) are still DICOM: pydicom refuses them unless forced,
    so they are forced only after a bounded probe of their first bytes finds a DICOM object's identity.
    """
    try:
        with open(path, "rb") as handle:
            _refuse_deflate_bomb(path, handle)
            try:
                ds = pydicom.dcmread(handle, stop_before_pixels=stop_before_pixels)
            except InvalidDicomError as exc:
                if not _looks_like_bare_dataset(handle):
                    raise UnsupportedFileError(path, "not a DICOM file (no DICOM header was found)") from exc
                handle.seek(0)
                ds = pydicom.dcmread(handle, stop_before_pixels=stop_before_pixels, force=True)
                _name_transfer_syntax(ds)
            offset = handle.tell()
    except InvalidDicomError as exc:
        raise UnsupportedFileError(path, "not a DICOM file (no DICOM header was found)") from exc
    except FileNotFoundError as exc:
        raise PathNotFoundError(path) from exc
    except MedviewerError:
        raise
    except Exception as exc:  # noqa: BLE001 - pydicom raises a dozen types on damaged headers (zlib, struct, ...)
        raise input_error(path, exc, "the DICOM header") from exc  # type: ignore[misc]
    register_dataset_identifiers(ds)
    return ds, offset


def _refuse_deflate_bomb(path: Path, handle: BinaryIO) -> None:
    """pydicom inflates a deflated dataset whole, in memory, before reading its first element, and deflate
    expands up to 1032-fold: a 10 MB file can hold 10 GB. The stream is inflated here first, counting and
    keeping nothing, and refused once it passes the memory budget; other files cost one 4 kB read."""
    head = handle.read(DEFLATE_PROBE_BYTES)
    handle.seek(0)
    if DeflatedExplicitVRLittleEndian.encode() not in head or head[128:132] != b"DICM":
        return
    handle.seek(132)
    meta = _read_file_meta_info(handle)
    if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        budget = memory_budget()
        inflater, inflated = zlib.decompressobj(-zlib.MAX_WBITS), 0
        while (chunk := handle.read(1 << 20)) and inflated <= budget:
            inflated += len(inflater.decompress(chunk, budget + 1 - inflated))
            while inflater.unconsumed_tail and inflated <= budget:
                inflated += len(inflater.decompress(inflater.unconsumed_tail, budget + 1 - inflated))
        refuse_if_too_large(path, inflated, "its deflated dataset, inflated")
    handle.seek(0)


def _looks_like_bare_dataset(handle: BinaryIO) -> bool:
    """Whether a file without preamble starts as a DICOM dataset that says what object it is.

    Forcing pydicom on any file would parse text, JSON or a multi-gigabyte video as garbage elements, so
    the file must first start with a little-endian tag of the file meta (0002) or identifying (0008)
    group, and then the elements up to Modality, parsed from at most ``BARE_DATASET_PROBE_BYTES``, must
    hold a well-formed SOPClassUID and a Modality or SOPInstanceUID.
    """
    handle.seek(0)
    head = handle.read(BARE_DATASET_PROBE_BYTES)
    if len(head) < 8:
        return False
    group, _element = struct.unpack("<HH", head[:4])
    if group not in (0x0002, 0x0008):
        return False
    if head[4:6] not in _EXPLICIT_VRS:  # implicit VR: never the file meta group; a first value is short or a sequence
        length = struct.unpack("<L", head[4:8])[0]
        if group == 0x0002 or not (length < BARE_DATASET_PROBE_BYTES or length == UNDEFINED_LENGTH):
            return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about every garbage value it meets
            probe = read_partial(io.BytesIO(head), stop_when=lambda tag, vr, length: tag > _LAST_PROBED_TAG, force=True)
            sop_class = str(probe.get("SOPClassUID", "") or "")
            identified = bool(probe.get("Modality") or probe.get("SOPInstanceUID"))
    except (InvalidDicomError, *READ_ERRORS, NotImplementedError, RecursionError, struct.error, UnicodeError):
        return False
    return identified and len(sop_class) <= 64 and _UID.fullmatch(sop_class) is not None


def _name_transfer_syntax(ds: Dataset) -> None:
    """Give a dataset read without file meta the transfer syntax it was parsed in.

    Without file meta the pixel data can only be native (encapsulated data needs a named syntax), and
    decoders refuse pixels whose transfer syntax is not named; the encoding pydicom detected is the answer.
    """
    if "TransferSyntaxUID" in ds.file_meta:
        return
    implicit_vr, little_endian = ds.original_encoding
    if implicit_vr:
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if little_endian else ExplicitVRBigEndian


def read_dataset(path: Path, stop_before_pixels: bool = False) -> Dataset:
    """One file's dataset, with its identifiers registered; typed errors for non-DICOM or damaged files."""
    return _read(path, stop_before_pixels)[0]


def read_header(path: Path) -> Dataset:
    """Header only, stopping before the pixel data."""
    return read_dataset(path, stop_before_pixels=True)


@dataclass
class DicomFile:
    """One image file's header and where its pixel data starts."""

    path: Path
    header: Dataset
    #: Offset of the (7FE0,0010) element's tag, or of the end of the file when it has no pixel data.
    pixel_offset: int

    @classmethod
    def read(cls, path: Path) -> DicomFile:
        header, offset = _read(path, stop_before_pixels=True)
        return cls(path, header, offset)

    @property
    def series_uid(self) -> str:
        return str(self.header.get("SeriesInstanceUID", ""))

    @cached_property
    def kind(self) -> DicomKind:
        return file_kind(self.header)

    @property
    def is_image(self) -> bool:
        """Whether its own pixels are what is shown: not a SEG, a report, a slide or an object without pixels."""
        return self.kind.shows_pixels


@dataclass
class ScanResult:
    """The image files found under a path, by series, and what was left out."""

    series: dict[str, list[DicomFile]] = field(default_factory=dict)
    #: Objects that are not images to look at (SEG, RTSTRUCT, SR, slides, plans...), by series: listed
    #: for a person to choose from, never stacked with the images.
    objects: dict[str, list[DicomFile]] = field(default_factory=dict)
    not_dicom: int = 0
    unreadable: int = 0

    def skipped_warning(self) -> str | None:
        parts = []
        if self.not_dicom:
            parts.append(f"{self.not_dicom} file(s) are not DICOM images")
        if self.unreadable:
            parts.append(f"{self.unreadable} DICOM file(s) are damaged and cannot be read")
        return "; ".join(parts) + "; they were skipped" if parts else None


def _files_under(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    found: list[Path] = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        found.extend(Path(root) / name for name in sorted(files))
    return found


def scan(path: Path) -> ScanResult:
    """Headers of every DICOM image under ``path`` (a folder or one file), grouped by SeriesInstanceUID."""
    return scan_files(_files_under(path))


def scan_files(paths: list[Path]) -> ScanResult:
    """Headers of the DICOM images among ``paths`` and nothing else, grouped by SeriesInstanceUID."""
    result = ScanResult()
    groups: dict[str, list[DicomFile]] = defaultdict(list)
    objects: dict[str, list[DicomFile]] = defaultdict(list)
    for file_path in paths:
        if not file_path.is_file():  # FIFOs and devices would block or never end
            result.not_dicom += 1
            continue
        try:
            dicom_file = DicomFile.read(file_path)
        except UnsupportedFileError:
            result.not_dicom += 1
            continue
        except CorruptFileError as exc:
            log.warning("skipped %s: %s", safe_path(file_path), exc.reason)
            result.unreadable += 1
            continue
        if dicom_file.is_image:
            groups[dicom_file.series_uid].append(dicom_file)
        elif "SOPClassUID" in dicom_file.header:
            objects[dicom_file.series_uid].append(dicom_file)
        else:  # a DICOMDIR or a bare dataset: nothing a person opens
            result.not_dicom += 1
    result.series = dict(groups)
    result.objects = dict(objects)
    return result


def patient_info(ds: Dataset) -> PatientInfo:
    return PatientInfo(
        patient_id=str(ds.get("PatientID", "")),
        name=str(ds.get("PatientName", "")),
        birth_date=str(ds.get("PatientBirthDate", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        study_date=str(ds.get("StudyDate", "")),
        study_description=str(ds.get("StudyDescription", "")),
    )
