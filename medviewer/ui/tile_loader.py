"""Slide tiles decoded on worker threads, newest view first, into a cache bounded in bytes.

The view hands over the tiles it wants in priority order (visible, centre first, then prefetch); a
new request replaces the old list, so workers never spend time on places the user has left. Workers
take the next wanted tile that is neither cached nor being read. A tile that cannot be decoded is
replaced by a visible error pattern and reported once, and browsing continues.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from medviewer.core.byte_lru import ByteLimitedCache
from medviewer.core.display import error_pattern
from medviewer.core.errors import MedviewerError, is_decoder_panic
from medviewer.core.logs import log_unexpected, safe_path
from medviewer.core.tile_grid import Pyramid, TileKey
from medviewer.io.slide import Slide

log = logging.getLogger(__name__)
DEFAULT_CACHE_MB = 512
WORKERS = 4  # decoding releases the GIL in OpenSlide; more readers than cores hide file latency


class _Relay(QObject):
    loaded = Signal(object, object, int)  # (TileKey, pixels, generation)
    failed = Signal(str)


class _Worker(QRunnable):
    def __init__(self, loader: TileLoader) -> None:
        super().__init__()
        self.loader = loader

    def run(self) -> None:
        while (job := self.loader._next_job()) is not None:
            key, generation = job
            self.loader._read(key, generation)


class TileLoader(QObject):
    """Emits ``loaded(key, pixels)`` on the GUI thread as each tile is decoded (the pixels travel with it,
    since the cache may already have let the tile go); ``failed(message)`` once per slide."""

    loaded = Signal(object, object)
    failed = Signal(str)

    def __init__(self, cache_mb: int = DEFAULT_CACHE_MB, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cache = ByteLimitedCache(cache_mb * 1024 * 1024)
        self.slide: Slide | None = None
        self.pyramid: Pyramid | None = None
        self._lock = threading.Lock()
        self._wanted: list[TileKey] = []
        self._in_flight: set[TileKey] = set()
        self._workers = 0  # workers in their loop; counted under the lock so none is missed as it exits
        self._undelivered = 0  # tiles read whose signal has not yet reached the GUI thread
        self._generation = 0
        self._reported = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(WORKERS)
        self._relay = _Relay(self)
        self._relay.loaded.connect(self._on_loaded)
        self._relay.failed.connect(self.failed)

    def set_slide(self, slide: Slide | None) -> None:
        with self._lock:
            self._wanted = []
            self._generation += 1
        self._pool.waitForDone()
        self.cache.clear()
        self.slide = slide
        self.pyramid = Pyramid(slide.level_dimensions, slide.level_downsamples) if slide is not None else None
        self._reported = False

    def want(self, keys: list[TileKey]) -> None:
        """Replace what is wanted (in priority order); starts workers for what is not yet cached."""
        with self._lock:
            self._wanted = [k for k in keys if k not in self.cache and k not in self._in_flight]
            self._wanted.reverse()  # pop() from the end takes the first wanted
            starting = max(0, min(len(self._wanted), WORKERS - self._workers))
            self._workers += starting
        for _ in range(starting):
            self._pool.start(_Worker(self))

    def tile(self, key: TileKey) -> np.ndarray | None:
        with self._lock:
            return self.cache.get(key)

    def cached(self, key: TileKey) -> bool:
        with self._lock:
            return key in self.cache

    def busy(self) -> bool:
        """Whether a wanted tile is still to be read or to be handed to the view.

        A tile counts until its signal is handled on the GUI thread: otherwise the loader looks idle
        for the moment between the last read and its delivery, and a caller waiting for a finished
        view would stop too early."""
        with self._lock:
            return bool(self._wanted or self._in_flight or self._undelivered)

    def _next_job(self) -> tuple[TileKey, int] | None:
        with self._lock:
            while self._wanted:
                key = self._wanted.pop()
                if key not in self.cache and key not in self._in_flight:
                    self._in_flight.add(key)
                    return key, self._generation
            self._workers -= 1
            return None

    def _read(self, key: TileKey, generation: int) -> None:
        slide, pyramid = self.slide, self.pyramid
        # set_slide waits for the workers before it changes the slide, and tiles are wanted only of a slide.
        assert slide is not None and pyramid is not None
        location, size = pyramid.tile_region(key)
        failed = True
        try:
            pixels = slide.read_region(location, key[0], size)
            failed = False
        except MedviewerError as exc:
            pixels = error_pattern(*size)
            self._report(f"{slide.path}: {exc.reason}; the damaged part is drawn striped")
        except BaseException as exc:  # a reader bug or a decoder's panic must not kill the worker or the window
            if not (isinstance(exc, Exception) or is_decoder_panic(exc)):
                raise
            log_unexpected(log, "tile read failed for %s", safe_path(slide.path))
            pixels = error_pattern(*size)
            self._report(f"{slide.path}: a tile could not be read ({type(exc).__name__}); it is drawn striped")
        with self._lock:
            self._in_flight.discard(key)
            if generation != self._generation:
                return
            if not failed:  # a failed tile is tried again when next shown (the file may be on a flaky share)
                self.cache.put(key, pixels)
            self._undelivered += 1
        self._relay.loaded.emit(key, pixels, generation)

    def _report(self, message: str) -> None:
        with self._lock:
            if self._reported:
                return
            self._reported = True
        self._relay.failed.emit(message)

    def _on_loaded(self, key: TileKey, pixels: np.ndarray, generation: int) -> None:
        with self._lock:
            self._undelivered -= 1
        if generation == self._generation:
            self.loaded.emit(key, pixels)

    def shutdown(self) -> None:
        with self._lock:
            self._wanted = []
            self._generation += 1
        self._pool.waitForDone()
