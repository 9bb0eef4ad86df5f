"""DICOM series reading: group files by series, order slices by position, rescale to stored units.

Slices are ordered by their position along the slice normal, never by InstanceNumber, and the slice
spacing comes from those positions, because the header's SliceThickness is not the distance between
slices. Irregular spacing is reported as a warning rather than hidden.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from medviewer.core.errors import CorruptFileError, UnsupportedFileError
from medviewer.core.logs import register_identifiers, safe_path
from medviewer.core.patient import PatientInfo
from medviewer.core.volume import Volume

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
SPACING_TOLERANCE = 0.01  # relative deviation of slice steps accepted as uniform


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
    register_identifiers(ds.get(keyword, "") for keyword in IDENTIFYING_KEYWORDS)


def read_dataset(path: Path, stop_before_pixels: bool = False) -> Dataset:
    """One file's dataset, with its identifiers registered; typed errors for non-DICOM or damaged files."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as exc:
        raise UnsupportedFileError(path, "not a DICOM file (no DICOM header was found)") from exc
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(path, f"the DICOM file cannot be read ({type(exc).__name__})") from exc
    register_dataset_identifiers(ds)
    return ds


def read_header(path: Path) -> Dataset:
    """Header only, stopping before the pixel data."""
    return read_dataset(path, stop_before_pixels=True)


@dataclass
class SeriesSummary:
    """What a folder's series is, without pixel data: enough to choose one and to list them."""

    series_uid: str
    modality: str
    description: str
    paths: list[Path]


def scan_folder(folder: Path) -> tuple[list[SeriesSummary], int]:
    """Group the DICOM files under ``folder`` by SeriesInstanceUID; returns series and files skipped."""
    groups: dict[str, list[tuple[Path, Dataset]]] = defaultdict(list)
    skipped = 0
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if not has_dicom_preamble(path):
                skipped += 1
                continue
            try:
                ds = read_header(path)
            except (UnsupportedFileError, CorruptFileError) as exc:
                log.warning("skipped %s: %s", safe_path(path), exc.reason)
                skipped += 1
                continue
            if "Rows" not in ds:  # DICOMDIR, reports and other objects without an image
                skipped += 1
                continue
            groups[str(ds.get("SeriesInstanceUID", ""))].append((path, ds))
    series = [
        SeriesSummary(
            series_uid=uid,
            modality=str(items[0][1].get("Modality", "")),
            description=str(items[0][1].get("SeriesDescription", "")),
            paths=[p for p, _ in items],
        )
        for uid, items in groups.items()
    ]
    series.sort(key=lambda s: len(s.paths), reverse=True)
    return series, skipped


def _orientation(ds: Dataset) -> np.ndarray:
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return np.eye(3)
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    normal = np.cross(row, col)
    return np.stack([row, col, normal], axis=1)


def _pixels(ds: Dataset, path: Path) -> np.ndarray:
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for damaged or undecodable pixel data
        raise CorruptFileError(path, f"the pixel data cannot be decoded: {exc}") from exc
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if slope == 1 and intercept == int(intercept):
        rescaled = pixels.astype(np.int32) + int(intercept)
        if rescaled.min(initial=0) >= np.iinfo(np.int16).min and rescaled.max(initial=0) <= np.iinfo(np.int16).max:
            return rescaled.astype(np.int16)
        return rescaled
    return (pixels.astype(np.float32) * slope + intercept).astype(np.float32)


def read_series(paths: Iterable[Path]) -> Volume:
    """Read one series' files into a Volume ordered along the slice normal."""
    datasets = [(path, read_dataset(path)) for path in paths]
    first_path, first = datasets[0]
    direction = _orientation(first)
    normal = direction[:, 2]
    for path, ds in datasets[1:]:
        if not np.allclose(_orientation(ds), direction, atol=1e-3):
            raise UnsupportedFileError(path, "the series mixes slice orientations; it is not one stack of slices")

    def position(item: tuple[Path, Dataset]) -> np.ndarray:
        ipp = item[1].get("ImagePositionPatient")
        if ipp is None or len(ipp) != 3:
            if len(datasets) > 1:
                raise CorruptFileError(item[0], "ImagePositionPatient is missing, so slices cannot be ordered")
            return np.zeros(3)
        return np.asarray(ipp, float)

    datasets.sort(key=lambda item: float(position(item) @ normal))
    heights = np.array([position(item) @ normal for item in datasets])
    warnings: list[str] = []
    if len(datasets) > 1:
        steps = np.diff(heights)
        step = float(np.median(steps))
        if step <= 0:
            raise CorruptFileError(first_path, "several slices share one position (a 4-D or repeated series)")
        if np.max(np.abs(steps - step)) > SPACING_TOLERANCE * abs(step):
            warnings.append(
                f"slice spacing is not uniform (steps from {steps.min():.2f} to {steps.max():.2f} mm); "
                f"shown with the median step of {step:.2f} mm"
            )
    else:
        step = float(first.get("SpacingBetweenSlices", first.get("SliceThickness", 1.0)) or 1.0)
    slices = [_pixels(ds, path) for path, ds in datasets]
    shapes = {s.shape for s in slices}
    if len(shapes) != 1:
        raise CorruptFileError(first_path, f"slices of one series differ in size: {sorted(shapes)}")
    if slices[0].ndim != 2:
        raise UnsupportedFileError(first_path, f"pixel data of shape {slices[0].shape} is not a 2-D slice stack")
    array = np.stack(slices)
    pixel_spacing = first.get("PixelSpacing")
    if pixel_spacing is not None and len(pixel_spacing) == 2 and all(float(v) > 0 for v in pixel_spacing):
        row_spacing, col_spacing = (float(v) for v in pixel_spacing)
    else:
        row_spacing = col_spacing = 1.0
        warnings.append("the files give no valid PixelSpacing; distances are shown as 1 mm per pixel")
    window = _file_window(first)
    origin = position(datasets[0])
    return Volume(
        array=array,
        spacing=(col_spacing, row_spacing, abs(step)),
        origin=tuple(origin),
        direction=direction,
        modality=str(first.get("Modality", "")),
        description=str(first.get("SeriesDescription", "")),
        warnings=warnings,
        metadata={
            "source": "dicom",
            "series_uid": str(first.get("SeriesInstanceUID", "")),
            "study_uid": str(first.get("StudyInstanceUID", "")),
            "files": len(datasets),
        },
        invert_display=str(first.get("PhotometricInterpretation", "")) == "MONOCHROME1",
        window=window,
        patient=patient_info(first),
    )


def _first_number(value: object) -> float | None:
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else None
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _file_window(ds: Dataset) -> tuple[float, float] | None:
    """The first (width, centre) the file suggests, if it gives a usable one."""
    width = _first_number(ds.get("WindowWidth"))
    centre = _first_number(ds.get("WindowCenter"))
    return (width, centre) if width is not None and centre is not None and width > 0 else None


def patient_info(ds: Dataset) -> PatientInfo:
    return PatientInfo(
        patient_id=str(ds.get("PatientID", "")),
        name=str(ds.get("PatientName", "")),
        birth_date=str(ds.get("PatientBirthDate", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        study_date=str(ds.get("StudyDate", "")),
        study_description=str(ds.get("StudyDescription", "")),
    )
