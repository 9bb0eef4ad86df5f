"""DICOM RT Structure Sets laid onto a volume as labels, by patient position.

A structure set draws each region of interest (ROI) as planar polygons in patient millimetres (LPS),
usually one per CT slice of the planning scan. Each polygon is taken through ``Volume.world_to_index``
and filled on the volume's voxel grid, so the ROI lands where it was drawn even when the volume was
regularised, reordered or read from another format. The label value is the ROI number (or, when the
numbers do not fit a label map, the ROI's place in the file), and the ROI's name and display colour
travel with the labels.

Everything a reader might be tempted to drop quietly (contours between slices, across the slices,
outside the volume, too small to cover a voxel centre, damaged) is drawn where it can be and said in
the label map's warnings: a radiotherapy contour that silently vanishes could look like an organ that
is not there.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from skimage.draw import polygon

from medviewer.core.errors import CorruptFileError, MedviewerError, UnsupportedFileError
from medviewer.core.label_map import LabelMap, label_dtype
from medviewer.core.volume import Volume
from medviewer.io.dicom_kind import RT_STRUCTURE_SET_SOP_CLASS, sop_class_name
from medviewer.io.dicom_seg import BETWEEN_SLICES_TOLERANCE
from medviewer.io.dicom_series import read_dataset

#: The rows and columns of the pixels inside a polygon; typed here, as skimage leaves ``polygon`` unannotated.
fill_polygon: Callable[..., tuple[np.ndarray, np.ndarray]] = polygon

#: A closed contour whose points spread less than this (in voxels) along a volume axis lies on one of
#: that axis's planes; one that spreads more crosses the planes and is drawn at the voxels nearest it.
PLANE_TOLERANCE = 0.1
#: A contour whose points lie further than this (in voxels) from their best-fitting plane is not flat.
FLATNESS_TOLERANCE = 0.5
#: Singular values below this fraction of the largest say that a contour's points lie on a line.
COLLINEAR_TOLERANCE = 1e-6
#: The largest label a label map holds (the largest DICOM segment number, see ``label_dtype``).
MAX_LABEL = 65535
OPEN_TYPES = ("OPEN_PLANAR", "OPEN_NONPLANAR")
#: Coordinates further than this from the origin (100 m) are damage, not anatomy; they would overflow
#: voxel indices or make a line through them take millions of samples.
MAX_COORDINATE_MM = 1e5


@dataclass
class _Roi:
    """One ROI as the file describes it, before anything is drawn."""

    number: int
    name: str
    colour: tuple[int, int, int] | None
    frame: str
    contours: list[Dataset] = field(default_factory=list)


@dataclass
class _Raster:
    """An ROI's voxels within the bounding box of its contours, which keeps a large ROI's mask small.

    Closed contours lying on the planes of one axis are combined by the even-odd rule within each plane,
    so a contour nested in another of the same ROI and plane cuts a hole (how planning systems store
    rings and cavities); everything else (points, lines, contours across the planes) is added.
    """

    low: np.ndarray  # (z, y, x) of the box's first voxel
    high: np.ndarray  # (z, y, x) one past the box's last voxel
    planar: dict[int, np.ndarray] = field(default_factory=dict)  # axis -> even-odd fill of its planes' contours
    added: np.ndarray | None = None

    def _box(self) -> np.ndarray:
        return np.zeros(tuple(self.high - self.low), dtype=bool)

    def toggle_plane(self, axis: int, position: int, rows: np.ndarray, columns: np.ndarray) -> None:
        mask = self.planar.setdefault(axis, self._box())
        other = [a for a in range(3) if a != axis]
        index: list[int | np.ndarray] = [0, 0, 0]
        index[axis] = position - self.low[axis]
        index[other[0]] = rows - self.low[other[0]]
        index[other[1]] = columns - self.low[other[1]]
        mask[tuple(index)] ^= True

    def add(self, voxels: np.ndarray) -> None:
        if self.added is None:
            self.added = self._box()
        local = voxels - self.low
        self.added[local[:, 0], local[:, 1], local[:, 2]] = True

    def mask(self) -> np.ndarray:
        result = self._box()
        for part in [*self.planar.values(), self.added]:
            if part is not None:
                result |= part
        return result


@dataclass
class _Report:
    """What happened to the contours, counted per ROI name and issue, turned into sentences at the end."""

    per_roi: Counter[tuple[str, str]] = field(default_factory=Counter)
    unknown_types: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    across: int = 0
    between: int = 0
    largest_gap_mm: float = 0.0
    largest_bend: float = 0.0
    #: Contours with usable points and a known type, and those of them that put a voxel in the volume.
    attempted: int = 0
    landed: int = 0

    def sentences(self) -> list[str]:
        issues = {
            "outside": "{n} contour(s) lie outside the volume and are not shown",
            "partly outside": "{n} contour(s) reach beyond the volume's edge; only the part inside is shown",
            "no area": "{n} closed contour(s) have fewer than 3 distinct points or all their points on a line, so "
            "they enclose no area; only their points are drawn",
            "unusable": "{n} contour(s) have no usable coordinates (ContourData missing, not in x, y, z triplets, "
            "not numbers or absurdly far) and are not drawn",
            "unknown type": "{n} contour(s) of unknown type ({types}) are not drawn",
            "smaller than a voxel": "{n} contour(s) enclose no voxel centre; drawn at the voxels nearest their points",
            "not flat": "{n} closed contour(s) are not flat (up to {bend:.1f} voxel(s) off their plane); filled in "
            "the plane that fits them best",
            "no contours": "it has no contours and is not shown",
        }
        lines = []
        for (name, issue), count in self.per_roi.items():
            text = issues[issue].format(
                n=count, types=", ".join(sorted(self.unknown_types[name])), bend=self.largest_bend
            )
            lines.append(f"ROI '{name}': {text}")
        if self.across:
            lines.append(
                f"{self.across} contour(s) are not parallel to the volume's slices; each is drawn at the voxels "
                "nearest its plane"
            )
        if self.between:
            lines.append(
                f"{self.between} contour(s) lie between the volume's slices (up to {self.largest_gap_mm:.2f} mm away); "
                "drawn on the nearest slice"
            )
        return lines


def is_rt_structure_set(ds: Dataset) -> bool:
    return str(ds.get("SOPClassUID", "")) == RT_STRUCTURE_SET_SOP_CLASS


def referenced_series_uids(ds: Dataset) -> list[str]:
    """The series the structures were drawn on, in the file's order, so a viewer can find and name them."""
    found: list[str] = []
    for frame in ds.get("ReferencedFrameOfReferenceSequence") or []:
        for study in frame.get("RTReferencedStudySequence") or []:
            for series in study.get("RTReferencedSeriesSequence") or []:
                uid = str(series.get("SeriesInstanceUID", "") or "")
                if uid and uid not in found:
                    found.append(uid)
    return found


