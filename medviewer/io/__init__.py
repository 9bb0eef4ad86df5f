"""Readers: DICOM series, NIfTI and whole-slide images in, ``Volume`` and ``Slide`` out. No Qt, no torch.

Every failure is a ``medviewer.core.errors.MedviewerError`` naming the file and the reason.
"""

from medviewer.io.describe import describe
from medviewer.io.dicom_stacks import SeriesInfo
from medviewer.io.formats import ImageKind, classify
from medviewer.io.open_path import (
    list_series,
    open_path,
    open_slide,
    open_volume,
    open_volume_files,
)
from medviewer.io.slide import Slide

__all__ = [
    "ImageKind",
    "SeriesInfo",
    "Slide",
    "classify",
    "describe",
    "list_series",
    "open_path",
    "open_slide",
    "open_volume",
    "open_volume_files",
]
