"""Whole-slide images as a pyramid of levels, with one API whichever reader opens the file.

OpenSlide is tried first, as it knows the scanners' formats; tifffile reads the TIFFs it refuses (strips)
or under-reads (OME-TIFF pyramids in SubIFDs), and pydicom the single DICOM WSI instances it cannot
classify. Coordinates given to ``read_region`` are always level-0 pixels, as in OpenSlide and QuPath, so
that annotations and heatmaps stay aligned whatever level is being drawn.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medviewer.core.display import error_pattern
from medviewer.core.errors import CorruptFileError, UnsupportedFileError, reading
from medviewer.core.logs import safe_path
from medviewer.core.tile_grid import level0_location
from medviewer.io.dicom_series import has_dicom_preamble
from medviewer.io.slide_backend import SlideBackend
from medviewer.io.slide_dicom import DicomWsiSlide
from medviewer.io.slide_openslide import OpenSlideSlide
from medviewer.io.slide_tiff import TiffSlide, is_tiff, tifffile_sees_more_levels

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)
THUMBNAIL_CHUNK = 2048  # level pixels a side read at once for a thumbnail (16 MiB of RGBA)
#: Micrometres per pixel a slide scanner gives, from a 100x objective to a low-power overview.
MPP_RANGE = (0.02, 50.0)


def _open_backend(path: Path) -> SlideBackend:
    import openslide

    detected = openslide.OpenSlide.detect_format(str(path))
    if detected is None:
        if has_dicom_preamble(path):  # first: a DICOM preamble may itself be a TIFF header (dual-format files)
            return DicomWsiSlide(path)
        if is_tiff(path):
            return TiffSlide(path)
        raise UnsupportedFileError(path, "not a whole-slide image format medviewer reads")
    try:
        backend = OpenSlideSlide(path)
    except CorruptFileError:
        if detected == "dicom":
            return DicomWsiSlide(path)
        raise
    if detected == "generic-tiff" and tifffile_sees_more_levels(path, len(backend.level_dimensions)):
        backend.close()
        return TiffSlide(path)
    return backend


class Slide:
    """An open whole-slide image. Close it (or use ``with``) to release the file.

    ``read_region`` may be called from several threads at once.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with reading(self.path, "the slide"):
            self._backend = _open_backend(self.path)
            try:
                self._check_levels()
            except BaseException:
                self._backend.close()
                raise
        #: what is wrong in the file but still lets it be shown, for the viewer to say
        self.warnings: list[str] = []
        #: the pixel size the file records, plausible or not (``mpp`` is the one measurements may use)
        self.recorded_mpp = self._backend.mpp
        self._mpp = self._checked_mpp(self.recorded_mpp)

    def _check_levels(self) -> None:
        dimensions, downsamples = self._backend.level_dimensions, self._backend.level_downsamples
        if not dimensions or any(w < 1 or h < 1 for w, h in dimensions):
            raise CorruptFileError(self.path, f"the slide declares levels of {list(dimensions)[:4]} pixels")
        if len(downsamples) != len(dimensions) or not all(math.isfinite(d) and d >= 1 for d in downsamples):
            raise CorruptFileError(self.path, f"the slide declares level downsamples {list(downsamples)[:4]}")

    def _checked_mpp(self, mpp: float | None) -> float | None:
        """The file's pixel size when it is one a microscope gives; otherwise unknown, with a warning, so no
        measurement uses a made-up size (a damaged SVS read through its TIFF tags says 25400 µm, one inch)."""
        if mpp is None:
            return None
        if math.isfinite(mpp) and MPP_RANGE[0] <= mpp <= MPP_RANGE[1]:
            return mpp
        self.warnings.append(
            f"the file's pixel size ({mpp:g} µm per pixel) is not one a slide scanner gives "
            f"({MPP_RANGE[0]:g} to {MPP_RANGE[1]:g} µm); the pixel size is unknown and can be set by hand"
        )
        return None

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._backend.close()

    @property
    def backend(self) -> str:
        """The reader in use: "openslide", "tifffile" or "pydicom"."""
        return self._backend.name

    @property
    def vendor(self) -> str:
        return self._backend.vendor

    @property
    def mpp(self) -> float | None:
        """Micrometres per level-0 pixel, or None when the file does not record a plausible one."""
        return self._mpp

    @property
    def objective_power(self) -> float | None:
        return self._backend.objective_power

    @property
    def dimensions(self) -> tuple[int, int]:
        return self._backend.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self._backend.level_dimensions)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return self._backend.level_dimensions

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._backend.level_downsamples

    @property
    def associated_image_names(self) -> list[str]:
        return list(self._backend.associated_image_names)

    def associated_image(self, name: str) -> np.ndarray:
        """RGB pixels of a label, macro or thumbnail image. Labels can show patient identifiers."""
        if name not in self._backend.associated_image_names:
            raise KeyError(f"{self.path} has no associated image {name!r}")
        with reading(self.path, f"the {name} image"):
            return self._backend.associated_image(name)

    def best_level_for_downsample(self, downsample: float) -> int:
        """The most detailed level that is no finer than needed (OpenSlide's rule, for every backend)."""
        downsamples = self.level_downsamples
        finer = [level for level, level_downsample in enumerate(downsamples) if level_downsample <= downsample]
        return finer[-1] if finer else 0

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGBA uint8 pixels (h, w, 4) of ``size`` at ``level``, with ``location`` in level-0 pixels.

        Parts outside the slide are transparent (alpha 0). A tile that cannot be decoded raises
        ``CorruptFileError``; other regions of the same slide stay readable.
        """
        if not 0 <= level < self.level_count:
            raise ValueError(f"level {level} is not one of the slide's {self.level_count} levels")
        width, height = int(size[0]), int(size[1])
        if width <= 0 or height <= 0:
            raise ValueError(f"region size must be positive, not {width}x{height}")
        with reading(self.path, f"the region at {location[0]}, {location[1]} of level {level}"):
            return self._backend.read_region((int(location[0]), int(location[1])), level, (width, height))

    def thumbnail(self, max_size: int) -> np.ndarray:
        """RGB thumbnail whose longer side is at most ``max_size`` pixels, composited on white."""
        from PIL import Image

        width, height = self.dimensions
        downsample = max(width, height) / max_size
        level = self.best_level_for_downsample(downsample)
        # Box-reduce while reading by at most half the remaining downsample (PIL's own reducing gap), so the
        # final Lanczos step has room and the result matches OpenSlide's thumbnail.
        factor = max(1, int(downsample / self.level_downsamples[level] / 2))
        image = self._reduced_level(level, factor)
        image.thumbnail(
            (max(1, round(width / downsample)), max(1, round(height / downsample))), Image.Resampling.LANCZOS
        )
        return np.asarray(image)

    def _reduced_level(self, level: int, factor: int) -> Image.Image:
        """A whole level shrunk by ``factor`` and composited on white, read in chunks of at most THUMBNAIL_CHUNK
        level pixels a side (rounded to whole multiples of ``factor``), each composited and shrunk before the
        next is read: memory holds one chunk and the reduced image (a few times the thumbnail a side), whatever
        the size of the level, so a slide without a pyramid opens like any other. A chunk that cannot be decoded
        is drawn as the error pattern, so one damaged tile does not keep the slide from opening (the viewer
        reports the tile when it is shown)."""
        from PIL import Image

        level_width, level_height = self.level_dimensions[level]
        downsample = self.level_downsamples[level]
        chunk = factor * max(1, THUMBNAIL_CHUNK // factor)
        reduced = Image.new("RGB", (-(-level_width // factor), -(-level_height // factor)), "white")
        for y in range(0, level_height, chunk):
            for x in range(0, level_width, chunk):
                w, h = min(chunk, level_width - x), min(chunk, level_height - y)
                try:
                    part = self.read_region(level0_location(x, y, downsample), level, (w, h))
                except CorruptFileError:
                    log.warning("damaged pixels in %s at level %d", safe_path(self.path), level)
                    part = error_pattern(w, h)
                reduced.paste(_reduced_on_white(part, factor), (x // factor, y // factor))
        return reduced


def _reduced_on_white(rgba: np.ndarray, factor: int) -> Image.Image:
    """RGBA pixels over white, their alpha as the mask (what OpenSlide's own thumbnail does), shrunk by
    ``factor``. Opaque pixels, most of a slide, are shrunk first: the same result, without a full-size copy."""
    from PIL import Image

    tile = Image.fromarray(rgba)  # uint8 (h, w, 4): RGBA
    if rgba[..., 3].min() == 255:
        return (tile.reduce(factor) if factor > 1 else tile).convert("RGB")
    on_white = Image.new("RGB", tile.size, "white")
    on_white.paste(tile, None, tile)
    return on_white.reduce(factor) if factor > 1 else on_white
