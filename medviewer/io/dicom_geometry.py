"""Where each slice of a stack lies, and the regular grid that holds them all at their true positions.

Slices are ordered by their position along the slice normal, never by InstanceNumber, and the spacing
comes from those positions, because SliceThickness is not the distance between slices. A stack whose
slices already form a regular grid is used as read. Otherwise (gantry tilt, uneven steps, missing
slices) the slices are placed on a regular grid with the slices' own row, column and normal directions,
a step of the smallest distance between slices, and an in-plane extent that covers every shifted
slice. Placement is nearest-neighbour: each plane takes the nearest slice, moved in-plane by whole
pixels, so every stored pixel keeps its value and lies within half a voxel of its true position. No
interpolation invents values, and each irregularity is reported, never silently stacked over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medviewer.core.errors import CorruptFileError
from medviewer.io.dicom_frames import MAX_POSITION_MM, FrameRecord, first_number
from medviewer.io.memory_guard import refuse_if_too_large

#: A slice may sit this fraction of the step off a regular grid and still count as on it.
SPACING_TOLERANCE = 0.05
#: A step within this fraction of a whole multiple (2x, 3x...) of the usual step means slices are missing.
MISSING_TOLERANCE = 0.2
#: Slices closer than this along the normal are at the same place (repeated acquisitions).
SAME_PLACE_MM = 0.01
#: Steps of the normal's dominant component above this name the plane; below it the plane is oblique.
PLANE_NAME_COSINE = np.cos(np.radians(30))


@dataclass
class Layout:
    """How the slices read (in ``order``) become the volume's voxels, and the volume's geometry."""

    order: list[int]  # indices of the stack's records, sorted along the normal
    shape: tuple[int, int, int]  # output (planes, rows, columns)
    spacing: tuple[float, float, float]  # (x, y, z): between columns, rows, planes
    origin: tuple[float, float, float]
    direction: np.ndarray
    warnings: list[str] = field(default_factory=list)
    #: For a regularised stack: the slice each output plane copies (-1: none, filled) and each slice's
    #: (row, column) offset in the output plane. None when the slices already form the grid.
    plane_source: np.ndarray | None = None
    offsets: np.ndarray | None = None

    @property
    def regular(self) -> bool:
        return self.plane_source is None

    def place(self, slices: np.ndarray, fill: float) -> np.ndarray:
        """The output grid from the slices in ``order``; voxels no slice reaches hold ``fill``."""
        if self.plane_source is None or self.offsets is None:
            return slices
        out = np.full(self.shape, fill, dtype=slices.dtype)
        rows, cols = slices.shape[1:]
        for plane, source in enumerate(self.plane_source):
            if source >= 0:
                row, col = self.offsets[source]
                out[plane, row : row + rows, col : col + cols] = slices[source]
        return out


def direction_of(orientation: np.ndarray) -> np.ndarray:
    """Columns row, column, normal; the column direction is made exactly orthogonal to the row."""
    row = orientation[:3]
    col = orientation[3:] - (orientation[3:] @ row) * row
    col = col / np.linalg.norm(col)
    return np.stack([row, col, np.cross(row, col)], axis=1)


def heights(records: list[FrameRecord]) -> np.ndarray | None:
    """Each record's position along the first record's slice normal, or None without geometry."""
    normal = records[0].normal
    if normal is None or any(r.position is None or r.orientation is None for r in records):
        return None
    return np.array([r.position @ normal for r in records])


def plane_name(records: list[FrameRecord]) -> str:
    """axial, coronal, sagittal or oblique, from the slice normal; unknown without orientation."""
    normal = records[0].normal
    if normal is None:
        return "unknown"
    axis = int(np.argmax(np.abs(normal)))
    return ("sagittal", "coronal", "axial")[axis] if abs(normal[axis]) >= PLANE_NAME_COSINE else "oblique"


def _pixel_spacing(records: list[FrameRecord], warnings: list[str]) -> tuple[float, float]:
    spacing = records[0].pixel_spacing
    if spacing is None:
        warnings.append("the files give no valid PixelSpacing; distances are shown as 1 mm per pixel")
        return 1.0, 1.0
    return spacing


def _header_step(record: FrameRecord) -> float:
    """The distance between slices the header states, for stacks whose positions cannot give it."""
    header = record.file.header
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = first_number(header.get(keyword), 0.0)
        if 0 < value <= MAX_POSITION_MM:  # NaN and infinity are not distances
            return value
    return 1.0


def _header_problems(records: list[FrameRecord]) -> list[str]:
    """One warning per kind of unusable position or orientation, saying what is shown instead."""
    seen = list(dict.fromkeys(problem for record in records for problem in record.problems))
    warnings = []
    for problem in seen[:3]:
        instead = "shown as if axial" if "orientation" in problem else "its place in the patient is unknown"
        affected = sum(problem in record.problems for record in records)
        where = f" in {affected} of {len(records)} frames" if len(records) > 1 else ""
        warnings.append(f"{problem}{where}: {instead}")
    if len(seen) > 3:
        warnings.append(f"and {len(seen) - 3} more unusable positions or orientations")
    return warnings


def plan_layout(records: list[FrameRecord]) -> Layout:
    """The layout of one stack at one time point (records of one orientation, one place each)."""
    warnings = _header_problems(records)
    row_mm, col_mm = _pixel_spacing(records, warnings)
    first = records[0]
    direction = direction_of(first.orientation) if first.orientation is not None else np.eye(3)
    shape = (len(records), first.rows, first.columns)
    place = heights(records)
    if place is None or len(records) == 1:
        order = sorted(range(len(records)), key=lambda i: records[i].time_key)
        step = _header_step(first)
        if len(records) > 1:
            warnings.append(
                f"the {len(records)} frames give no position in the patient; they are shown in file order, "
                f"{step:g} mm apart"
            )
        origin = first.position if first.position is not None else np.zeros(3)
        return Layout(order, shape, (col_mm, row_mm, step), tuple(origin), direction, warnings)
    order = [int(i) for i in np.argsort(place, kind="stable")]
    h = place[order]
    positions = np.array([records[i].position for i in order])
    mean_step = (h[-1] - h[0]) / (len(h) - 1)
    in_plane = (positions - positions[0]) @ direction[:, :2]  # mm along row and column directions
    pixels = in_plane / np.array([col_mm, row_mm])  # (columns, rows) each slice is shifted by
    extent = np.ptp(pixels, axis=0)
    _refuse_huge_grid(first, len(h), first.rows + extent[1], first.columns + extent[0])
    shifts = np.rint(pixels).astype(int)
    uniform = np.max(np.abs(h - h[0] - mean_step * np.arange(len(h)))) <= SPACING_TOLERANCE * mean_step
    if uniform and not shifts.any():
        return Layout(order, shape, (col_mm, row_mm, mean_step), tuple(positions[0]), direction, warnings)
    return _regularised(first, order, h, positions, shifts, (row_mm, col_mm), direction, warnings)


def _refuse_huge_grid(first: FrameRecord, planes: float, rows: float, columns: float) -> None:
    """Refuse a grid the slices' positions would stretch past memory (two slices a kilometre apart, 0.01 mm
    steps, a pixel size of 1e-300 mm) before a plane list or a shift is computed from it. One byte a voxel is
    the least any image takes; the volume's reader checks again with the real type."""
    voxels = float(planes) * float(rows) * float(columns)
    if not np.isfinite(voxels):
        raise CorruptFileError(first.file.path, "the slices' positions and pixel size give a grid of no finite size")
    refuse_if_too_large(
        first.file.path,
        int(min(voxels, 2.0**62)),
        f"the regular grid its slices' positions span ({planes:.0f} planes of {columns:.0f} x {rows:.0f} pixels)",
    )


