"""Opening an image together with the small preview the patient panel shows for it.

Both happen in a loader thread, so the window only receives finished, displayable results.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviewer.core.display import display_frame, shrink_to_fit
from medviewer.core.errors import reading
from medviewer.core.volume import Volume
from medviewer.io.dicom_kind import PIXEL_KINDS, DicomKind
from medviewer.io.dicom_sr import SrDocument, read_sr
from medviewer.io.dicom_stacks import SeriesInfo
from medviewer.io.formats import WHOLE_SLIDE
from medviewer.io.label_maps import referenced_series
from medviewer.io.nifti import is_nifti
from medviewer.io.open_path import dicom_kind_of, list_series_files, open_path, open_volume_files
from medviewer.io.slide import Slide

SLIDE_OVERVIEW_SIZE = 2048
ICON_SIZE = 96


@dataclass
class OpenedImage:
    path: Path
    image: Volume | Slide
    #: uint8 preview: the middle slice windowed for display, or the slide's overview (RGB).
    preview: np.ndarray
    icon: np.ndarray


def volume_preview(volume: Volume) -> np.ndarray:
    return display_frame(volume, volume.shape[0] // 2, *volume.display_window())


def series_with_preview(files: list[Path], series_uid: str) -> OpenedImage:
    """A catalog series, opened from exactly its recorded files (its folder may hold other series)."""
    volume = open_volume_files(files, series_uid)
    preview = volume_preview(volume)
    return OpenedImage(files[0].parent, volume, preview, shrink_to_fit(preview, ICON_SIZE))


@dataclass(frozen=True)
class DerivedObject:
    """A segmentation or RT structure set: drawn over the series it was made on, which it names."""

    path: Path
    kind: DicomKind
    referenced_series: tuple[str, ...]


@dataclass(frozen=True)
class OpenedReport:
    path: Path
    document: SrDocument


def open_for_viewing(path: str | Path) -> OpenedImage | OpenedReport | DerivedObject:
    """Whatever a person opens, read for what it is: an image or slide with its preview, a structured
    report as its content tree, or a SEG or RT structure set with the series it needs underneath."""
    path = Path(path)
    with reading(path):
        if path.is_file() and not is_nifti(path) and not WHOLE_SLIDE.names(path):
            kind = dicom_kind_of(path)
            if kind is DicomKind.STRUCTURED_REPORT:
                return OpenedReport(path, read_sr(path))
            if kind in (DicomKind.SEGMENTATION, DicomKind.RT_STRUCTURE_SET):
                return DerivedObject(path, kind, tuple(referenced_series(path)))
        return open_with_preview(path)


def catalog_series_for_viewing(
    files: list[Path], series_uid: str
) -> OpenedImage | OpenedReport | DerivedObject | list[SeriesInfo]:
    """A catalog series read for what it is: its images, the report or segmentation it holds, or, for a
    series of several such objects, the list of them for a person to choose from."""
    if dicom_kind_of(files[0]) not in (None, *PIXEL_KINDS):
        return open_for_viewing(files[0]) if len(files) == 1 else list_series_files(files)
    return series_with_preview(files, series_uid)


def open_with_preview(path: str | Path) -> OpenedImage:
    image = open_path(path)
    if isinstance(image, Slide):
        try:
            preview = image.thumbnail(SLIDE_OVERVIEW_SIZE)
        except BaseException:  # a decoder's panic too: the file handle must not outlive the failed open
            image.close()
            raise
    else:
        preview = volume_preview(image)
    return OpenedImage(Path(path), image, preview, shrink_to_fit(preview, ICON_SIZE))
