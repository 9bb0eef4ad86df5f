"""The display half of the greyscale pipeline (PS3.3 C.11.2, PS3.14): windows, VOI LUTs, inversion.

A file suggests how to look at it: a window (per frame in enhanced objects, and per slice in many
series: Siemens writes a different one on every slice), or a VOI LUT table, a VOI LUT Function that
shapes the window, and a Presentation LUT Shape that can invert the result. Using the first slice's
window for a whole series opens a Siemens MR almost white, so a series whose slices disagree opens at
a robust window of its own data instead.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_voi

from medviewer.core.volume import VoiTransform
from medviewer.io.dicom_frames import FrameRecord, first_number

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
#: VOI LUT tables longer than this are not real tables (the descriptor allows 65536 entries).
MAX_LUT_ENTRIES = 65536


def file_window(ds: Dataset | None) -> tuple[float, float] | None:
    """The first (width, centre) a dataset or functional group item suggests, if it gives a usable one."""
    if ds is None:
        return None
    width = first_number(ds.get("WindowWidth"), np.nan)
    centre = first_number(ds.get("WindowCenter"), np.nan)
    return (width, centre) if np.isfinite(width) and np.isfinite(centre) and width > 0 else None


def frame_window(record: FrameRecord) -> tuple[float, float] | None:
    """The window suggested for one frame: its functional group's (enhanced objects), else its file's."""
    header = record.file.header
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    shared = header.get("SharedFunctionalGroupsSequence")
    groups = [
        per_frame[record.frame] if per_frame and record.frame < len(per_frame) else None,
        shared[0] if shared else None,
    ]
    for group in groups:
        if group is not None and "FrameVOILUTSequence" in group and len(group.FrameVOILUTSequence):
            window = file_window(group.FrameVOILUTSequence[0])
            if window is not None:
                return window
    return file_window(header)


def _frame_windows(records: list[FrameRecord]) -> list[tuple[float, float] | None]:
    """Each frame's window; a file without functional groups suggests one window for all its frames, read once
    (a file of a hundred thousand frames would otherwise read the same header values that many times)."""
    grouped: dict[int, bool] = {}
    per_file: dict[int, tuple[float, float] | None] = {}
    windows = []
    for record in records:
        key, header = id(record.file), record.file.header
        if key not in grouped:
            grouped[key] = "PerFrameFunctionalGroupsSequence" in header or "SharedFunctionalGroupsSequence" in header
            per_file[key] = None if grouped[key] else file_window(header)
        windows.append(frame_window(record) if grouped[key] else per_file[key])
    return windows


def stack_window(records: list[FrameRecord]) -> tuple[tuple[float, float] | None, str | None]:
    """The window a stack opens at, and a note when its frames disagree.

    When every frame suggests the same window (or only some suggest one and they agree), that window;
    when they disagree, None so that the volume opens at its data's robust percentile window, since any
    one slice's window can be far off for the others.
    """
    given = {window for window in _frame_windows(records) if window is not None}
    if not given:
        return None, None
    if len(given) == 1:
        return next(iter(given)), None
    widths = sorted(width for width, _ in given)
    note = (
        f"the slices suggest {len(given)} different windows (widths {widths[0]:g} to {widths[-1]:g}); "
        "opened at the 1-99 % range of the data instead of the first slice's"
    )
    return None, note


def voi_transform(header: Dataset) -> tuple[VoiTransform, list[str]]:
    """The VOI LUT table (through pydicom's own ``apply_voi``, so values match its pipeline) and function.

    A damaged or contradictory table falls back to the linear window, with a warning.
    """
    warnings: list[str] = []
    function = str(header.get("VOILUTFunction", "") or "LINEAR").strip().upper()
    if function not in VOI_FUNCTIONS:
        warnings.append(f"VOI LUT Function {function!r} is not one DICOM defines; the window is applied linearly")
        function = "LINEAR"
    sequence = header.get("VOILUTSequence")
    if not sequence:
        return VoiTransform(function=function), warnings
    item = sequence[0]
    try:
        descriptor = [int(v) for v in item.LUTDescriptor]
        entries = descriptor[0] or MAX_LUT_ENTRIES
        first = descriptor[1]
        if first >= 2**15 and int(header.get("PixelRepresentation") or 0) == 1:
            first -= 2**16  # the first mapped value is signed when the pixels are (PS3.3 C.11.2.1.1)
        if not 0 < entries <= MAX_LUT_ENTRIES or not len(item.LUTData):
            raise ValueError("LUT length")
        inputs = np.arange(first, first + entries, dtype=np.int64)
        table = apply_voi(inputs, header, index=0)
    except (AttributeError, IndexError, KeyError, NotImplementedError, TypeError, ValueError) as exc:
        warnings.append(f"the VOI LUT is damaged ({type(exc).__name__}); the window is applied linearly instead")
        return VoiTransform(function=function), warnings
    explanation = str(item.get("LUTExplanation", "") or "VOI LUT")
    return VoiTransform(lut=np.asarray(table), first_mapped=first, function=function, explanation=explanation), warnings


def inverted(header: Dataset) -> bool:
    """Whether low values are shown white: MONOCHROME1, or a Presentation LUT Shape of INVERSE on
    MONOCHROME2 (for MONOCHROME1, INVERSE is what the photometric interpretation already says)."""
    photometric = str(header.get("PhotometricInterpretation", "")).strip().upper()
    shape = str(header.get("PresentationLUTShape", "")).strip().upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"