def _regularised(
    first: FrameRecord,
    order: list[int],
    h: np.ndarray,
    positions: np.ndarray,
    shifts: np.ndarray,
    pixel_mm: tuple[float, float],
    direction: np.ndarray,
    warnings: list[str],
) -> Layout:
    row_mm, col_mm = pixel_mm
    steps = np.diff(h)
    usual = float(np.median(steps))
    even = steps.max() - steps.min() <= SPACING_TOLERANCE * usual
    # Evenly spaced (tilted) slices keep one plane each: positions rounded in the files would make the
    # smallest step a little short and repeat a slice on two planes.
    step = float((h[-1] - h[0]) / (len(h) - 1)) if even else float(steps.min())
    if shifts.any():
        line = positions[-1] - positions[0]
        tilt = np.degrees(np.arccos(min(1.0, abs(line @ direction[:, 2]) / np.linalg.norm(line))))
        warnings.append(f"gantry tilt of {tilt:.1f} degrees: each slice is shifted in its plane against the one before")
    if not even:
        warnings.append(f"slice spacing is not uniform (steps from {steps.min():.2f} to {steps.max():.2f} mm)")
    _refuse_huge_grid(
        first, (h[-1] - h[0]) / step + 1, first.rows + np.ptp(shifts[:, 1]), first.columns + np.ptp(shifts[:, 0])
    )
    planes = int(round((h[-1] - h[0]) / step)) + 1
    plane_h = h[0] + step * np.arange(planes)
    after = np.clip(np.searchsorted(h, plane_h), 1, len(h) - 1)
    nearer_before = np.abs(plane_h - h[after - 1]) <= np.abs(h[after] - plane_h)
    source = np.where(nearer_before, after - 1, after)
    for gap in np.flatnonzero(steps > 1.5 * usual):
        ratio = steps[gap] / usual
        if abs(ratio - round(ratio)) <= MISSING_TOLERANCE:
            warnings.append(
                f"about {round(ratio) - 1} slice(s) missing between {h[gap]:.2f} and {h[gap + 1]:.2f} mm; "
                "that gap is left empty"
            )
            inside = (plane_h > h[gap]) & (plane_h < h[gap + 1])
            far = np.minimum(plane_h - h[gap], h[gap + 1] - plane_h) > usual / 2
            source[inside & far] = -1
    source[np.rint((h - h[0]) / step).astype(int)] = np.arange(len(h))  # every slice keeps its own plane
    low = shifts.min(axis=0)
    origin = positions[0] + direction[:, :2] @ (low * np.array([col_mm, row_mm]))
    size = shifts.max(axis=0) - low
    warnings.append(
        f"the {len(h)} slices are placed on a regular grid of {planes} planes {step:.2f} mm apart "
        "(each plane shows the nearest slice; nothing is interpolated)"
    )
    return Layout(
        order=order,
        shape=(planes, first.rows + int(size[1]), first.columns + int(size[0])),
        spacing=(col_mm, row_mm, step),
        origin=tuple(origin),
        direction=direction,
        warnings=warnings,
        plane_source=source,
        offsets=(shifts - low)[:, ::-1],
    )
