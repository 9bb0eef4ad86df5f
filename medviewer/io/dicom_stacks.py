"""Splitting a series into stacks of slices, and a stack into time points.

One SeriesInstanceUID often holds more than one volume: a localizer in three orientations, magnitude
and field-map images at the same positions, or an fMRI run that visits every position once per time
point. Stacking such a series as it comes would build a volume that exists nowhere in the patient, so
frames are grouped by what must be constant within one volume (orientation, size, pixel spacing).
Where a group visits a position more than once, frames of different image type or echo are separate
stacks (magnitude and field map), and the remaining repeats are time points. Image type alone does not
split: scanners vary it within one stack (GE marks some slices of a CT series "ADD").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medviewer.core.errors import CorruptFileError
from medviewer.io.dicom_frames import FrameRecord, frame_records
from medviewer.io.dicom_geometry import SAME_PLACE_MM, heights, plane_name
from medviewer.io.dicom_kind import DicomKind, is_colour
from medviewer.io.dicom_series import DicomFile

#: Orientation cosines and pixel spacings (mm) closer than this belong to the same stack.
ORIENTATION_TOLERANCE = 1e-3
#: A series split into more stacks than this is refused: no acquisition has that many planes or sizes, and
#: sorting frames into ever more stacks is where a hostile file of many frames would spend its time.
MAX_STACKS = 1000


@dataclass
class SeriesInfo:
    """One stack as ``list_series`` describes it, without reading pixel data."""

    series_uid: str
    #: Pass as ``series_uid`` to ``open_volume`` to open this stack; the series UID itself when the
    #: series is one stack, ``<series uid>#<n>`` when the series holds several.
    key: str
    modality: str
    description: str
    slices: int  # positions in one time point
    frames: int  # frames in the stack, over all time points
    rows: int
    columns: int
    orientation: str  # axial, coronal, sagittal, oblique or unknown
    time_points: int
    image_type: str  # ImageType or enhanced FrameType, which tells apart stacks at the same positions
    files: list[Path] = field(default_factory=list)
    #: What the stack is (``DicomKind`` value): volume, image, colour image, cine, or for objects that
    #: are not images (segmentation, rt structure set, structured report, ...) what they are.
    kind: str = "volume"

    @property
    def label(self) -> str:
        times = f", {self.time_points} time points" if self.time_points > 1 else ""
        return f"{self.description or self.modality or 'series'}: {self.orientation} {self.slices} slices{times}"


@dataclass
class Stack:
    series_uid: str
    key: str
    records: list[FrameRecord]
    #: Records of each time point, in time order; each holds at most one record per position.
    time_points: list[list[FrameRecord]]
    #: What the viewer must say about how the series was split (frames left out of this stack, and why).
    notes: list[str] = field(default_factory=list)

    @property
    def header(self) -> Dataset:
        return self.records[0].file.header

    @property
    def kind(self) -> DicomKind:
        """The stack's kind: a volume only when every frame is placed in the patient."""
        kinds = {record.file.kind for record in self.records}
        if len(kinds) == 1:
            return kinds.pop()
        return DicomKind.CINE if DicomKind.CINE in kinds else DicomKind.IMAGE

    def info(self) -> SeriesInfo:
        files = list(dict.fromkeys(r.file.path for r in self.records))
        return SeriesInfo(
            series_uid=self.series_uid,
            key=self.key,
            modality=str(self.header.get("Modality", "")),
            description=str(self.header.get("SeriesDescription", "")),
            slices=max(len(t) for t in self.time_points),
            frames=len(self.records),
            rows=self.records[0].rows,
            columns=self.records[0].columns,
            orientation=plane_name(self.records),
            time_points=len(self.time_points),
            image_type=self.records[0].image_type,
            files=files,
            kind=self.kind.value,
        )


def _stack_key(record: FrameRecord, picture: tuple[int, int, bool]) -> tuple[object, ...]:
    """What must be equal, exactly, for two frames to be one stack: the file's (rows, columns, colour), where
    the frame lies, and orientation and spacing compared by bytes."""
    return (
        *picture,
        record.position is None,
        None if record.orientation is None else record.orientation.tobytes(),
        record.pixel_spacing,
    )


def _tolerance_features(record: FrameRecord) -> np.ndarray:
    """Orientation cosines and pixel spacing, the values two frames of one stack may differ in by rounding."""
    orientation = record.orientation if record.orientation is not None else np.empty(0)
    spacing = np.asarray(record.pixel_spacing if record.pixel_spacing is not None else (), dtype=float)
    return np.concatenate([orientation, spacing])


