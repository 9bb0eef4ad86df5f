"""One record per 2-D frame, whatever file layout it came from.

A classic file holds one frame; an enhanced multi-frame file keeps each frame's position, orientation,
pixel size and rescale in functional groups (per-frame, or shared by all frames); a classic multi-frame
file (RT dose, ultrasound cine) gives one position and a rule for the others, or none at all. Turning all
three into the same record lets one piece of code order, split and stack slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless

from medviewer.core.errors import CorruptFileError
from medviewer.io.dicom_series import DicomFile
from medviewer.io.memory_guard import refuse_if_too_large

#: Sorting key that puts frames with no time information after those that have it.
NO_TIME = float("inf")


@dataclass(frozen=True, eq=False)
class FrameRecord:
    """Where one frame lies, how its stored values become real values, and what tells it apart."""

    file: DicomFile
    frame: int
    position: np.ndarray | None  # ImagePositionPatient of the frame's first pixel, LPS mm
    orientation: np.ndarray | None  # ImageOrientationPatient: row direction then column direction
    pixel_spacing: tuple[float, float] | None  # (between rows, between columns) in mm
    slope: float
    intercept: float
    time_key: tuple[float, ...]
    image_type: str
    echo: str
    #: values of the frame's header that could not be used, as sentences for the viewer's warnings
    problems: tuple[str, ...] = ()

    # cached: stacking compares these for every pair of frames, and pydicom look-ups are slow
    @cached_property
    def rows(self) -> int:
        return int(self.file.header.Rows)

    @cached_property
    def columns(self) -> int:
        return int(self.file.header.Columns)

    @cached_property
    def normal(self) -> np.ndarray | None:
        if self.orientation is None:
            return None
        return np.cross(self.orientation[:3], self.orientation[3:])


def _numbers(ds: Dataset | None, keyword: str) -> list[float] | None:
    """The values of a decimal or integer string element (DS, IS), or None when absent or not numbers.

    Undecoded text is parsed directly: pydicom's DSfloat objects take several times longer, which adds
    up over the hundreds of files of a series.
    """
    if ds is None or keyword not in ds:
        return None
    value = ds.get_item(keyword).value
    if isinstance(value, bytes):
        text = value.strip(b" \x00")
        try:
            return [float(v) for v in text.split(b"\\")] if text else None
        except ValueError:
            return None
    if value is None or value == "":
        return None
    try:
        return [float(v) for v in value] if isinstance(value, (list, tuple, MultiValue)) else [float(value)]
    except (TypeError, ValueError):
        return None


def _vector(value: Any, length: int) -> np.ndarray | None:
    """A numeric vector of the given length, or None for absent or malformed values."""
    if value is None or not isinstance(value, (list, tuple, MultiValue)) or len(value) != length:
        return None
    try:
        vector = np.asarray([float(v) for v in value])
    except (TypeError, ValueError):
        return None
    return vector if np.all(np.isfinite(vector)) else None


#: PS3.3 C.7.6.3.1.2, with the retired ones still met in old files.
PHOTOMETRIC_INTERPRETATIONS = frozenset(
    {
        "MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "YBR_FULL", "YBR_FULL_422", "YBR_PARTIAL_422",
        "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "HSV", "ARGB", "CMYK",
    }
)
#: Memory one frame takes besides its pixels (its record, its entries in the stacking and reading plans):
#: about 600 bytes measured with tracemalloc, rounded up, so a file of a million 1-pixel frames is sized honestly.
FRAME_OVERHEAD_BYTES = 1024
#: Farther than this from the scanner's origin (a kilometre) a position is damage, not anatomy.
MAX_POSITION_MM = 1e6


def _raw_text(ds: Dataset | None, keyword: str) -> str:
    """A value as the file holds it, shortened, for a sentence saying what is wrong with it."""
    value = ds.get_item(keyword).value if ds is not None and keyword in ds else None
    text = value.decode("latin-1", "replace") if isinstance(value, bytes) else _text(value)
    return repr(text.strip(" \x00")[:40])


def _position(ds: Dataset | None, keyword: str, problems: list[str]) -> np.ndarray | None:
    """ImagePositionPatient as three finite, plausible numbers; None, with the reason in ``problems``, when
    the element is there but unusable (absent is not a problem: many images have no place in the patient)."""
    if ds is None or keyword not in ds:
        return None
    position = _vector(_numbers(ds, keyword), 3)
    if position is None or np.abs(position).max() > MAX_POSITION_MM:
        problems.append(f"{keyword} {_raw_text(ds, keyword)} is not a usable position")
        return None
    return position


def _checked_orientation(ds: Dataset | None, keyword: str, problems: list[str]) -> np.ndarray | None:
    """``_orientation``, noting in ``problems`` an element that is present but zero, non-finite or parallel."""
    if ds is None or keyword not in ds:
        return None
    orientation = _orientation(_numbers(ds, keyword))
    if orientation is None:
        problems.append(f"{keyword} {_raw_text(ds, keyword)} is not a usable orientation")
    return orientation


def _rescale(ds: Dataset | None, path: Any) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept (1 and 0 when absent). A non-finite or zero slope, or a
    non-finite intercept, is refused: every value shown would be wrong, and no warning makes that usable."""
    slope = first_number(_numbers(ds, "RescaleSlope"), 1.0)
    intercept = first_number(_numbers(ds, "RescaleIntercept"), 0.0)
    if not np.isfinite(slope) or slope == 0 or not np.isfinite(intercept):
        raise CorruptFileError(
            path,
            f"RescaleSlope {_raw_text(ds, 'RescaleSlope')} and RescaleIntercept {_raw_text(ds, 'RescaleIntercept')} "
            "cannot turn the stored values into real ones",
        )
    return slope, intercept


