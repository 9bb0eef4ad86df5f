"""DICOM Segmentation (SEG) objects laid onto a volume, by patient position.

A SEG stores one mask frame per segment and position. Each "on" pixel is placed at its position in
the patient (PlanePosition, PlaneOrientation, PixelMeasures) and written into the nearest voxel of
the volume it is shown on. Going through millimetres rather than through the referenced instance UIDs
keeps a SEG in place when the series was read with reordered or regularised slices, or comes from
another file format; UIDs are only used to warn and to refuse a different frame of reference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medviewer.core.errors import CorruptFileError, MedviewerError, UnsupportedFileError, input_error
from medviewer.core.label_map import LabelMap, label_dtype
from medviewer.core.volume import Volume
from medviewer.io.dicom_frames import file_frame_count
from medviewer.io.dicom_series import read_dataset
from medviewer.io.memory_guard import refuse_if_too_large

SEG_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.66.4"
#: A frame further than this (in slices) from the nearest slice plane is reported as lying between slices.
BETWEEN_SLICES_TOLERANCE = 0.1
#: Frames whose normal is further than this (as a cosine) from a volume axis are oblique to its slices.
OBLIQUE_TOLERANCE = 1e-3
#: Frames are tested for overlap with the volume on a grid of about this many points per side.
OVERLAP_SAMPLES = 32
#: CIE XYZ of the D65 white point, which DICOM's CIELab values refer to (PS3.3 C.10.7.1.1).
D65_WHITE = np.array([0.95047, 1.0, 1.08883])
XYZ_TO_LINEAR_SRGB = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])


@dataclass
class _Frame:
    """One mask frame's segment and its pixel grid in the volume's (continuous) index space."""

    segment: int
    origin: np.ndarray  # (z, y, x) index of the frame's first pixel centre
    row_step: np.ndarray  # index change from one row to the next
    column_step: np.ndarray  # index change from one column to the next


def is_segmentation(ds: Dataset) -> bool:
    return str(ds.get("SOPClassUID", "")) == SEG_SOP_CLASS_UID


def referenced_series_uids(ds: Dataset) -> list[str]:
    """The series the segmentation was made on, in the file's order, so a viewer can find and name them.

    Series of the SEG's own study are in ReferencedSeriesSequence; those of other studies, in the
    Common Instance Reference module's StudiesContainingOtherReferencedInstancesSequence.
    """
    found: list[str] = []
    studies = [ds, *(ds.get("StudiesContainingOtherReferencedInstancesSequence") or [])]
    for study in studies:
        for series in study.get("ReferencedSeriesSequence") or []:
            uid = str(series.get("SeriesInstanceUID", "") or "")
            if uid and uid not in found:
                found.append(uid)
    return found


def read_dicom_seg(path: Path, reference: Volume) -> LabelMap:
    """The SEG at ``path`` as labels on ``reference``'s voxel grid; segment numbers are the label values."""
    path = Path(path)
    ds = read_dataset(path)
    try:
        return _label_map(ds, path, reference)
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        # Missing or malformed attributes surface as these when a value is used; name the file instead.
        raise CorruptFileError(
            path, f"the segmentation's header is incomplete or malformed ({type(exc).__name__})"
        ) from exc


def _label_map(ds: Dataset, path: Path, reference: Volume) -> LabelMap:
    if not is_segmentation(ds):
        raise UnsupportedFileError(path, "a DICOM file, but not a segmentation (DICOM SEG)")
    kind = str(ds.get("SegmentationType", ""))
    if kind not in ("BINARY", "FRACTIONAL"):
        raise UnsupportedFileError(path, f"{kind or 'unknown'} segmentations are not supported (BINARY, FRACTIONAL)")
    warnings = _check_reference(ds, path, reference)
    names, colours = _segments(ds)
    masks = _masks(ds, path, kind)
    frames = _frames(ds, path, reference, len(masks))
    array = np.zeros(reference.shape, dtype=label_dtype(max([*names, *(f.segment for f in frames), 0])))
    landing = [_overlaps(frame, masks.shape[1:], reference.shape) for frame in frames]
    if not any(landing):
        raise MedviewerError(path, "the segmentation lies outside this volume: it was made on another series or scan")
    _warn_frame_placement(frames, landing, reference, warnings)
    overlaps: Counter[tuple[int, int]] = Counter()
    outside = 0
    for number in sorted(range(len(frames)), key=lambda n: frames[n].segment):  # stable: later segments win
        if landing[number]:
            outside += _paint(array, frames[number], masks[number], overlaps)
    if outside:
        warnings.append(f"{outside} segmented pixel(s) of frames at the volume's edge lie outside it and are not shown")
    for (below, above), count in sorted(overlaps.items()):
        warnings.append(f"segments {below} and {above} overlap in {count} voxel(s); segment {above} is shown there")
    return LabelMap.from_array(array, source=path.name, names=names, colours=colours, warnings=warnings)


