"""One stack at one time point as a Volume: geometry planned, pixels read, everything odd reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.io.dicom_frames import first_number
from medviewer.io.dicom_geometry import plan_layout
from medviewer.io.dicom_pixels import read_pixels
from medviewer.io.dicom_series import patient_info
from medviewer.io.dicom_stacks import Stack
from medviewer.io.memory_guard import refuse_if_too_large


def file_window(ds: Dataset) -> tuple[float, float] | None:
    """The first (width, centre) the file suggests, if it gives a usable one."""
    width = first_number(ds.get("WindowWidth"), np.nan)
    centre = first_number(ds.get("WindowCenter"), np.nan)
    return (width, centre) if np.isfinite(width) and np.isfinite(centre) and width > 0 else None


def read_stack(stack: Stack, path: Path, time_index: int = 0) -> Volume:
    """The volume of ``stack`` at ``time_index``; ``path`` is what the user opened, for messages."""
    count = len(stack.time_points)
    if not 0 <= time_index < count:
        raise MedviewerError(
            path, f"time point {time_index + 1} was asked for, but the series holds {count} (1 to {count})"
        )
    records = stack.time_points[time_index]
    layout = plan_layout(records)
    pixels = read_pixels([records[i] for i in layout.order], path)
    array = pixels.array
    if not layout.regular:
        refuse_if_too_large(path, int(np.prod(layout.shape)) * array.itemsize, "the regular grid for this stack")
        array = layout.place(array, fill=array.min())
    warnings = []
    if count > 1:
        warnings.append(f"the series holds {count} time points; showing time point {time_index + 1}")
    header = stack.header
    return Volume(
        array=array,
        spacing=layout.spacing,
        origin=layout.origin,
        direction=layout.direction,
        modality=str(header.get("Modality", "")),
        description=str(header.get("SeriesDescription", "")),
        warnings=[*warnings, *layout.warnings, *pixels.warnings],
        metadata={
            "source": "dicom",
            "series_uid": stack.series_uid,
            "stack_key": stack.key,
            "study_uid": str(header.get("StudyInstanceUID", "")),
            "frame_of_reference_uid": str(header.get("FrameOfReferenceUID", "")),
            "files": len({r.file.path for r in records}),
            # the files read, for writing objects that reference them (measurement reports); never logged
            "source_files": [str(p) for p in dict.fromkeys(r.file.path for r in records)],
            "time_points": count,
            "time_index": time_index,
        },
        invert_display=str(header.get("PhotometricInterpretation", "")) == "MONOCHROME1",
        window=file_window(header),
        patient=patient_info(header),
    )
