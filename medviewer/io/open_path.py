"""One door for every path a user can give: decide what it holds, then read it with the right reader."""

from __future__ import annotations

import enum
import logging
from pathlib import Path

from medviewer.core.errors import (
    MedviewerError,
    NoImagesFoundError,
    PathNotFoundError,
    UnsupportedFileError,
)
from medviewer.core.logs import safe_path
from medviewer.core.volume import Volume
from medviewer.io.dicom_series import has_dicom_preamble, read_header, read_series, scan_folder
from medviewer.io.nifti import is_nifti, read_nifti
from medviewer.io.slide import SLIDE_SUFFIXES, Slide, is_slide_file

log = logging.getLogger(__name__)

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


class ImageKind(enum.Enum):
    VOLUME = "volume"
    SLIDE = "slide"


def classify(path: str | Path) -> ImageKind:
    """Whether ``path`` opens as a volume or a slide; raises a typed error if it is neither."""
    path = Path(path)
    if not path.exists():
        raise PathNotFoundError(path)
    if path.is_dir():
        return ImageKind.VOLUME
    if is_nifti(path):
        return ImageKind.VOLUME
    if path.name.lower().endswith(SLIDE_SUFFIXES):
        if is_slide_file(path):
            return ImageKind.SLIDE
        raise UnsupportedFileError(path, "not a whole-slide image that OpenSlide recognises")
    if has_dicom_preamble(path) or path.suffix.lower() in (".dcm", ".dicom", ".ima"):
        header = read_header(path)
        return ImageKind.SLIDE if str(header.get("SOPClassUID", "")) == WSI_SOP_CLASS else ImageKind.VOLUME
    raise UnsupportedFileError(path, "not a format medviewer opens (DICOM, NIfTI or a whole-slide image)")


def open_volume(path: str | Path, series_uid: str | None = None) -> Volume:
    """A DICOM file or folder (largest series unless ``series_uid``), or a NIfTI file, as a Volume."""
    path = Path(path)
    if not path.exists():
        raise PathNotFoundError(path)
    if path.is_dir():
        series, skipped = scan_folder(path)
        if series_uid is not None:
            series = [s for s in series if s.series_uid == series_uid]
            if not series:
                raise NoImagesFoundError(path, "the requested series is not in this folder")
        if not series:
            raise NoImagesFoundError(path, "no DICOM images were found in this folder")
        volume = read_series(series[0].paths)
        if skipped:
            volume.warnings.append(f"{skipped} file(s) in the folder are not DICOM images and were skipped")
        if len(series) > 1:
            volume.warnings.append(f"the folder holds {len(series)} series; showing the largest")
    elif is_nifti(path):
        volume = read_nifti(path)
    else:
        volume = read_series([path])
    volume = volume.closest_to_lps()
    log.info("opened volume %s: %s %s", safe_path(path), volume.modality or "?", "x".join(map(str, volume.shape)))
    return volume


def open_slide(path: str | Path) -> Slide:
    path = Path(path)
    if not path.exists():
        raise PathNotFoundError(path)
    slide = Slide(path)
    log.info("opened slide %s: %s %dx%d", safe_path(path), slide.vendor, *slide.dimensions)
    return slide


def open_path(path: str | Path) -> Volume | Slide:
    try:
        kind = classify(path)
        return open_slide(path) if kind is ImageKind.SLIDE else open_volume(path)
    except MedviewerError as exc:
        log.warning("could not open %s: %s", safe_path(path), type(exc).__name__)
        raise
