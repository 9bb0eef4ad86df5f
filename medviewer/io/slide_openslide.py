"""Slides read through OpenSlide (SVS, NDPI, MRXS, SCN, generic tiled TIFF, DICOM WSI series and more).

OpenSlide is thread-safe, but once a read fails (a corrupt tile) its handle stays in an error state and
refuses every later read. So each reading thread has a handle of its own: a corrupt tile can only put
that thread's handle in error, which is then replaced and the read tried once more; only a tile that
fails on a fresh handle is reported as corrupt, and other threads' reads of good tiles never fail
because of it (a shared handle let one thread's failures fail its neighbours' reads).
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
        self._local = threading.local()
        self._local.handle = self._osr  # the opening thread reads through the first handle
        self._handles_lock = threading.Lock()
        self._handles: list[OpenSlide] = [self._osr]
        props = self._osr.properties
        self.vendor: str = props.get("openslide.vendor", "unknown")
        # OpenSlide drops an MPP it cannot parse; the scanner's own value is kept so the Slide can say so
        self.mpp = _float_or_none(props.get("openslide.mpp-x") or props.get("aperio.MPP"))
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

    def _thread_handle(self, fresh: bool = False) -> OpenSlide:
        """This thread's own handle; ``fresh`` replaces it after a failure put it in OpenSlide's error state."""
        handle = getattr(self._local, "handle", None)
        if handle is None or fresh:
            if handle is not None:
                with self._handles_lock:
                    self._handles.remove(handle)
                handle.close()
            handle = self._open()
            with self._handles_lock:
                self._handles.append(handle)
            self._local.handle = handle
        return handle

    def associated_image(self, name: str) -> np.ndarray:
        import openslide

        try:
            return np.asarray(self._thread_handle().associated_images[name].convert("RGB"))
        except openslide.OpenSlideError as exc:
            self._thread_handle(fresh=True)
            raise CorruptFileError(self.path, f"the {name} image cannot be decoded") from exc

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        import openslide

        try:
            return np.asarray(self._thread_handle().read_region(location, level, size))
        except openslide.OpenSlideError:
            pass  # this handle may be in error from an earlier damaged tile: once more on a fresh one
        try:
            return np.asarray(self._thread_handle(fresh=True).read_region(location, level, size))
        except openslide.OpenSlideError as exc:
            self._thread_handle(fresh=True)
            raise CorruptFileError(self.path, f"a tile of level {level} cannot be decoded") from exc

    def close(self) -> None:
        with self._handles_lock:
            handles, self._handles = self._handles, []
        for handle in handles:
            handle.close()


def _float_or_none(value: str | None) -> float | None:
    """A property as a number (NaN and infinities kept, for the Slide to refuse with a warning)."""
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None
