"""NIfTI-1/2 reading into the LPS patient frame.

NIfTI affines are in RAS; DICOM and medviewer use LPS, so the first two rows are negated. The file's
(i, j, k) array becomes (z, y, x) by transposition, and the affine's columns give spacing and
direction, so oblique sform/qform affines keep their true orientation. Which affine counts (sform,
qform or neither) is left to nibabel, so medviewer places a file where every nibabel-based tool does.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.core.errors import CorruptFileError, MedviewerError, PathNotFoundError, UnsupportedFileError, reading
from medviewer.core.volume import Volume
from medviewer.io.formats import NIFTI
from medviewer.io.memory_guard import refuse_if_too_large

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Millimetres per NIfTI spatial unit; "unknown" is read as millimetres, as every NIfTI tool does.
SPATIAL_UNIT_MM = {"meter": 1000.0, "mm": 1.0, "micron": 0.001}
#: The spatial unit codes NIfTI defines (the low three bits of xyzt_units); 4 to 7 are not units.
SPATIAL_UNIT_CODES = {0: "unknown", 1: "meter", 2: "mm", 3: "micron"}
NIFTI2_HEADER_SIZE = 540
NIFTI2_SIZES = (b"\x1c\x02\x00\x00", b"\x00\x00\x02\x1c")  # sizeof_hdr 540, either byte order
#: Columns of the affine further than this from perpendicular (as a cosine) are reported as sheared.
SHEAR_TOLERANCE = 1e-3


def is_nifti(path: Path) -> bool:
    """Whether the name is a NIfTI file's: nibabel, and so every reader here, goes by the name."""
    return NIFTI.names(path)


def read_nifti(path: Path, time_index: int = 0) -> Volume:
    """One 3-D volume from a NIfTI file; for 4-D files, the time point ``time_index`` (0-based)."""
    import nibabel as nib

    path = Path(path)
    image, head = _load(path)
    if not isinstance(image, nib.Nifti1Image):  # Nifti2Image is a subclass
        raise UnsupportedFileError(path, "not a NIfTI file (its header is not NIfTI-1 or NIfTI-2)")
    header = image.header
    _checked_shape(path, header)
    _refuse_infinite_scaling(path, head)
    # nibabel leaves get_data_dtype unannotated
    if header.get_data_dtype().names is not None:  # type: ignore[no-untyped-call]
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


def _load(path: Path) -> tuple[Any, bytes]:
    """The image as nibabel reads it, and the file's first bytes (its header as written), read once."""
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    raw = _gunzip_checked(path) if path.name.lower().endswith(".gz") else None
    head = raw[:NIFTI2_HEADER_SIZE] if raw is not None else _first_bytes(path)
    if raw is None:
        _check_dimension_count(path, head)
    try:
        if raw is not None:
            image_class = nib.Nifti2Image if raw[:4] in NIFTI2_SIZES else nib.Nifti1Image
            return image_class.from_bytes(raw), head
        return nib.load(str(path), mmap=False), head
    except ImageFileError as exc:
        if _declares_nifti_header(path):
            raise CorruptFileError(path, "the NIfTI header is truncated or damaged") from exc
        raise UnsupportedFileError(path, "not a NIfTI file (its header is not NIfTI-1 or NIfTI-2)") from exc
    except FileNotFoundError as exc:
        raise PathNotFoundError(path) from exc
    except Exception as exc:  # gzip, zlib, struct and nibabel raise varied types for damaged headers
        raise CorruptFileError(path, f"the NIfTI header cannot be read ({type(exc).__name__})") from exc


def _gunzip_checked(path: Path) -> bytes:
    """The decompressed file, never more than its header declares. nibabel stops reading at the last voxel,
    before the gzip trailer, so its checksum would never be verified and damaged voxels would load silently;
    reading to the end checks it. The stream is read in one capped read: a 2 MB bomb declaring 68 kB of
    voxels stops after 68 kB instead of inflating to gigabytes."""
    try:
        with gzip.open(path) as stream:
            head = stream.read(NIFTI2_HEADER_SIZE)
            cap = _declared_file_size(path, head)
            refuse_if_too_large(path, cap, "the decompressed file")
            rest = stream.read(cap - len(head) + 1)
            if len(head) + len(rest) > cap:
                raise CorruptFileError(
                    path,
                    f"the gzip stream holds more than the {cap} bytes the NIfTI header declares "
                    "(a damaged file or a compression bomb); it was not read",
                )
            return head + rest
    except FileNotFoundError as exc:
        raise PathNotFoundError(path) from exc
    except (OSError, EOFError, zlib.error) as exc:
        raise CorruptFileError(path, "the gzip stream is truncated or damaged (its checksum does not match)") from exc


def _declared_file_size(path: Path, head: bytes) -> int:
    """Header, extensions and voxels: what a NIfTI file of this header holds, from its first bytes."""
    header = _header_from(path, head)
    with reading(path, "the NIfTI header"):
        shape = _checked_shape(path, header)
        voxels = int(np.prod(shape, dtype=object)) * int(header.get_data_dtype().itemsize)
    return int(header.get_data_offset() or header.single_vox_offset) + voxels


def _header_from(path: Path, head: bytes) -> Any:
    """The NIfTI-1 or -2 header in a file's first bytes, as written (nibabel's loaded image alters it)."""
    import nibabel as nib

    two = head[:4] in NIFTI2_SIZES
    _check_dimension_count(path, head)
    with reading(path, "the NIfTI header"):
        header_class = nib.Nifti2Header if two else nib.Nifti1Header
        # nibabel leaves from_fileobj unannotated
        return header_class.from_fileobj(io.BytesIO(head), check=False)  # type: ignore[no-untyped-call]


