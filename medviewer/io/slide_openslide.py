"""Slides read through OpenSlide (SVS, NDPI, MRXS, SCN, generic tiled TIFF, DICOM WSI series and more).

OpenSlide is thread-safe, but once a read fails (a corrupt tile) its handle stays in an error state and
refuses every later read. So a failed read reopens the file and tries once more on the fresh handle:
reads of other tiles carry on, including those of threads that hit the error state meanwhile, and only a
tile that fails twice is reported as corrupt. Replaced handles are never closed while another thread
may still be reading through them; they close when the last reference goes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medviewer.core.errors import CorruptFileError, UnsupportedFileError

if TYPE_CHECKING:
    from openslide import OpenSlide


class OpenSlideSlide:
    name = "openslide"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._osr = self._open()
        self._reopen_lock = threading.Lock()
        props = self._osr.properties
        self.vendor: str = props.get("openslide.vendor", "unknown")
        self.mpp = _float_or_none(props.get("openslide.mpp-x"))
        self.objective_power = _float_or_none(props.get("openslide.objective-power"))
        self.level_dimensions: tuple[tuple[int, int], ...] = self._osr.level_dimensions
        self.level_downsamples: tuple[float, ...] = self._osr.level_downsamples
        self.associated_image_names = sorted(self._osr.associated_images.keys())

    def _open(self) -> OpenSlide:
        import openslide

        try:
            return openslide.OpenSlide(str(self.path))
        except openslide.OpenSlideUnsupportedFormatError as exc:
            raise UnsupportedFileError(self.path, "not a whole-slide image format OpenSlide reads") from exc
        except openslide.OpenSlideError as exc:
            raise CorruptFileError(self.path, "the slide cannot be read (OpenSlide reports it as damaged)") from exc

    def _replace_failed(self, failed: OpenSlide) -> None:
        with self._reopen_lock:
            if self._osr is failed:
                self._osr = self._open()

    def associated_image(self, name: str) -> np.ndarray:
        import openslide

        try:
            return np.asarray(self._osr.associated_images[name].convert("RGB"))
        except openslide.OpenSlideError as exc:
            self._replace_failed(self._osr)
            raise CorruptFileError(self.path, f"the {name} image cannot be decoded") from exc

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        import openslide

        handle = self._osr
        try:
            return np.asarray(handle.read_region(location, level, size))
        except openslide.OpenSlideError:
            self._replace_failed(handle)  # perhaps another thread's failure: try once more on a fresh handle
        handle = self._osr
        try:
            return np.asarray(handle.read_region(location, level, size))
        except openslide.OpenSlideError as exc:
            self._replace_failed(handle)
            raise CorruptFileError(self.path, f"a tile of level {level} cannot be decoded") from exc

    def close(self) -> None:
        self._osr.close()


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None
