"""NIfTI-1/2 reading into the LPS patient frame.

NIfTI affines are in RAS; DICOM and medviewer use LPS, so the first two rows are negated. The file's
(i, j, k) array becomes (z, y, x) by transposition, and the affine's columns give spacing and
direction, so oblique sform/qform affines keep their true orientation. Which affine counts (sform,
qform or neither) is left to nibabel, so medviewer places a file where every nibabel-based tool does.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.core.errors import CorruptFileError, MedviewerError, PathNotFoundError, UnsupportedFileError
from medviewer.core.volume import Volume
from medviewer.io.memory_guard import refuse_if_too_large

NIFTI_SUFFIXES = (".nii", ".nii.gz")
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Millimetres per NIfTI spatial unit; "unknown" is read as millimetres, as every NIfTI tool does.
SPATIAL_UNIT_MM = {"meter": 1000.0, "mm": 1.0, "micron": 0.001}
#: Columns of the affine further than this from perpendicular (as a cosine) are reported as sheared.
SHEAR_TOLERANCE = 1e-3


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


def read_nifti(path: Path, time_index: int = 0) -> Volume:
    """One 3-D volume from a NIfTI file; for 4-D files, the time point ``time_index`` (0-based)."""
    import nibabel as nib

    path = Path(path)
    image = _load(path)
    if not isinstance(image, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise UnsupportedFileError(path, "not a NIfTI file (its header is not NIfTI-1 or NIfTI-2)")
    header = image.header
    if header.get_data_dtype().names is not None:
        raise UnsupportedFileError(path, "the file holds colour (RGB) voxels, not a grey-scale volume")
    shape = tuple(int(n) for n in image.shape)
    while len(shape) > 4 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 4:
        raise UnsupportedFileError(path, f"{len(shape)}-D NIfTI data (shape {shape}) is not a volume or a time series")
    _check_file_holds_data(path, header, shape)
    time_points = shape[3] if len(shape) == 4 else 1
    if not 0 <= time_index < time_points:
        raise MedviewerError(
            path, f"time point {time_index + 1} was asked for, but the file holds {time_points} (1 to {time_points})"
        )
    data = _read_voxels(path, image, shape, time_index)
    warnings: list[str] = []
    metadata: dict[str, Any] = {"source": "nifti", "nifti_version": 2 if isinstance(image, nib.Nifti2Image) else 1}
    if len(shape) == 4:
        metadata.update(time_points=time_points, time_index=time_index)
        if time_points > 1:
            warnings.append(f"the file holds {time_points} time points; showing time point {time_index + 1}")
    spacing, origin, direction = _geometry(path, image, warnings)
    metadata["affine_source"] = _affine_source(header)
    return Volume(
        array=np.ascontiguousarray(data.transpose(2, 1, 0)),
        spacing=spacing,
        origin=origin,
        direction=direction,
        warnings=warnings,
        metadata=metadata,
    )


def _load(path: Path) -> Any:
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    raw = _gunzip_checked(path) if path.name.lower().endswith(".gz") else None
    try:
        if raw is not None:
            image_class = nib.Nifti2Image if raw[:4] in (b"\x1c\x02\x00\x00", b"\x00\x00\x02\x1c") else nib.Nifti1Image
            return image_class.from_bytes(raw)
        return nib.load(str(path), mmap=False)
    except ImageFileError as exc:
        if _declares_nifti_header(path):
            raise CorruptFileError(path, "the NIfTI header is truncated or damaged") from exc
        raise UnsupportedFileError(path, "not a NIfTI file (its header is not NIfTI-1 or NIfTI-2)") from exc
    except FileNotFoundError as exc:
        raise PathNotFoundError(path) from exc
    except Exception as exc:  # gzip, zlib, struct and nibabel raise varied types for damaged headers
        raise CorruptFileError(path, f"the NIfTI header cannot be read ({type(exc).__name__})") from exc


def _gunzip_checked(path: Path) -> bytes:
    """The whole decompressed file. nibabel stops reading at the last voxel, before the gzip trailer, so
    its checksum is never verified and damaged voxels would load silently; decompressing it all checks it."""
    try:
        return gzip.decompress(path.read_bytes())
    except FileNotFoundError as exc:
        raise PathNotFoundError(path) from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptFileError(path, "the gzip stream is truncated or damaged (its checksum does not match)") from exc


def _declares_nifti_header(path: Path) -> bool:
    """Whether the file starts with a NIfTI header size (348 or 540 bytes), as a damaged NIfTI still does."""
    try:
        with gzip.open(path) if path.name.lower().endswith(".gz") else open(path, "rb") as handle:
            head = handle.read(4)
    except (OSError, EOFError):
        return False
    return len(head) == 4 and {struct.unpack("<i", head)[0], struct.unpack(">i", head)[0]} & {348, 540} != set()


def _check_file_holds_data(path: Path, header: Any, shape: tuple[int, ...]) -> None:
    """Refuse an uncompressed file shorter than its header claims before allocating for it.

    A compressed file's length says nothing about its content, so damage there shows up on reading.
    """
    if path.name.lower().endswith(".gz"):
        return
    declared = int(header.get_data_offset()) + int(np.prod(shape, dtype=object)) * header.get_data_dtype().itemsize
    actual = path.stat().st_size
    if actual < declared:
        raise CorruptFileError(
            path, f"the file is truncated: its header declares {declared} bytes, but the file holds {actual}"
        )


def _read_voxels(path: Path, image: Any, shape: tuple[int, ...], time_index: int) -> np.ndarray:
    """The voxels of one time point, in the stored type unless the header scales them.

    Scaled data becomes float32 rather than nibabel's float64: half the memory, and more precision than
    any scanner's integers carry.
    """
    proxy = image.dataobj  # nibabel moves scl_slope/scl_inter from the header to the proxy on loading
    scaled = (float(proxy.slope), float(proxy.inter)) != (1.0, 0.0)
    voxels = int(np.prod(shape[:3], dtype=object))
    bytes_per_voxel = image.header.get_data_dtype().itemsize + (12 if scaled else 0)  # nibabel scales to float64
    refuse_if_too_large(path, voxels * bytes_per_voxel, "the volume")
    try:
        data = np.asarray(proxy[:, :, :, time_index] if len(shape) == 4 else proxy)
    except Exception as exc:  # gzip, zlib and nibabel raise varied types for damaged data
        raise CorruptFileError(path, f"the NIfTI voxel data is truncated or damaged ({type(exc).__name__})") from exc
    data = data.reshape((*shape, 1, 1)[:3])
    if scaled:
        return data.astype(np.float32)
    return data.astype(data.dtype.newbyteorder("="), copy=False)


def _geometry(
    path: Path, image: Any, warnings: list[str]
) -> tuple[tuple[float, float, float], tuple[float, float, float], np.ndarray]:
    unit = image.header.get_xyzt_units()[0]
    affine = RAS_TO_LPS @ np.asarray(image.affine, dtype=float)
    affine[:3] *= SPATIAL_UNIT_MM.get(unit, 1.0)  # nibabel leaves units to the caller; medviewer works in mm
    if unit == "unknown":
        warnings.append("the file does not say its spatial unit; millimetres are assumed")
    if not np.all(np.isfinite(affine)):
        raise CorruptFileError(path, "the NIfTI affine holds non-numbers")
    linear = affine[:3, :3]
    spacing = np.linalg.norm(linear, axis=0)
    if np.any(spacing == 0):
        raise CorruptFileError(path, "the NIfTI affine has a zero-length axis")
    direction = linear / spacing[None, :]
    off_diagonal = np.abs(direction.T @ direction - np.eye(3)).max()
    if off_diagonal > SHEAR_TOLERANCE:
        warnings.append("the file's affine is sheared (its axes are not perpendicular); distances may be distorted")
    if _affine_source(image.header) == "none":
        warnings.append("the file gives no orientation (sform and qform codes are 0); left and right cannot be trusted")
    return (
        tuple(float(s) for s in spacing),  # type: ignore[return-value]
        tuple(float(o) for o in affine[:3, 3]),
        direction,
    )


def _affine_source(header: Any) -> str:
    """Which header affine nibabel chose: the same rule as ``Nifti1Header.get_best_affine``."""
    if int(header["sform_code"]) != 0:
        return "sform"
    if int(header["qform_code"]) != 0:
        return "qform"
    return "none"
