"""Readers: DICOM series, NIfTI and whole-slide images in, ``Volume`` and ``Slide`` out. No Qt, no torch.

Every failure is a ``medviewer.core.errors.MedviewerError`` naming the file and the reason.
"""

from medviewer.io.describe import describe
from medviewer.io.open_path import ImageKind, classify, open_path, open_slide, open_volume
from medviewer.io.slide import Slide

__all__ = ["ImageKind", "Slide", "classify", "describe", "open_path", "open_slide", "open_volume"]
