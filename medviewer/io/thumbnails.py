"""Thumbnails for the patient panel, kept on disk between sessions.

A panel lists hundreds of series, and decoding a slice of each on every start would keep the loader
busy long after the window is up; so each thumbnail is made once and stored as a small PNG. The entry's
name hashes the file's absolute path, size and modification time, so an edited or replaced file gets a
new thumbnail instead of a stale one. The cache only saves time: a damaged entry is made again, and a
folder that cannot be written to costs speed, never the thumbnail.

The caller runs this in a loader thread; entries are written under a temporary name and renamed into
place, so two threads (or two windows) making the same thumbnail never see half a PNG.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from medviewer.core.app_dirs import data_dir
from medviewer.core.display import apply_voi_lut, apply_window, shrink_to_fit
from medviewer.core.errors import CorruptFileError, PathNotFoundError, UnsupportedFileError, reading
from medviewer.core.logs import safe_path
from medviewer.core.volume import percentile_window
from medviewer.io import open_slide
from medviewer.io.dicom_frames import frame_records
from medviewer.io.dicom_kind import DicomKind
from medviewer.io.dicom_pixels import read_pixels
from medviewer.io.dicom_series import DicomFile
from medviewer.io.dicom_voi import frame_window, inverted, voi_transform
from medviewer.io.preview import ICON_SIZE

log = logging.getLogger(__name__)

#: Part of every entry's name: raise it when thumbnails are drawn differently, so old entries are not reused.
CACHE_VERSION = 2  # 2: palette colour, VOI LUTs and per-frame windows
#: Percentiles that bound the window of an image whose file suggests none (as ``Volume.display_window``).
ROBUST_PERCENTILES = (1.0, 99.0)
#: PIL decoding errors of a damaged PNG: truncated or garbled data, or a header claiming absurd dimensions.
DAMAGED_PNG_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class ThumbnailCache:
    """Thumbnails of DICOM series and slides: uint8 grey (H, W) or RGB (H, W, 3), at most ``ICON_SIZE`` on
    their longer side, made once and then read from ``folder``."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder if folder is not None else data_dir() / "thumbnails"
        # a cache that cannot be written fails for every thumbnail: say so once, not hundreds of times
        self._reported_unwritable = False

    def series_thumbnail(self, files: list[Path]) -> np.ndarray:
        """The middle image of a series whose instance ``files`` are given in slice order.

        The middle slice rather than the first: the first and last slices of a stack often show little
        but air or the edge of the field of view.
        """
        if not files:
            raise ValueError("a series thumbnail needs at least one file")
        return self._cached("series", Path(files[len(files) // 2]), _series_image)

    def slide_thumbnail(self, path: Path) -> np.ndarray:
        """The whole slide, not a region of it: in a list, the outline of the tissue is what tells slides apart."""
        return self._cached("slide", Path(path), _slide_image)

    def _cached(self, kind: str, path: Path, make: Callable[[Path], np.ndarray]) -> np.ndarray:
        entry = self.folder / f"{_entry_name(kind, path)}.png"
        image = self._load(entry)
        if image is None:
            with reading(path, "the image for its thumbnail"):  # any decoder failure: a typed error the list skips
                image = make(path)
            self._store(entry, image)
        return image

    def _load(self, entry: Path) -> np.ndarray | None:
        """The stored thumbnail, or None when there is none or it is damaged (then it is deleted)."""
        try:
            with Image.open(entry) as png:
                if png.mode not in ("L", "RGB"):  # only ever written as such: anything else is not ours
                    raise ValueError(f"PNG mode {png.mode}")
                return np.array(png)
        except FileNotFoundError:
            return None
        except DAMAGED_PNG_ERRORS as exc:
            log.warning("damaged thumbnail %s (%s): making it again", safe_path(entry), type(exc).__name__)
            with contextlib.suppress(OSError):  # a read-only cache keeps it; it is made again each time
                entry.unlink()
            return None

    def _store(self, entry: Path, image: np.ndarray) -> None:
        temporary: str | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
            with os.fdopen(handle, "wb") as stream:
                Image.fromarray(image).save(stream, format="PNG")
            os.replace(temporary, entry)
        except OSError as exc:
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
            level = logging.DEBUG if self._reported_unwritable else logging.WARNING
            self._reported_unwritable = True
            log.log(
                level,
                "thumbnail cache %s cannot be written (%s); thumbnails are made again on every start",
                safe_path(self.folder),
                type(exc).__name__,
            )


def _entry_name(kind: str, path: Path) -> str:
    """Hex digest naming a file's entry; it changes whenever the file is edited, replaced or moved."""
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise PathNotFoundError(path) from exc
    except OSError as exc:
        raise CorruptFileError(path, f"the file cannot be read ({type(exc).__name__})") from exc
    text = f"{CACHE_VERSION}\n{ICON_SIZE}\n{kind}\n{path.absolute()}\n{stat.st_size}\n{stat.st_mtime_ns}"
    # surrogateescape: a file name that is not valid UTF-8 still names its own entry
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _series_image(path: Path) -> np.ndarray:
    """One file's middle frame as it opens: colour as RGB (palette through its LUTs), grey rescaled in the
    file's own window (else a robust one) through its VOI LUT, inverted when the file says so."""
    dicom_file = DicomFile.read(path)
    if not (dicom_file.is_image or dicom_file.kind is DicomKind.SLIDE):  # a DICOM slide's middle tile will do
        raise UnsupportedFileError(path, f"this DICOM file holds no image (it is a {dicom_file.kind.value})")
    records = frame_records(dicom_file)
    record = records[len(records) // 2]
    pixels = read_pixels([record], path)
    if pixels.colour is not None:
        return shrink_to_fit(pixels.colour[0], ICON_SIZE)
    # shrink first: windowing is per pixel, and a subsample is enough for the percentiles (as in Volume)
    header = dicom_file.header
    voi, _ = voi_transform(header)
    values = apply_voi_lut(shrink_to_fit(pixels.array[0], ICON_SIZE), voi)
    # the volume reader's own rule for the window, so the thumbnail and the opened series agree
    width, centre = voi.lut_window() or frame_window(record) or percentile_window(values, ROBUST_PERCENTILES)
    return apply_window(values, width, centre, inverted(header), voi.function)


def _slide_image(path: Path) -> np.ndarray:
    with open_slide(path) as slide:
        return slide.thumbnail(ICON_SIZE)