def read_rtstruct(path: Path, reference: Volume) -> LabelMap:
    """The structure set at ``path`` as labels on ``reference``'s voxel grid, with ROI names and colours."""
    path = Path(path)
    ds = read_dataset(path, stop_before_pixels=True)
    try:
        return _label_map(ds, path, reference)
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        # Missing or malformed attributes surface as these when a value is used; name the file instead.
        raise CorruptFileError(
            path, f"the RT structure set's header is incomplete or malformed ({type(exc).__name__})"
        ) from exc


def _label_map(ds: Dataset, path: Path, reference: Volume) -> LabelMap:
    if not is_rt_structure_set(ds):
        raise UnsupportedFileError(path, f"a DICOM {sop_class_name(ds)}, not an RT structure set")
    rois = _rois(ds)
    if not any(roi.contours for roi in rois):
        raise MedviewerError(path, "the RT structure set holds no contours, so there is nothing to draw")
    warnings = _check_reference(ds, path, reference, rois)
    rois = [roi for roi in rois if _in_frame(roi, reference)]
    labels = _label_values(rois, path, warnings)
    report = _Report()
    rasters: dict[int, _Raster] = {}
    for roi in rois:
        if not roi.contours:
            report.per_roi[(roi.name, "no contours")] += 1
            continue
        raster = _rasterise(roi, reference, report)
        if raster is not None:
            rasters[roi.number] = raster
    if not report.attempted:
        raise CorruptFileError(
            path, "none of the RT structure set's contours can be drawn: " + "; ".join(report.sentences())
        )
    if not report.landed:
        raise MedviewerError(path, "the structure set lies outside this volume: it was drawn on another series or scan")
    warnings.extend(report.sentences())
    array = np.zeros(reference.shape, dtype=label_dtype(max(labels.values(), default=0)))
    _paint(array, rois, rasters, labels, warnings)
    names = {labels[roi.number]: roi.name for roi in rois}
    colours = {labels[roi.number]: roi.colour for roi in rois if roi.colour is not None}
    return LabelMap.from_array(array, source=path.name, names=names, colours=colours, warnings=warnings)


