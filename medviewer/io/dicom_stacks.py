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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medviewer.io.dicom_frames import FrameRecord, frame_records
from medviewer.io.dicom_geometry import SAME_PLACE_MM, heights, plane_name
from medviewer.io.dicom_kind import DicomKind, is_colour
from medviewer.io.dicom_series import DicomFile

#: Orientation cosines and pixel spacings closer than these belong to the same stack.
ORIENTATION_TOLERANCE = 1e-3
PIXEL_SPACING_TOLERANCE_MM = 1e-3


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


def _same_stack(a: FrameRecord, b: FrameRecord) -> bool:
    if (a.rows, a.columns) != (b.rows, b.columns):
        return False
    if is_colour(a.file.header) != is_colour(b.file.header):
        return False  # a colour frame and a grey one are two pictures, never slices of one volume
    if (a.position is None) != (b.position is None) or (a.orientation is None) != (b.orientation is None):
        return False
    if a.orientation is not None and not np.allclose(a.orientation, b.orientation, atol=ORIENTATION_TOLERANCE):
        return False
    if (a.pixel_spacing is None) != (b.pixel_spacing is None):
        return False
    return a.pixel_spacing is None or np.allclose(a.pixel_spacing, b.pixel_spacing, atol=PIXEL_SPACING_TOLERANCE_MM)


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


def _group(records: list[FrameRecord], same: Callable[[FrameRecord, FrameRecord], bool]) -> list[list[FrameRecord]]:
    groups: list[list[FrameRecord]] = []
    for record in records:
        group = next((g for g in groups if same(g[0], record)), None)
        if group is None:
            groups.append([record])
        else:
            group.append(record)
    return groups


def _same_kind(a: FrameRecord, b: FrameRecord) -> bool:
    return (a.image_type, a.echo) == (b.image_type, b.echo)


def split_series(series_uid: str, files: list[DicomFile]) -> list[Stack]:
    """The stacks of one series, largest first."""
    groups = []
    for group in _group([r for f in files for r in frame_records(f)], _same_stack):
        repeats = len(_time_points(group)) > 1
        groups.extend(_group(group, _same_kind) if repeats else [group])
    groups.sort(key=len, reverse=True)
    return [
        Stack(
            series_uid=series_uid,
            key=series_uid if len(groups) == 1 else f"{series_uid}#{n}",
            records=group,
            time_points=_time_points(group),
        )
        for n, group in enumerate(groups, start=1)
    ]
