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
    try:
        frames = int(header.get("NumberOfFrames") or 1)
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
    header = dicom_file.header
    rows, columns = int(header.Rows), int(header.Columns)
    frames = file_frame_count(header, dicom_file.path)
    sample_bytes = max(1, int(header.get("BitsAllocated") or 16) // 8) * int(header.get("SamplesPerPixel") or 1)
    refuse_if_too_large(
        dicom_file.path,
        rows * columns * frames * sample_bytes,
        f"its declared size of {columns} x {rows} pixels x {frames} frames",
    )


def _classic_records(dicom_file: DicomFile) -> list[FrameRecord]:
    header = dicom_file.header
    frames = file_frame_count(header, dicom_file.path)
    position = _vector(_numbers(header, "ImagePositionPatient"), 3)
    orientation = _orientation(_numbers(header, "ImageOrientationPatient"))
    offsets = _frame_offsets(header, frames) if position is not None and orientation is not None else None
    normal = np.cross(orientation[:3], orientation[3:]) if orientation is not None else None
    time = (
        _sortable_time(header.get("AcquisitionTime")),
        first_number(_numbers(header, "TemporalPositionIdentifier")),
        first_number(_numbers(header, "InstanceNumber")),
    )
    records = []
    for frame in range(frames):
        if frames == 1:
            frame_position = position
        elif offsets is not None and normal is not None and position is not None:
            frame_position = position + offsets[frame] * normal
        else:
            frame_position = None
        records.append(
            FrameRecord(
                file=dicom_file,
                frame=frame,
                position=frame_position,
                orientation=orientation,
                pixel_spacing=pixel_spacing(header, "PixelSpacing") or pixel_spacing(header, "ImagerPixelSpacing"),
                slope=first_number(_numbers(header, "RescaleSlope"), 1.0),
                intercept=first_number(_numbers(header, "RescaleIntercept"), 0.0),
                time_key=(*time, float(frame)),
                image_type=_text(header.get("ImageType")),
                echo=_text(header.get("EchoNumbers")),
            )
        )
    return records


def _frame_offsets(header: Dataset, frames: int) -> np.ndarray | None:
    """Distances of a classic multi-frame file's frames from its ImagePositionPatient along the normal.

    RT dose gives them in GridFrameOffsetVector (relative when its first value is 0, otherwise
    absolute along the normal); other modalities give a constant SpacingBetweenSlices.
    """
    grid = _vector(_numbers(header, "GridFrameOffsetVector"), frames)
    if grid is not None:
        return grid - grid[0]
    step = first_number(_numbers(header, "SpacingBetweenSlices"), 0.0)
    return np.arange(frames) * step if frames > 1 and step > 0 else None


def _group_item(groups: list[Dataset], sequence: str) -> Dataset | None:
    """The first item of ``sequence`` in the per-frame group, else in the shared group."""
    for group in groups:
        if group is not None and sequence in group and len(group[sequence].value):
            return group[sequence].value[0]
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
        records.append(
            FrameRecord(
                file=dicom_file,
                frame=frame,
                position=_vector(_numbers(position, "ImagePositionPatient"), 3),
                orientation=_orientation(_numbers(orientation, "ImageOrientationPatient")),
                pixel_spacing=pixel_spacing(measures, "PixelSpacing"),
                slope=first_number(_numbers(values, "RescaleSlope"), 1.0),
                intercept=first_number(_numbers(values, "RescaleIntercept"), 0.0),
                time_key=(
                    _sortable_time(content.get("FrameAcquisitionDateTime")) if content is not None else NO_TIME,
                    first_number(_numbers(content, "TemporalPositionIndex")),
                    first_number(_numbers(header, "InstanceNumber")),
                    float(frame),
                ),
                image_type=_frame_type(groups),
                echo=_text(echo.get("EffectiveEchoTime")) if echo is not None else "",
            )
        )
    return records