class _StackGrouping:
    """Frames sorted into stacks in one pass: a frame whose exact values were met before joins that stack at
    once; a new combination is compared with the first frame of every stack of its kind in one array operation.
    Comparing every frame with every stack one by one took minutes for a file of many thousand frames."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.groups: list[list[FrameRecord]] = []
        self._exact: dict[tuple[object, ...], int] = {}
        #: per (size, colour, which values are present): the stacks' indices and their first frames' features
        self._heads: dict[tuple[object, ...], tuple[list[int], list[np.ndarray]]] = {}

    def add(self, record: FrameRecord, picture: tuple[int, int, bool]) -> None:
        key = _stack_key(record, picture)
        index = self._exact.get(key)
        if index is None:
            index = self._matching(record, (*key[:4], key[4] is None, key[5] is None))
            self._exact[key] = index
        self.groups[index].append(record)

    def _matching(self, record: FrameRecord, kind: tuple[object, ...]) -> int:
        indices, features = self._heads.setdefault(kind, ([], []))
        feature = _tolerance_features(record)
        if features and feature.size:
            tolerance = ORIENTATION_TOLERANCE + 1e-5 * np.abs(feature)  # np.allclose's, as before
            close = np.all(np.abs(np.stack(features) - feature) <= tolerance, axis=1)
            if close.any():
                return indices[int(np.argmax(close))]
        elif features:
            return indices[0]
        if len(self.groups) >= MAX_STACKS:
            raise CorruptFileError(
                self.path,
                f"the series' frames lie in more than {MAX_STACKS} different planes or sizes: it is not a set of "
                "images that can be stacked (damaged or hostile)",
            )
        self.groups.append([])
        indices.append(len(self.groups) - 1)
        features.append(feature)
        return len(self.groups) - 1


def _stack_groups(records: list[FrameRecord]) -> list[list[FrameRecord]]:
    """Records grouped by what must be constant within one volume: size, colour, orientation, pixel spacing."""
    grouping = _StackGrouping(records[0].file.path if records else Path())
    pictures: dict[int, tuple[int, int, bool]] = {}  # header look-ups once per file, not once per frame
    for record in records:
        key = id(record.file)
        if key not in pictures:
            pictures[key] = (record.rows, record.columns, is_colour(record.file.header))
        grouping.add(record, pictures[key])
    return grouping.groups


def _time_points(records: list[FrameRecord]) -> list[list[FrameRecord]]:
    """Records at the same place, in time order, become the same index of successive time points.

    Only a volume has places: radiographs and other 2-D images often carry a stray ImagePositionPatient
    (0\\0\\0 on every image), which must not turn a series of views into "time points" of one.
    """
    place = heights(records) if all(r.file.kind is DicomKind.VOLUME for r in records) else None
    if place is None:
        return [sorted(records, key=lambda r: r.time_key)]
    order = np.argsort(place, kind="stable")
    locations: list[list[FrameRecord]] = []
    previous = None
    for i in order:
        if previous is None or place[i] - previous > SAME_PLACE_MM:
            locations.append([])
        locations[-1].append(records[i])
        previous = place[i]
    count = max(len(at) for at in locations)
    by_time = [sorted(at, key=lambda r: r.time_key) for at in locations]
    return [[at[t] for at in by_time if len(at) > t] for t in range(count)]


def _kind_groups(records: list[FrameRecord]) -> list[list[FrameRecord]]:
    """Records of one image type and echo together (magnitude and field map at the same positions)."""
    groups: dict[tuple[str, str], list[FrameRecord]] = {}
    for record in records:
        groups.setdefault((record.image_type, record.echo), []).append(record)
    return list(groups.values())


def _unplaced_note(records: list[FrameRecord], stack: list[FrameRecord]) -> str | None:
    """What to tell the reader of a placed stack about frames of the series left out of it because their
    position or orientation is unusable: they are a separate stack, and this one has a gap where they were."""
    if any(record.position is None for record in stack):
        return None
    left_out = [record for record in records if record.problems and record.position is None]
    if not left_out:
        return None
    numbers = sorted({int(n) for r in left_out if np.isfinite(n := r.time_key[2])})
    named = f" (instance number {', '.join(map(str, numbers[:5]))}{', ...' if len(numbers) > 5 else ''})"
    return (
        f"{len(left_out)} frame(s) of this series{named if numbers else ''} are not in this stack: "
        f"{left_out[0].problems[0]}; they are listed as a separate stack and their places here are left empty"
    )


def split_series(series_uid: str, files: list[DicomFile]) -> list[Stack]:
    """The stacks of one series, largest first."""
    records = [r for f in files for r in frame_records(f)]
    groups = []
    for group in _stack_groups(records):
        repeats = len(_time_points(group)) > 1
        groups.extend(_kind_groups(group) if repeats else [group])
    groups.sort(key=len, reverse=True)
    return [
        Stack(
            series_uid=series_uid,
            key=series_uid if len(groups) == 1 else f"{series_uid}#{n}",
            records=group,
            time_points=_time_points(group),
            notes=[note] if (note := _unplaced_note(records, group)) else [],
        )
        for n, group in enumerate(groups, start=1)
    ]
