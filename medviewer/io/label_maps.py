"""One door for segmentation files: a NIfTI label volume, a DICOM SEG or an RT Structure Set, laid on a
reference volume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medviewer.core.errors import MedviewerError, PathNotFoundError, UnsupportedFileError
from medviewer.core.label_map import LabelMap, label_dtype
from medviewer.core.resample import resample_to
from medviewer.core.volume import Volume
from medviewer.io import dicom_rtstruct, dicom_seg
from medviewer.io.dicom_kind import sop_class_name
from medviewer.io.dicom_rtstruct import is_rt_structure_set, read_rtstruct
from medviewer.io.dicom_seg import is_segmentation, read_dicom_seg
from medviewer.io.dicom_series import read_dataset
from medviewer.io.nifti import is_nifti, read_nifti


def open_label_map(path: str | Path, reference: Volume) -> LabelMap:
    """The label map at ``path`` on ``reference``'s voxel grid; a typed error if it cannot be laid there."""
    path = Path(path)
    if not path.exists():
        raise PathNotFoundError(path)
    if is_nifti(path):
        return _nifti_label_map(path, reference)
    header = _dicom_header(path)
    if is_segmentation(header):
        return read_dicom_seg(path, reference)
    if is_rt_structure_set(header):
        return read_rtstruct(path, reference)
    raise UnsupportedFileError(
        path, f"a DICOM {sop_class_name(header)}, not a segmentation (DICOM SEG) or an RT structure set"
    )


def referenced_series(path: str | Path) -> list[str]:
    """SeriesInstanceUIDs of the series a SEG or RT structure set was drawn on (none for NIfTI).

    The window looks these up in the catalog to open the right series under the overlay, or to say
    which series is needed when it is not there.
    """
    path = Path(path)
    if not path.exists():
        raise PathNotFoundError(path)
    if is_nifti(path):
        return []
    header = _dicom_header(path)
    if is_segmentation(header):
        return dicom_seg.referenced_series_uids(header)
    if is_rt_structure_set(header):
        return dicom_rtstruct.referenced_series_uids(header)
    raise UnsupportedFileError(
        path, f"a DICOM {sop_class_name(header)}, not a segmentation (DICOM SEG) or an RT structure set"
    )


def _dicom_header(path: Path) -> Dataset:
    try:
        return read_dataset(path, stop_before_pixels=True)
    except UnsupportedFileError as exc:
        raise UnsupportedFileError(
            path, "not a label map medviewer opens (a NIfTI label volume, a DICOM SEG or an RT structure set)"
        ) from exc


def _nifti_label_map(path: Path, reference: Volume) -> LabelMap:
    """Labels resampled by nearest neighbour, so no label value is ever blended into another."""
    volume = read_nifti(path)
    labels = _as_labels(volume.array, path)
    source = Volume(array=labels, spacing=volume.spacing, origin=volume.origin, direction=volume.direction)
    array = resample_to(source, reference, order=0)
    warnings = list(volume.warnings)
    before = set(np.flatnonzero(np.bincount(labels.ravel()))) - {0}
    after = set(np.flatnonzero(np.bincount(array.ravel()))) - {0}
    if before and not after:
        raise MedviewerError(path, "the label map lies outside this volume: it was made on another scan")
    if before - after:
        missing = ", ".join(str(label) for label in sorted(before - after))
        warnings.append(f"label(s) {missing} fall outside the volume or between its voxels and are not shown")
    return LabelMap.from_array(array, source=path.name, warnings=warnings)


def _as_labels(array: np.ndarray, path: Path) -> np.ndarray:
    """Non-negative whole numbers in the smallest unsigned type; tools often store labels as floats."""
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise UnsupportedFileError(path, f"voxels of type {array.dtype} are not labels")
    if array.size == 0:
        raise UnsupportedFileError(path, "the label volume is empty")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise UnsupportedFileError(path, "the voxels hold NaN or infinite values, not labels")
    if np.issubdtype(array.dtype, np.floating) and not np.array_equal(array, np.round(array)):
        raise UnsupportedFileError(path, "the voxels hold fractions (an image or a probability map), not labels")
    low, high = array.min(), array.max()
    if low < 0:
        raise UnsupportedFileError(path, f"the voxels hold negative values (down to {low}), not labels")
    try:
        dtype = label_dtype(int(high))
    except ValueError as exc:
        raise UnsupportedFileError(path, f"label {int(high)} is too large for a label map") from exc
    return array.astype(dtype)