def _orientation(value: Any) -> np.ndarray | None:
    """Unit row and column directions; None when absent or degenerate."""
    iop = _vector(value, 6)
    if iop is None:
        return None
    row, col = iop[:3], iop[3:]
    if np.linalg.norm(row) < 1e-6 or np.linalg.norm(col) < 1e-6 or np.linalg.norm(np.cross(row, col)) < 1e-3:
        return None
    return np.concatenate([row / np.linalg.norm(row), col / np.linalg.norm(col)])


def pixel_spacing(ds: Dataset | None, keyword: str) -> tuple[float, float] | None:
    """(between rows, between columns) in mm from a PixelSpacing-like element; None when absent or unusable."""
    return _spacing(_numbers(ds, keyword))


def _spacing(value: Any) -> tuple[float, float] | None:
    spacing = _vector(value, 2)
    return (float(spacing[0]), float(spacing[1])) if spacing is not None and np.all(spacing > 0) else None


def first_number(value: Any, default: float = NO_TIME) -> float:
    """The first value of a number, list of numbers or numeric string; ``default`` when there is none."""
    if isinstance(value, (list, tuple, MultiValue)):
        value = value[0] if len(value) else None
    try:
        return float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _sortable_time(value: Any) -> float:
    """A DICOM TM or DT (with or without colons or a UTC offset) as a number that sorts like the time."""
    text = str(value or "").strip().split("+")[0].split("-")[0].replace(":", "")
    return first_number(text)


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value or "")


def file_frame_count(header: Dataset, path: Any) -> int:
    """NumberOfFrames, 1 when absent or empty; refused when it is not a positive number."""
    value = header.get("NumberOfFrames")
    try:
        frames = 1 if value in (None, "") else int(value)
    except (TypeError, ValueError) as exc:
        raise CorruptFileError(path, f"NumberOfFrames is not a number ({header.get('NumberOfFrames')!r})") from exc
    if frames < 1:
        raise CorruptFileError(path, f"NumberOfFrames is {frames}")
    return frames


def frame_records(dicom_file: DicomFile) -> list[FrameRecord]:
    """The records of every frame in one file; refuses files whose declared pixels cannot fit in memory."""
    header = dicom_file.header
    _refuse_huge(dicom_file)
    if "PerFrameFunctionalGroupsSequence" in header or "SharedFunctionalGroupsSequence" in header:
        return _enhanced_records(dicom_file)
    return _classic_records(dicom_file)