def _rois(ds: Dataset) -> list[_Roi]:
    """Each ROI with its name, colour, frame of reference and contours, in the file's order."""
    frames = [
        str(item.get("FrameOfReferenceUID", "") or "") for item in ds.get("ReferencedFrameOfReferenceSequence") or []
    ]
    only_frame = frames[0] if len(set(frames)) == 1 else ""
    rois: dict[int, _Roi] = {}
    for item in ds.get("StructureSetROISequence") or []:
        number = int(item.ROINumber)
        name = str(item.get("ROIName", "") or "").strip() or f"ROI {number}"
        frame = str(item.get("ReferencedFrameOfReferenceUID", "") or "") or only_frame
        rois[number] = _Roi(number=number, name=name, colour=None, frame=frame)
    for item in ds.get("ROIContourSequence") or []:
        number = int(item.ReferencedROINumber)
        roi = rois.setdefault(number, _Roi(number=number, name=f"ROI {number}", colour=None, frame=only_frame))
        roi.colour = _colour(item.get("ROIDisplayColor"))
        roi.contours.extend(item.get("ContourSequence") or [])
    return list(rois.values())


def _colour(value: object) -> tuple[int, int, int] | None:
    """ROIDisplayColor as RGB, or None (the palette then decides) when absent or out of range."""
    if not isinstance(value, Iterable):
        return None
    try:
        red, green, blue = (int(v) for v in value)
    except (TypeError, ValueError):
        return None
    return (red, green, blue) if all(0 <= v <= 255 for v in (red, green, blue)) else None


def _check_reference(ds: Dataset, path: Path, reference: Volume, rois: list[_Roi]) -> list[str]:
    """Refuse another frame of reference (positions would be meaningless); warn for another series."""
    warnings: list[str] = []
    volume_frame = str(reference.metadata.get("frame_of_reference_uid") or "")
    series = referenced_series_uids(ds)
    volume_series = reference.metadata.get("series_uid")
    if volume_series and series and str(volume_series) not in series:
        warnings.append("the structure set was drawn on another series; it is placed by position in the patient")
    if not volume_frame:
        warnings.append(
            "this volume does not say which coordinate system (frame of reference) it lies in, so the structures "
            "are placed by position in the patient without checking they belong to this scan"
        )
        return warnings
    drawn = [roi for roi in rois if roi.contours]
    if drawn and not any(_in_frame(roi, reference) for roi in drawn):
        raise MedviewerError(
            path,
            "the RT structure set belongs to another scan's coordinate system (frame of reference) than this volume",
        )
    for roi in drawn:
        if not _in_frame(roi, reference):
            warnings.append(
                f"ROI '{roi.name}' belongs to another coordinate system (frame of reference) than this volume "
                "and is not shown"
            )
    return warnings


