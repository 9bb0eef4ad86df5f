"""The few things a whole-slide reader must provide, so that ``Slide`` has one API whatever reads the file.

OpenSlide reads most scanners' formats; readers built on tifffile and pydicom cover the files it refuses.
Each backend raises ``medviewer.core.errors`` types naming the file, and must allow ``read_region``
from several threads at once, because the slide view's tile workers call it concurrently.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class SlideBackend(Protocol):
    #: which reader is in use ("openslide", "tifffile", "pydicom"), for ``medviewer info`` and bug reports
    name: str
    vendor: str
    mpp: float | None
    objective_power: float | None
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    associated_image_names: list[str]

    def associated_image(self, name: str) -> np.ndarray:
        """RGB uint8 pixels of a label, macro or thumbnail image."""
        ...

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGBA uint8 (h, w, 4); ``location`` in level-0 pixels; alpha 0 outside the slide."""
        ...

    def close(self) -> None: ...
