"""Measurements a reader makes on a view: distance, angle and region statistics.

Points are kept in a view's display millimetres on one slice, and every length or angle is computed
from their world (LPS) positions through ``Volume.index_to_world``, so anisotropic voxels and oblique
orientations give true millimetres and degrees. Region statistics use the stored values (HU for CT)
of the pixels whose centres fall inside the drawn shape.
"""

from __future__ import annotations

import enum
import math
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medviewer.core import mpr
from medviewer.core.volume import Volume


class MeasurementKind(enum.Enum):
    DISTANCE = "distance"
    ANGLE = "angle"
    ELLIPSE = "ellipse"
    RECTANGLE = "rectangle"


#: How many points each kind is drawn with: two ends, end-vertex-end, or two opposite corners.
POINT_COUNTS = {
    MeasurementKind.DISTANCE: 2,
    MeasurementKind.ANGLE: 3,
    MeasurementKind.ELLIPSE: 2,
    MeasurementKind.RECTANGLE: 2,
}


@dataclass
class Measurement:
    """What was drawn: for ROIs the two points are opposite corners of the bounding box."""

    kind: MeasurementKind
    plane: mpr.Plane
    slice_index: int
    points: list[tuple[float, float]]

    def to_dict(self) -> dict[str, Any]:
        """Exactly what redraws the measurement, as JSON types; the values are recomputed from the volume."""
        return {
            "kind": self.kind.value,
            "plane": self.plane.value,
            "slice_index": int(self.slice_index),
            "points": [[float(u), float(v)] for u, v in self.points],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Measurement:
        """The inverse of ``to_dict``; raises ValueError saying what is wrong, for data read from a file."""
        if not isinstance(data, dict):
            raise ValueError(f"a measurement must be an object, not {type(data).__name__}")
        kinds = {kind.value: kind for kind in MeasurementKind}
        planes = {plane.value: plane for plane in mpr.Plane}
        kind_name, plane_name = data.get("kind"), data.get("plane")
        if not isinstance(kind_name, str) or kind_name not in kinds:
            raise ValueError(f"unknown measurement kind {reprlib.repr(kind_name)} (expected one of {', '.join(kinds)})")
        if not isinstance(plane_name, str) or plane_name not in planes:
            raise ValueError(f"unknown plane {reprlib.repr(plane_name)} (expected one of {', '.join(planes)})")
        kind, index, points = kinds[kind_name], data.get("slice_index"), data.get("points")
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"the slice index {reprlib.repr(index)} is not a whole number of at least 0")
        if not isinstance(points, list) or len(points) != POINT_COUNTS[kind]:
            given = f"{len(points)}" if isinstance(points, list) else f"a {type(points).__name__}"
            raise ValueError(f"a {kind.value} needs a list of {POINT_COUNTS[kind]} points, not {given}")
        pairs = []
        for point in points:
            if not isinstance(point, list) or len(point) != 2 or not all(is_finite_number(c) for c in point):
                raise ValueError(f"the point {reprlib.repr(point)} is not two finite numbers")
            pairs.append((float(point[0]), float(point[1])))
        return cls(kind, planes[plane_name], index, pairs)


def is_finite_number(value: Any) -> bool:
    """A JSON number usable as a coordinate: not a bool (a JSON true is no number), not NaN or infinite, and
    not an integer too large for a float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@dataclass(frozen=True)
class RegionStatistics:
    mean: float
    sd: float
    minimum: float
    maximum: float
    area_mm2: float
    pixel_count: int


def world_points(volume: Volume, measurement: Measurement) -> np.ndarray:
    """LPS millimetres of a measurement's points."""
    return display_to_world(volume, measurement.plane, measurement.slice_index, measurement.points)


def display_to_world(
    volume: Volume, plane: mpr.Plane, slice_index: int, points: Sequence[tuple[float, float]]
) -> np.ndarray:
    """LPS millimetres of display points on one slice (e.g. an ROI's outline, which is not stored)."""
    indices = [mpr.display_to_index(volume.shape, volume.spacing, plane, slice_index, u, v) for u, v in points]
    return volume.index_to_world(np.array(indices, dtype=float).reshape(-1, 3))


def distance_mm(volume: Volume, measurement: Measurement) -> float:
    first, second = world_points(volume, measurement)[:2]
    return float(np.linalg.norm(second - first))


def angle_degrees(volume: Volume, measurement: Measurement) -> float:
    """The angle at the middle point, between the arms to the first and third points."""
    first, vertex, third = world_points(volume, measurement)[:3]
    arm_a, arm_b = first - vertex, third - vertex
    norms = np.linalg.norm(arm_a) * np.linalg.norm(arm_b)
    if norms == 0:
        return 0.0
    return float(np.degrees(np.arccos(np.clip(arm_a @ arm_b / norms, -1.0, 1.0))))


def region_statistics(volume: Volume, measurement: Measurement) -> RegionStatistics | None:
    """Statistics inside an ellipse or rectangle; None when no pixel centre lies inside it."""
    su, sv = mpr.pixel_size(volume.spacing, measurement.plane)
    pixels = mpr.extract(volume.array, measurement.plane, measurement.slice_index)
    (ua, va), (ub, vb) = measurement.points[:2]
    u0, u1, v0, v1 = min(ua, ub), max(ua, ub), min(va, vb), max(va, vb)
    cols = np.arange(max(0, math.floor(u0 / su) - 1), min(pixels.shape[1], math.ceil(u1 / su) + 1))
    rows = np.arange(max(0, math.floor(v0 / sv) - 1), min(pixels.shape[0], math.ceil(v1 / sv) + 1))
    u = (cols + 0.5)[None, :] * su
    v = (rows + 0.5)[:, None] * sv
    if measurement.kind is MeasurementKind.ELLIPSE:
        half_u, half_v = (u1 - u0) / 2, (v1 - v0) / 2
        if half_u <= 0 or half_v <= 0:
            return None
        inside = ((u - (u0 + u1) / 2) / half_u) ** 2 + ((v - (v0 + v1) / 2) / half_v) ** 2 <= 1.0
        area = math.pi * half_u * half_v
    else:
        inside = (u >= u0) & (u <= u1) & (v >= v0) & (v <= v1)
        area = (u1 - u0) * (v1 - v0)
    if rows.size == 0 or cols.size == 0 or not inside.any():
        return None
    values = np.asarray(pixels[np.ix_(rows, cols)], dtype=np.float64)[inside]
    return RegionStatistics(
        mean=float(values.mean()),
        sd=float(values.std()),
        minimum=float(values.min()),
        maximum=float(values.max()),
        area_mm2=float(area),
        pixel_count=int(values.size),
    )


def summary_lines(volume: Volume, measurement: Measurement) -> list[str]:
    """The measured values: one line for a length or angle, three for a region."""
    if measurement.kind is MeasurementKind.DISTANCE:
        return [f"{distance_mm(volume, measurement):.1f} mm"]
    if measurement.kind is MeasurementKind.ANGLE:
        return [f"{angle_degrees(volume, measurement):.1f}°"]
    stats = region_statistics(volume, measurement)
    if stats is None:
        return ["empty region"]
    unit = " HU" if volume.modality == "CT" else ""
    return [
        f"mean {stats.mean:.1f}{unit}, SD {stats.sd:.1f}",
        f"min {stats.minimum:.0f}, max {stats.maximum:.0f}",
        f"area {stats.area_mm2:.1f} mm²",
    ]


def summary(volume: Volume, measurement: Measurement) -> str:
    """One line for the measurement list."""
    return ", ".join(summary_lines(volume, measurement))