def _in_frame(roi: _Roi, reference: Volume) -> bool:
    """Whether the ROI can be placed on the volume: same frame of reference, or one side does not say."""
    volume_frame = str(reference.metadata.get("frame_of_reference_uid") or "")
    return not volume_frame or not roi.frame or roi.frame == volume_frame


def _label_values(rois: list[_Roi], path: Path, warnings: list[str]) -> dict[int, int]:
    """ROI number -> label: the number itself when every number can be a label, else the ROI's place."""
    numbers = [roi.number for roi in rois]
    if all(1 <= number <= MAX_LABEL for number in numbers):
        return {number: number for number in numbers}
    if len(numbers) > MAX_LABEL:
        raise UnsupportedFileError(path, f"{len(numbers)} ROIs are more than a label map holds ({MAX_LABEL})")
    warnings.append(
        f"ROI numbers {', '.join(str(n) for n in numbers if not 1 <= n <= MAX_LABEL)} cannot be label values "
        f"(1 to {MAX_LABEL}); the ROIs are labelled 1 to {len(numbers)} in the file's order"
    )
    return {number: place for place, number in enumerate(numbers, start=1)}


def _contour_points(contour: Dataset, reference: Volume) -> np.ndarray | None:
    """The contour's points as continuous (z, y, x) volume indices; None when they are not usable."""
    try:
        data = np.asarray(contour.get("ContourData") or [], dtype=float)
    except (TypeError, ValueError):
        return None
    if data.size == 0 or data.size % 3 or not np.isfinite(data).all() or np.abs(data).max() > MAX_COORDINATE_MM:
        return None
    return np.asarray(reference.world_to_index(data.reshape(-1, 3)), dtype=float)