def _check_reference(ds: Dataset, path: Path, reference: Volume) -> list[str]:
    """Refuse another frame of reference (positions would be meaningless); warn for another series."""
    volume_frame = reference.metadata.get("frame_of_reference_uid")
    seg_frame = ds.get("FrameOfReferenceUID")
    if volume_frame and seg_frame and str(seg_frame) != str(volume_frame):
        raise MedviewerError(
            path, "the segmentation belongs to another scan's coordinate system (frame of reference) than this volume"
        )
    series = set(referenced_series_uids(ds))
    volume_series = reference.metadata.get("series_uid")
    if volume_series and series and str(volume_series) not in series:
        return ["the segmentation was made on another series; it is placed by position in the patient"]
    return []


def _segments(ds: Dataset) -> tuple[dict[int, str], dict[int, tuple[int, int, int]]]:
    names: dict[int, str] = {}
    colours: dict[int, tuple[int, int, int]] = {}
    for item in ds.get("SegmentSequence") or []:
        number = int(item.SegmentNumber)
        names[number] = str(item.get("SegmentLabel", "") or _property_meaning(item) or f"segment {number}")
        lab = item.get("RecommendedDisplayCIELabValue")
        if lab is not None and len(lab) == 3:
            colours[number] = cielab_to_rgb(lab)
    return names, colours


def _property_meaning(item: Dataset) -> str:
    codes = item.get("SegmentedPropertyTypeCodeSequence") or []
    return str(codes[0].get("CodeMeaning", "")) if codes else ""


def cielab_to_rgb(dicom_lab: Sequence[int]) -> tuple[int, int, int]:
    """sRGB of a DICOM CIELab triplet (L* scaled 0..100 to 0..65535, a* and b* -128..127 to 0..65535)."""
    scaled = np.asarray(dicom_lab, dtype=float) / 65535.0
    lightness, a_star, b_star = scaled[0] * 100.0, scaled[1] * 255.0 - 128.0, scaled[2] * 255.0 - 128.0
    fy = (lightness + 16.0) / 116.0
    f = np.array([fy + a_star / 500.0, fy, fy - b_star / 200.0])
    xyz = np.where(f**3 > 216.0 / 24389.0, f**3, (f - 16.0 / 116.0) * 3.0 * (6.0 / 29.0) ** 2) * D65_WHITE
    linear = np.clip(XYZ_TO_LINEAR_SRGB @ xyz, 0.0, 1.0)
    srgb = np.where(linear > 0.0031308, 1.055 * linear ** (1 / 2.4) - 0.055, 12.92 * linear)
    red, green, blue = (int(round(v)) for v in np.clip(srgb * 255.0, 0, 255))
    return red, green, blue


def _masks(ds: Dataset, path: Path, kind: str) -> np.ndarray:
    """(frames, rows, columns) booleans; fractional values count from half the maximum up."""
    rows, columns, frames = int(ds.Rows), int(ds.Columns), file_frame_count(ds, path)
    if rows < 1 or columns < 1:
        raise CorruptFileError(path, f"the segmentation declares frames of {columns} x {rows} pixels")
    # decoded to at least a byte a pixel, then compared into booleans: twice the frames' pixels (JPEG 2000 and
    # deflate shrink empty masks past any ratio, so the file's size bounds nothing here)
    refuse_if_too_large(path, 2 * frames * rows * columns, f"its {frames} frames of {columns} x {rows} pixels")
    try:
        pixels: np.ndarray = ds.pixel_array
    except BaseException as exc:  # decoders raise many types on damaged data, a Rust panic among them
        if input_error(path, exc) is None:
            raise
        raise CorruptFileError(path, f"the segmentation's pixel data cannot be decoded ({type(exc).__name__})") from exc
    pixels = pixels.reshape(-1, rows, columns)
    covered: np.ndarray
    if kind == "FRACTIONAL":
        covered = pixels >= 0.5 * float(ds.get("MaximumFractionalValue", 255) or 255)
    else:
        covered = pixels != 0
    return covered


def _frames(ds: Dataset, path: Path, reference: Volume, count: int) -> list[_Frame]:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per_frame) != count:
        raise CorruptFileError(path, f"the segmentation has {count} frame(s) but describes {len(per_frame)}")
    shared_items = ds.get("SharedFunctionalGroupsSequence") or []
    shared = shared_items[0] if shared_items else None
    frames = []
    for item in per_frame:
        identification = _functional(item, shared, "SegmentIdentificationSequence")
        position = _functional(item, shared, "PlanePositionSequence")
        orientation = _functional(item, shared, "PlaneOrientationSequence")
        measures = _functional(item, shared, "PixelMeasuresSequence")
        if position is None or orientation is None or "ImagePositionPatient" not in position:
            raise UnsupportedFileError(
                path, "the segmentation's frames give no position in the patient, so it cannot be laid on a volume"
            )
        if identification is None or measures is None or "PixelSpacing" not in measures:
            raise CorruptFileError(path, "a segmentation frame names no segment or no pixel spacing")
        origin_mm = np.asarray(position.ImagePositionPatient, dtype=float)
        cosines = np.asarray(orientation.ImageOrientationPatient, dtype=float)
        if cosines.shape != (6,) or not np.allclose(np.linalg.norm(cosines.reshape(2, 3), axis=1), 1, atol=1e-2):
            raise CorruptFileError(path, "a segmentation frame's ImageOrientationPatient is not two unit vectors")
        row_spacing, column_spacing = (float(v) for v in measures.PixelSpacing)
        origin = reference.world_to_index(origin_mm)
        frames.append(
            _Frame(
                segment=int(identification.ReferencedSegmentNumber),
                origin=origin,
                row_step=reference.world_to_index(origin_mm + cosines[3:] * row_spacing) - origin,
                column_step=reference.world_to_index(origin_mm + cosines[:3] * column_spacing) - origin,
            )
        )
    return frames