def _refuse_infinite_scaling(path: Path, head: bytes) -> None:
    """nibabel reads an infinite scl_slope as no scaling, as it does 0 and NaN (which NIfTI allows), and
    moves it out of the header it returns; an infinity is damage, so the file's own header (``head``, its
    first bytes) is read here."""
    header = _header_from(path, head)
    slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
    if np.isinf(slope) or (slope != 0 and not np.isnan(slope) and np.isinf(inter)):
        raise CorruptFileError(path, f"scl_slope {slope:g} and scl_inter {inter:g} cannot scale the voxels")


def _checked_shape(path: Path, header: Any) -> tuple[int, ...]:
    """The data shape the header declares, refused when it cannot be one: dim[0] outside 1 to 7, or an axis
    of no voxels (a 33 x 41 x 0 volume is damage, not an empty image)."""
    dims = [int(d) for d in header["dim"]]
    if not 1 <= dims[0] <= 7:
        raise _dimension_count_error(path, dims[0])
    shape = tuple(dims[1 : dims[0] + 1])
    if min(shape) < 1:
        raise CorruptFileError(path, f"the NIfTI header declares a {' x '.join(map(str, shape))} array")
    return shape


def _first_bytes(path: Path) -> bytes:
    """The first bytes of an uncompressed file, where its header is (an unreadable file is left to nibabel)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(NIFTI2_HEADER_SIZE)
    except OSError:
        return b""


def _check_dimension_count(path: Path, head: bytes) -> None:
    """Refuse dim[0] outside 1 to 7 in the header's own byte order (told by sizeof_hdr). nibabel takes such a
    dim[0] as a sign of the other byte order and fails with a HeaderDataError that does not say why."""
    if len(head) < 48:
        return  # too short for a header: nibabel names it truncated
    for order in "<>":
        size = struct.unpack_from(order + "i", head)[0]
        if size in (348, 540):
            field = (order + "h", 40) if size == 348 else (order + "q", 16)  # NIfTI-1: int16 dim; NIfTI-2: int64
            count = struct.unpack_from(field[0], head, field[1])[0]
            if not 1 <= count <= 7:
                raise _dimension_count_error(path, count)
            return


def _dimension_count_error(path: Path, count: int) -> CorruptFileError:
    return CorruptFileError(path, f"the NIfTI header declares {count} dimensions (dim[0] must be 1 to 7)")


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
    if not (np.isfinite(float(proxy.slope)) and np.isfinite(float(proxy.inter))):
        raise CorruptFileError(
            path, f"scl_slope {float(proxy.slope):g} and scl_inter {float(proxy.inter):g} cannot scale the voxels"
        )
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
    unit = SPATIAL_UNIT_CODES.get(int(image.header["xyzt_units"]) & 7)
    affine = RAS_TO_LPS @ np.asarray(image.affine, dtype=float)
    affine[:3] *= SPATIAL_UNIT_MM.get(unit or "", 1.0)  # nibabel leaves units to the caller; medviewer works in mm
    if unit == "unknown":
        warnings.append("the file does not say its spatial unit; millimetres are assumed")
    elif unit is None:
        code = int(image.header["xyzt_units"]) & 7
        warnings.append(f"the spatial unit code {code} is not one NIfTI defines; millimetres are assumed")
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
    warnings.extend(_contradictions(image.header, spacing / SPATIAL_UNIT_MM.get(unit or "", 1.0)))
    if _affine_source(image.header) == "none":
        warnings.append("the file gives no orientation (sform and qform codes are 0); left and right cannot be trusted")
    return (
        tuple(float(s) for s in spacing),  # type: ignore[return-value]
        tuple(float(o) for o in affine[:3, 3]),
        direction,
    )


def _contradictions(header: Any, spacing: np.ndarray) -> list[str]:
    """Where the header's other geometry disagrees with the affine in use (the sform, as nibabel chooses):
    unusable voxel sizes in pixdim, a qform of non-numbers or one that puts the image elsewhere."""
    if _affine_source(header) != "sform":
        return []  # the qform is built from pixdim; a bad one already failed as a non-finite affine
    found = []
    pixdim = np.abs(np.asarray(header["pixdim"][1:4], dtype=float))
    if not np.all(np.isfinite(pixdim)) or np.any(pixdim == 0):
        sizes = ", ".join(f"{p:g}" for p in pixdim)
        found.append(f"the voxel sizes in pixdim ({sizes}) are unusable; the sform's are used")
    elif not np.allclose(pixdim, spacing, rtol=1e-3):
        found.append(
            f"pixdim gives voxels of {' x '.join(f'{p:g}' for p in pixdim)} but the sform of "
            f"{' x '.join(f'{s:g}' for s in spacing)}; the sform is used, as nibabel does"
        )
    if int(header["qform_code"]) != 0:
        with np.errstate(invalid="ignore"):
            qform = np.asarray(header.get_qform(), dtype=float)
        if not np.all(np.isfinite(qform)):
            found.append("the qform holds non-numbers; the sform is used")
        elif not np.allclose(qform, header.get_sform(), atol=1e-2):
            found.append("the qform and the sform place the image differently; the sform is used, as nibabel does")
    return found


def _affine_source(header: Any) -> str:
    """Which header affine nibabel chose: the same rule as ``Nifti1Header.get_best_affine``."""
    if int(header["sform_code"]) != 0:
        return "sform"
    if int(header["qform_code"]) != 0:
        return "qform"
    return "none"