def _bounds(points: list[np.ndarray], shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The voxel box holding every point's nearest voxel and every fill, clipped to the volume."""
    stacked = np.concatenate(points)
    size = np.asarray(shape)
    low = np.clip(np.floor(stacked.min(axis=0)).astype(np.int64) - 1, 0, size)
    high = np.clip(np.ceil(stacked.max(axis=0)).astype(np.int64) + 2, 0, size)
    return low, np.maximum(high, low)


def _inside(voxels: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    inside: np.ndarray = np.all((voxels >= 0) & (voxels < np.asarray(shape)), axis=-1)
    return inside


def _rasterise(roi: _Roi, reference: Volume, report: _Report) -> _Raster | None:
    """The ROI's voxels; None when none of its contours could be drawn."""
    shape = reference.shape
    usable: list[tuple[str, np.ndarray]] = []
    for contour in roi.contours:
        kind = str(contour.get("ContourGeometricType", "") or "").strip().upper()
        points = _contour_points(contour, reference)
        if points is None:
            report.per_roi[(roi.name, "unusable")] += 1
        elif kind not in ("CLOSED_PLANAR", "POINT", *OPEN_TYPES):
            report.per_roi[(roi.name, "unknown type")] += 1
            report.unknown_types[roi.name].add(kind or "none given")
        else:
            usable.append((kind, points))
    if not usable:
        return None
    low, high = _bounds([points for _, points in usable], shape)
    if np.any(high <= low):
        report.attempted += len(usable)
        report.per_roi[(roi.name, "outside")] += len(usable)
        return None
    report.attempted += len(usable)
    raster = _Raster(low=low, high=high)
    for kind, points in usable:
        if kind == "CLOSED_PLANAR":
            drawn = _closed(raster, roi.name, points, reference, report)
        elif kind == "POINT":
            drawn = _points(raster, roi.name, points, shape, report)
        else:
            drawn = _polyline(raster, roi.name, points, shape, report, closed=False)
        report.landed += int(drawn)
    return raster


def _points(raster: _Raster, name: str, points: np.ndarray, shape: tuple[int, int, int], report: _Report) -> bool:
    voxels = np.rint(points).astype(np.int64)
    inside = _inside(voxels, shape)
    return _count_landing(raster, name, voxels[inside], int(inside.sum()), len(voxels), report)


def _polyline(
    raster: _Raster, name: str, points: np.ndarray, shape: tuple[int, int, int], report: _Report, closed: bool
) -> bool:
    """The voxels nearest a line through the points, sampled at most half a voxel apart."""
    path = np.vstack([points, points[:1]]) if closed and len(points) > 2 else points
    samples = [path[:1]]
    for start, end in zip(path[:-1], path[1:], strict=True):
        steps = max(1, int(np.ceil(np.abs(end - start).max() * 2)))
        samples.append(start + np.outer(np.arange(1, steps + 1) / steps, end - start))
    voxels = np.unique(np.rint(np.concatenate(samples)).astype(np.int64), axis=0)
    inside = _inside(voxels, shape)
    return _count_landing(raster, name, voxels[inside], int(inside.sum()), len(voxels), report)


def _count_landing(raster: _Raster, name: str, voxels: np.ndarray, inside: int, total: int, report: _Report) -> bool:
    if inside == 0:
        report.per_roi[(name, "outside")] += 1
        return False
    if inside < total:
        report.per_roi[(name, "partly outside")] += 1
    raster.add(voxels)
    return True


def _closed(raster: _Raster, name: str, points: np.ndarray, reference: Volume, report: _Report) -> bool:
    """Fill a closed contour: in its slice plane when it lies on one, else at the voxels nearest its plane."""
    shape = reference.shape
    distinct = np.unique(points, axis=0)
    centre = distinct.mean(axis=0)
    singular, normal = _plane(distinct - centre)
    if len(distinct) < 3 or singular[1] <= COLLINEAR_TOLERANCE * max(singular[0], 1.0):
        report.per_roi[(name, "no area")] += 1
        return _polyline(raster, name, points, shape, report, closed=True)
    spread = points.max(axis=0) - points.min(axis=0)
    axis = int(np.argmin(spread))
    if spread[axis] <= PLANE_TOLERANCE:
        position = float(centre[axis])
        gap = abs(position - round(position))
        if axis != 0:
            report.across += 1
        elif gap > BETWEEN_SLICES_TOLERANCE:
            report.between += 1
            report.largest_gap_mm = max(report.largest_gap_mm, gap * reference.spacing[2])
        plane = int(round(position))
        if not 0 <= plane < shape[axis]:
            report.per_roi[(name, "outside")] += 1
            return False
        return _fill_in_plane(raster, name, points, axis, plane, shape, report)
    report.across += 1
    bend = float(np.abs((points - centre) @ normal).max())
    if bend > FLATNESS_TOLERANCE:
        report.per_roi[(name, "not flat")] += 1
        report.largest_bend = max(report.largest_bend, bend)
    return _fill_across(raster, name, points, centre, normal, shape, report)


def _plane(centred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Singular values (largest first, three of them) and the unit normal of the best-fitting plane."""
    _, singular, axes = np.linalg.svd(centred, full_matrices=True)
    singular = np.concatenate([singular, np.zeros(3 - len(singular))])
    return singular, axes[-1]


def _in_plane_outside(points: np.ndarray, axes: list[int], shape: tuple[int, int, int]) -> bool:
    nearest = np.rint(points[:, axes])
    return bool(np.any((nearest < 0) | (nearest >= np.asarray(shape)[axes])))


def _fill_in_plane(
    raster: _Raster, name: str, points: np.ndarray, axis: int, plane: int, shape: tuple[int, int, int], report: _Report
) -> bool:
    other = [a for a in range(3) if a != axis]
    rows, columns = fill_polygon(points[:, other[0]], points[:, other[1]], shape=(shape[other[0]], shape[other[1]]))
    if len(rows) == 0:
        return _small(raster, name, points, shape, report, axis, plane)
    if _in_plane_outside(points, other, shape):
        report.per_roi[(name, "partly outside")] += 1
    raster.toggle_plane(axis, plane, rows, columns)
    return True


def _fill_across(
    raster: _Raster,
    name: str,
    points: np.ndarray,
    centre: np.ndarray,
    normal: np.ndarray,
    shape: tuple[int, int, int],
    report: _Report,
) -> bool:
    """Fill the contour's shadow on the two axes its plane faces least, then lift each pixel onto the plane."""
    axis = int(np.argmax(np.abs(normal)))
    other = [a for a in range(3) if a != axis]
    rows, columns = fill_polygon(points[:, other[0]], points[:, other[1]], shape=(shape[other[0]], shape[other[1]]))
    if len(rows) == 0:
        return _small(raster, name, points, shape, report)
    tilt = normal[other[0]] * (rows - centre[other[0]]) + normal[other[1]] * (columns - centre[other[1]])
    # a flat contour's plane stays within its points' range over its area; a bent one is kept there too
    depth = np.clip(centre[axis] - tilt / normal[axis], points[:, axis].min(), points[:, axis].max())
    voxels = np.empty((len(rows), 3), dtype=np.int64)
    voxels[:, axis] = np.rint(depth)
    voxels[:, other[0]] = rows
    voxels[:, other[1]] = columns
    inside = _inside(voxels, shape)
    if not inside.any():
        report.per_roi[(name, "outside")] += 1
        return False
    if not inside.all() or _in_plane_outside(points, other, shape):
        report.per_roi[(name, "partly outside")] += 1
    raster.add(voxels[inside])
    return True


def _small(
    raster: _Raster,
    name: str,
    points: np.ndarray,
    shape: tuple[int, int, int],
    report: _Report,
    axis: int | None = None,
    plane: int | None = None,
) -> bool:
    """A contour that encloses no voxel centre still shows, at the voxels nearest its points."""
    points = points.copy()
    if axis is not None and plane is not None:
        points[:, axis] = plane  # on the slice the contour was given to, not split across two
    voxels = np.unique(np.rint(points).astype(np.int64), axis=0)
    inside = _inside(voxels, shape)
    if not inside.any():
        report.per_roi[(name, "outside")] += 1
        return False
    report.per_roi[(name, "smaller than a voxel")] += 1
    raster.add(voxels[inside])
    return True


def _paint(
    array: np.ndarray, rois: list[_Roi], rasters: dict[int, _Raster], labels: dict[int, int], warnings: list[str]
) -> None:
    """Write every ROI's label, the smaller ROIs last, and say where ROIs overlap.

    Structure sets nest: the body outline holds every organ, and an organ holds its tumour. A label
    map shows one label per voxel, so the smaller ROI is drawn over the larger one: the other way round,
    the body would hide everything inside it.
    """
    by_number = {roi.number: roi for roi in rois}
    number_of = {label: number for number, label in labels.items()}
    masks = {number: raster.mask() for number, raster in rasters.items()}
    order = sorted(masks, key=lambda number: (-int(masks[number].sum()), labels[number]))
    overlaps: Counter[tuple[int, int]] = Counter()
    for number in order:
        raster, mask = rasters[number], masks[number]
        region = array[tuple(slice(int(lo), int(hi)) for lo, hi in zip(raster.low, raster.high, strict=True))]
        existing = region[mask]
        for under, count in zip(*np.unique(existing[existing != 0], return_counts=True), strict=True):
            overlaps[(number_of[int(under)], number)] += int(count)
        region[mask] = labels[number]
    for (under, over), count in sorted(overlaps.items(), key=lambda item: (-item[1], item[0])):
        over_name = by_number[over].name
        warnings.append(
            f"ROIs '{by_number[under].name}' and '{over_name}' overlap in {count} voxel(s); '{over_name}' is shown "
            "there (smaller ROIs are drawn over larger ones)"
        )
    shown = set(np.flatnonzero(np.bincount(array.reshape(-1))).tolist())
    for number in order:
        if masks[number].any() and labels[number] not in shown:
            warnings.append(f"ROI '{by_number[number].name}' is entirely covered by other ROIs and cannot be seen")