def _refuse_huge(dicom_file: DicomFile) -> None:
    """Refuse, before a record is made or a byte decoded, pixels the header declares but the file cannot hold
    (a few bytes declaring a billion frames or 65535 x 65535 RLE) or that exceed the memory budget."""
    header, path = dicom_file.header, dicom_file.path
    rows, columns = int(header.get("Rows") or 0), int(header.get("Columns") or 0)
    if rows < 1 or columns < 1:
        raise CorruptFileError(path, f"the header declares images of {columns} x {rows} pixels")
    frames = file_frame_count(header, path)
    bits = int(header.get("BitsAllocated", 16))
    samples = int(header.get("SamplesPerPixel", 1))
    if bits not in (1, 8, 16, 32, 64) or not 1 <= samples <= 4:
        raise CorruptFileError(path, f"the header declares {samples} samples of {bits} bits per pixel")
    if int(header.get("PixelRepresentation", 0)) not in (0, 1):
        raise CorruptFileError(path, f"PixelRepresentation {header.get('PixelRepresentation')} is neither 0 nor 1")
    photometric = str(header.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    if photometric not in PHOTOMETRIC_INTERPRETATIONS:
        raise CorruptFileError(path, f"PhotometricInterpretation {photometric[:20]!r} is not one DICOM defines")
    # every frame also costs its record and its place in the stacking, whatever its pixels
    refuse_if_too_large(
        path, frames * (rows * columns * max(1, bits // 8) * samples + FRAME_OVERHEAD_BYTES),
        f"its declared size of {columns} x {rows} pixels x {frames} frames",
    )
    frame_bytes = (rows * columns * samples * bits + 7) // 8
    stored = max(0, path.stat().st_size - dicom_file.pixel_offset)
    syntax = getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is not None and syntax.is_compressed and syntax != DeflatedExplicitVRLittleEndian:
        _refuse_impossible_compressed(path, frames, frame_bytes, stored, syntax == RLELossless)
    elif syntax != DeflatedExplicitVRLittleEndian and frames > 1 and frames * frame_bytes > stored:
        raise CorruptFileError(
            path,
            f"the header declares {frames} frames of {frame_bytes} bytes, but the file holds {stored} bytes after "
            "the start of its pixel data (it is truncated, or its header is wrong)",
        )


def _refuse_impossible_compressed(path: Any, frames: int, frame_bytes: int, stored: int, rle: bool) -> None:
    """Each compressed frame takes at least one 8-byte item in the file; an RLE segment cannot expand more
    than 64-fold (a two-byte run gives at most 128 bytes), so RLE declaring more is not what its data hold."""
    if frames * 8 > stored:
        raise CorruptFileError(path, f"the header declares {frames} frames, but the file holds {stored} bytes of them")
    if rle and frames * frame_bytes > 64 * stored + 64 * frames:
        raise CorruptFileError(
            path,
            f"the header declares {frames * frame_bytes} bytes of pixels, more than the {stored} bytes of RLE data "
            "in the file can hold",
        )


def _classic_records(dicom_file: DicomFile) -> list[FrameRecord]:
    """Every frame of a classic file shares its header's values; only the position (along the normal) and the
    time key differ, so they are worked out once, with the positions as one array operation."""
    header = dicom_file.header
    frames = file_frame_count(header, dicom_file.path)
    problems: list[str] = []
    position = _position(header, "ImagePositionPatient", problems)
    orientation = _checked_orientation(header, "ImageOrientationPatient", problems)
    slope, intercept = _rescale(header, dicom_file.path)
    positions = _classic_positions(header, frames, position, orientation)
    spacing = pixel_spacing(header, "PixelSpacing") or pixel_spacing(header, "ImagerPixelSpacing")
    image_type, echo = _text(header.get("ImageType")), _text(header.get("EchoNumbers"))
    time = (
        _sortable_time(header.get("AcquisitionTime")),
        first_number(_numbers(header, "TemporalPositionIdentifier")),
        first_number(_numbers(header, "InstanceNumber")),
    )
    shared_problems = tuple(problems)
    return [
        FrameRecord(
            file=dicom_file,
            frame=frame,
            position=positions[frame] if positions is not None else None,
            orientation=orientation,
            pixel_spacing=spacing,
            slope=slope,
            intercept=intercept,
            time_key=(*time, float(frame)),
            image_type=image_type,
            echo=echo,
            problems=shared_problems,
        )
        for frame in range(frames)
    ]


def _classic_positions(
    header: Dataset, frames: int, position: np.ndarray | None, orientation: np.ndarray | None
) -> np.ndarray | None:
    """Each frame's position: the file's own for one frame, else placed along the normal by the file's rule;
    None when the file gives no position or no rule."""
    if position is None:
        return None
    if frames == 1:
        return position[None, :]
    offsets = _frame_offsets(header, frames) if orientation is not None else None
    if offsets is None or orientation is None:
        return None
    positions: np.ndarray = position + offsets[:, None] * np.cross(orientation[:3], orientation[3:])
    return positions


def _frame_offsets(header: Dataset, frames: int) -> np.ndarray | None:
    """Distances of a classic multi-frame file's frames from its ImagePositionPatient along the normal.

    RT dose gives them in GridFrameOffsetVector (relative when its first value is 0, otherwise
    absolute along the normal); other modalities give a constant SpacingBetweenSlices.
    """
    grid = _vector(_numbers(header, "GridFrameOffsetVector"), frames)
    if grid is not None:
        relative: np.ndarray = grid - grid[0]
        return relative
    step = first_number(_numbers(header, "SpacingBetweenSlices"), 0.0)
    return np.arange(frames) * step if frames > 1 and 0 < step <= MAX_POSITION_MM else None


def _group_item(groups: list[Dataset], sequence: str) -> Dataset | None:
    """The first item of ``sequence`` in the per-frame group, else in the shared group."""
    for group in groups:
        if group is not None and sequence in group and len(group[sequence].value):
            item: Dataset = group[sequence].value[0]
            return item
    return None


def _frame_type(groups: list[Dataset]) -> str:
    for group in groups:
        for element in group or ():
            if element.keyword.endswith("FrameTypeSequence") and len(element.value):
                return _text(element.value[0].get("FrameType"))
    return ""


def _enhanced_records(dicom_file: DicomFile) -> list[FrameRecord]:
    header = dicom_file.header
    frames = file_frame_count(header, dicom_file.path)
    per_frame = list(header.get("PerFrameFunctionalGroupsSequence") or [])
    shared_items = header.get("SharedFunctionalGroupsSequence") or [None]
    shared = shared_items[0]
    if per_frame and len(per_frame) != frames:
        raise CorruptFileError(dicom_file.path, f"{len(per_frame)} per-frame functional groups for {frames} frames")
    records = []
    for frame in range(frames):
        groups = [per_frame[frame] if per_frame else None, shared]
        position = _group_item(groups, "PlanePositionSequence")
        orientation = _group_item(groups, "PlaneOrientationSequence")
        measures = _group_item(groups, "PixelMeasuresSequence")
        values = _group_item(groups, "PixelValueTransformationSequence")
        content = _group_item(groups, "FrameContentSequence")
        echo = _group_item(groups, "MREchoSequence")
        problems: list[str] = []
        slope, intercept = _rescale(values, dicom_file.path)
        records.append(
            FrameRecord(
                file=dicom_file,
                frame=frame,
                position=_position(position, "ImagePositionPatient", problems),
                orientation=_checked_orientation(orientation, "ImageOrientationPatient", problems),
                pixel_spacing=pixel_spacing(measures, "PixelSpacing"),
                slope=slope,
                intercept=intercept,
                time_key=(
                    _sortable_time(content.get("FrameAcquisitionDateTime")) if content is not None else NO_TIME,
                    first_number(_numbers(content, "TemporalPositionIndex")),
                    first_number(_numbers(header, "InstanceNumber")),
                    float(frame),
                ),
                image_type=_frame_type(groups),
                echo=_text(echo.get("EffectiveEchoTime")) if echo is not None else "",
                problems=tuple(problems),
            )
        )
    return records
