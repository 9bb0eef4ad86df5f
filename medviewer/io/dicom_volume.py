"""One stack at one time point as a Volume: geometry planned, pixels read, everything odd reported.

What the stack is decides how it is read: a volume is laid on its patient geometry; a 2-D image or a
cine keeps its frames in order with no invented geometry, its pixel size from the header (with a note
when that size is at the detector), its orientation letters only from PatientOrientation, and a cine
its frame rate; a Siemens mosaic is unpacked into its slices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Presentation, Volume
from medviewer.io.dicom_frames import FrameRecord, first_number, pixel_spacing
from medviewer.io.dicom_geometry import plan_layout
from medviewer.io.dicom_kind import DicomKind
from medviewer.io.dicom_mosaic import is_mosaic, read_mosaic
from medviewer.io.dicom_overlay import overlay_groups, overlay_planes
from medviewer.io.dicom_pixels import read_pixels
from medviewer.io.dicom_series import patient_info
from medviewer.io.dicom_stacks import Stack
from medviewer.io.dicom_voi import inverted, stack_window, voi_transform
from medviewer.io.memory_guard import refuse_if_too_large

DETECTOR_NOTE = "pixel size at the detector (Imager Pixel Spacing), not corrected for magnification"
NO_PIXEL_SIZE_NOTE = "the file gives no pixel size: distances are in pixels"
ULTRASOUND_NOTE = "ultrasound calibration: valid in the imaged region only"
#: PhysicalUnitsX/YDirection code for centimetres (PS3.3 C.8.5.5.1.15).
CENTIMETRES = 3
#: Patient direction letters (PS3.3 C.7.6.1.1.1), for checking PatientOrientation.
DIRECTION_LETTERS = set("LRAPHF")


def read_stack(stack: Stack, path: Path, time_index: int = 0) -> Volume:
    """The volume of ``stack`` at ``time_index``; ``path`` is what the user opened, for messages."""
    count = len(stack.time_points)
    if not 0 <= time_index < count:
        raise MedviewerError(
            path, f"time point {time_index + 1} was asked for, but the series holds {count} (1 to {count})"
        )
    records = stack.time_points[time_index]
    kind = stack.kind
    if kind is DicomKind.VOLUME and is_mosaic(stack.header) and len(records) == 1:
        volume = _read_mosaic(records, path)
    elif kind is DicomKind.VOLUME:
        volume = _read_volume(records, path)
    else:
        volume = _read_planar(stack, kind, records, path)
    return _finish(volume, stack, records, count, time_index)


def _read_volume(records: list[FrameRecord], path: Path) -> Volume:
    layout = plan_layout(records)
    ordered = [records[i] for i in layout.order]
    pixels = read_pixels(ordered, path)
    array, colour = pixels.array, pixels.colour
    overlay, overlay_warnings = _overlays(ordered)
    if not layout.regular:
        refuse_if_too_large(path, int(np.prod(layout.shape)) * array.itemsize, "the regular grid for this stack")
        array = layout.place(array, fill=array.min())
        colour = None if colour is None else np.stack([layout.place(colour[..., c], fill=0) for c in range(3)], -1)
        overlay = None if overlay is None else layout.place(overlay, fill=False)
    return Volume(
        array=array,
        spacing=layout.spacing,
        origin=layout.origin,
        direction=layout.direction,
        warnings=[*layout.warnings, *pixels.warnings, *overlay_warnings],
        colour=colour,
        overlay=overlay,
        orientation_known=ordered[0].orientation is not None,
    )


def _read_planar(stack: Stack, kind: DicomKind, records: list[FrameRecord], path: Path) -> Volume:
    """Frames of a 2-D image or a cine, in acquisition order, with the geometry the header gives and no more."""
    header = stack.header
    pixels = read_pixels(records, path)
    overlay, overlay_warnings = _overlays(records)
    spacing, spacing_known, note = _planar_spacing(header)
    warnings = [*pixels.warnings, *overlay_warnings]
    if is_mosaic(header):
        warnings.append(
            "a Siemens MOSAIC image whose tiles are slices; the series gives no geometry to separate them, "
            "so it is shown as the plain tiled image"
        )
    return Volume(
        array=pixels.array,
        spacing=(spacing[1], spacing[0], 1.0),
        origin=(0.0, 0.0, 0.0),
        warnings=warnings,
        colour=pixels.colour,
        overlay=overlay,
        presentation=Presentation.CINE if kind is DicomKind.CINE else Presentation.IMAGE,
        orientation_known=False,
        patient_orientation=_patient_orientation(header),
        spacing_known=spacing_known,
        spacing_note=note,
        frame_time_ms=frame_time_ms(header) if kind is DicomKind.CINE else None,
    )


def _read_mosaic(records: list[FrameRecord], path: Path) -> Volume:
    """A Siemens mosaic unpacked through its CSA header; when that cannot be done, the plain tiled image
    with a warning that says so."""
    mosaic, problem = read_mosaic(records[0].file)
    if mosaic is None:
        volume = _read_volume(records, path)
        volume.warnings.append(problem or "")
        return volume
    return Volume(
        array=mosaic.array,
        spacing=mosaic.spacing,
        origin=mosaic.origin,
        direction=mosaic.direction,
        warnings=[f"a Siemens MOSAIC: {mosaic.array.shape[0]} slices unpacked from the tiled image (CSA header)"],
    )


def _finish(volume: Volume, stack: Stack, records: list[FrameRecord], count: int, time_index: int) -> Volume:
    """What every kind shares: description, patient, window and VOI, inversion, provenance."""
    header = stack.header
    notes = list(stack.notes)
    if count > 1:
        notes.append(f"the series holds {count} time points; showing time point {time_index + 1}")
    window, window_note = stack_window(records)
    voi, voi_warnings = voi_transform(header)
    volume.warnings[:0] = notes
    volume.warnings.extend(voi_warnings)
    volume.modality = str(header.get("Modality", ""))
    volume.description = str(header.get("SeriesDescription", ""))
    volume.patient = patient_info(header)
    volume.invert_display = volume.colour is None and inverted(header)
    # a file's window applies to modality values; with a VOI LUT the window acts on the table's output
    # instead, which opens at the table's own range (Volume.display_window)
    volume.window = (256.0, 128.0) if volume.colour is not None else None if voi.lut is not None else window
    volume.voi = voi
    volume.metadata = {
        "source": "dicom",
        "kind": stack.kind.value,
        "series_uid": stack.series_uid,
        "stack_key": stack.key,
        "study_uid": str(header.get("StudyInstanceUID", "")),
        # what a model's training data is checked against (medviewer.ai.ood); "" when the file says nothing
        "body_part": str(header.get("BodyPartExamined", "") or "").strip().upper(),
        "frame_of_reference_uid": str(header.get("FrameOfReferenceUID", "")),
        "files": len({r.file.path for r in records}),
        # the files read, for writing objects that reference them (measurement reports); never logged
        "source_files": [str(p) for p in dict.fromkeys(r.file.path for r in records)],
        "time_points": count,
        "time_index": time_index,
        "photometric": str(header.get("PhotometricInterpretation", "")),
        "frames": len(records),
        # why the opening window is not the file's, for ``medviewer info`` (not a problem to warn about)
        "window_note": window_note or "",
    }
    return volume


def _overlays(records: list[FrameRecord]) -> tuple[np.ndarray | None, list[str]]:
    """The overlay planes of each frame, stacked like the frames; None when no frame has any."""
    files = {id(record.file): record.file for record in records}
    if not any(overlay_groups(file.header) for file in files.values()):
        return None, []
    rows, columns = records[0].rows, records[0].columns
    stacked = np.zeros((len(records), rows, columns), dtype=bool)
    warnings: list[str] = []
    for slot, record in enumerate(records):
        mask, problems = overlay_planes(record.file.header, record.frame, rows, columns)
        if mask is not None:
            stacked[slot] = mask
        warnings.extend(problem for problem in problems if problem not in warnings)
    return stacked, warnings


def _planar_spacing(header: Dataset) -> tuple[tuple[float, float], bool, str]:
    """(row spacing, column spacing) in mm, whether it is known, and what a reader should be told about it."""
    for keyword, note in (("PixelSpacing", ""), ("ImagerPixelSpacing", DETECTOR_NOTE)):
        spacing = pixel_spacing(header, keyword)
        if spacing is not None:
            return spacing, True, note
    return _ultrasound_spacing(header)


def _ultrasound_spacing(header: Dataset) -> tuple[tuple[float, float], bool, str]:
    """The pixel size of the ultrasound regions calibrated in centimetres (PS3.3 C.8.5.5), when they agree.

    An ultrasound image is calibrated per region (the B-mode sector, a Doppler strip in seconds); only
    the regions measured in cm on both axes give a pixel size, and it holds inside those regions only.
    """
    sizes = set()
    for region in header.get("SequenceOfUltrasoundRegions") or []:
        units = (region.get("PhysicalUnitsXDirection"), region.get("PhysicalUnitsYDirection"))
        if units == (CENTIMETRES, CENTIMETRES):
            try:
                sizes.add((round(float(region.PhysicalDeltaY) * 10, 9), round(float(region.PhysicalDeltaX) * 10, 9)))
            except (AttributeError, TypeError, ValueError):
                continue
    sizes = {size for size in sizes if all(np.isfinite(size)) and min(size) > 0}
    if len(sizes) == 1:
        return next(iter(sizes)), True, ULTRASOUND_NOTE
    if len(sizes) > 1:
        return (1.0, 1.0), False, "its ultrasound regions are calibrated differently: distances are in pixels"
    return (1.0, 1.0), False, NO_PIXEL_SIZE_NOTE


def _patient_orientation(header: Dataset) -> tuple[str, str] | None:
    """PatientOrientation's row and column directions when they are valid letters; None otherwise."""
    value = header.get("PatientOrientation")
    if value is None or isinstance(value, str) or len(value) != 2:
        return None
    row, column = (str(v).strip().upper() for v in value)
    if not row or not column or not set(row + column) <= DIRECTION_LETTERS:
        return None
    return row, column


def frame_time_ms(header: Dataset) -> float | None:
    """Milliseconds between frames: FrameTime, the typical FrameTimeVector step, CineRate, or the
    recommended rate; None when the file gives no usable timing."""
    frame_time = first_number(header.get("FrameTime"), np.nan)
    if np.isfinite(frame_time) and frame_time > 0:
        return float(frame_time)
    vector = header.get("FrameTimeVector")
    if vector is not None and not isinstance(vector, str) and len(vector) > 1:
        try:
            steps = np.asarray([float(v) for v in list(vector)[1:]])
        except (TypeError, ValueError):
            steps = np.array([])
        steps = steps[np.isfinite(steps) & (steps > 0)]
        if steps.size:
            return float(np.median(steps))
    for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
        rate = first_number(header.get(keyword), np.nan)
        if np.isfinite(rate) and rate > 0:
            return 1000.0 / float(rate)
    return None