def _functional(item: Dataset, shared: Dataset | None, keyword: str) -> Dataset | None:
    """A functional group macro's item for one frame: its own, else the one shared by all frames."""
    for group in (item, shared):
        if group is not None and group.get(keyword):
            found: Dataset = group[keyword][0]
            return found
    return None


def _pixel_indices(frame: _Frame, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Continuous (z, y, x) volume indices of the given pixel centres of a frame."""
    indices: np.ndarray = frame.origin + rows[:, None] * frame.row_step + columns[:, None] * frame.column_step
    return indices


def _inside(index: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    nearest = np.rint(index)
    inside: np.ndarray = np.all((nearest >= 0) & (nearest < np.asarray(shape)), axis=-1)
    return inside


def _overlaps(frame: _Frame, size: tuple[int, int], shape: tuple[int, int, int]) -> bool:
    """Whether any part of the frame lands in the volume, tested on a coarse grid of its pixels."""
    rows, columns = (np.unique(np.linspace(0, n - 1, min(n, OVERLAP_SAMPLES)).round()) for n in size)
    grid_rows, grid_columns = np.meshgrid(rows, columns, indexing="ij")
    return bool(_inside(_pixel_indices(frame, grid_rows.ravel(), grid_columns.ravel()), shape).any())


def _warn_frame_placement(frames: list[_Frame], landing: list[bool], reference: Volume, warnings: list[str]) -> None:
    """Say when frames are outside the volume, oblique to its slices, or between them."""
    oblique = between = 0
    largest_gap_mm = 0.0
    for frame in (frame for frame, lands in zip(frames, landing, strict=True) if lands):
        normal = np.cross(frame.row_step, frame.column_step)
        normal /= np.linalg.norm(normal)
        axis = int(np.argmax(np.abs(normal)))
        gap = abs(frame.origin[axis] - round(frame.origin[axis]))
        if abs(normal[axis]) < 1 - OBLIQUE_TOLERANCE:
            oblique += 1
        elif gap > BETWEEN_SLICES_TOLERANCE:
            between += 1
            largest_gap_mm = max(largest_gap_mm, gap * reference.spacing[2 - axis])
    if oblique:
        warnings.append(f"{oblique} frame(s) are oblique to the volume's slices; drawn at the nearest voxels")
    if between:
        warnings.append(
            f"{between} frame(s) lie between the volume's slices (up to {largest_gap_mm:.2f} mm away); "
            "drawn on the nearest slice"
        )
    if not all(landing):
        warnings.append(f"{landing.count(False)} frame(s) lie outside the volume and are not shown")


def _paint(array: np.ndarray, frame: _Frame, mask: np.ndarray, overlaps: Counter[tuple[int, int]]) -> int:
    """Write a frame's segment into the voxels its on pixels cover; returns how many pixels fell outside.

    A SEG pixel larger than the volume's voxels is sampled at several points across its area, so a
    segmentation made on a coarser grid covers the finer volume without holes.
    """
    rows, columns = np.nonzero(mask)
    outside = int((~_inside(_pixel_indices(frame, rows, columns), array.shape)).sum())
    row_points = max(1, int(np.ceil(np.abs(frame.row_step).max() - 1e-6)))
    column_points = max(1, int(np.ceil(np.abs(frame.column_step).max() - 1e-6)))
    row_offsets, column_offsets = np.meshgrid(
        (np.arange(row_points) + 0.5) / row_points - 0.5,
        (np.arange(column_points) + 0.5) / column_points - 0.5,
        indexing="ij",
    )
    sampled_rows = (rows[:, None] + row_offsets.ravel()[None, :]).ravel()
    sampled_columns = (columns[:, None] + column_offsets.ravel()[None, :]).ravel()
    index = _pixel_indices(frame, sampled_rows, sampled_columns)
    inside = _inside(index, array.shape)
    voxels = np.unique(np.ravel_multi_index(np.rint(index[inside]).astype(np.intp).T, array.shape))
    labels = array.reshape(-1)  # a view: array is freshly allocated, so contiguous
    existing = labels[voxels]
    for other, count in zip(
        *np.unique(existing[(existing != 0) & (existing != frame.segment)], return_counts=True), strict=True
    ):
        overlaps[(int(other), frame.segment)] += int(count)
    labels[voxels] = frame.segment
    return outside
