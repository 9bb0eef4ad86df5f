"""Whole-slide images as a pyramid of levels read through OpenSlide.

Coordinates given to ``read_region`` are always level-0 pixels, as in OpenSlide and QuPath, so that
annotations and heatmaps stay aligned whatever level is being drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medviewer.core.errors import CorruptFileError, UnsupportedFileError

SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".bif", ".svslide")


class Slide:
    """An open whole-slide image. Close it (or use ``with``) to release the file."""

    def __init__(self, path: str | Path) -> None:
        import openslide

        self.path = Path(path)
        try:
            self._osr = openslide.OpenSlide(str(self.path))
        except openslide.OpenSlideUnsupportedFormatError as exc:
            raise UnsupportedFileError(self.path, "not a whole-slide image format OpenSlide reads") from exc
        except openslide.OpenSlideError as exc:
            raise CorruptFileError(self.path, "the slide cannot be read (OpenSlide reports it as damaged)") from exc
        props = self._osr.properties
        self.vendor: str = props.get("openslide.vendor", "unknown")
        self.mpp: float | None = _float_or_none(props.get("openslide.mpp-x"))
        self.objective_power: float | None = _float_or_none(props.get("openslide.objective-power"))

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._osr.close()

    @property
    def dimensions(self) -> tuple[int, int]:
        return self._osr.dimensions

    @property
    def level_count(self) -> int:
        return self._osr.level_count

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return self._osr.level_dimensions

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._osr.level_downsamples

    @property
    def associated_image_names(self) -> list[str]:
        return sorted(self._osr.associated_images.keys())

    def associated_image(self, name: str) -> np.ndarray:
        """RGB pixels of a label, macro or thumbnail image. Labels can show patient identifiers."""
        return np.asarray(self._osr.associated_images[name].convert("RGB"))

    def best_level_for_downsample(self, downsample: float) -> int:
        return self._osr.get_best_level_for_downsample(downsample)

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGBA uint8 pixels of ``size`` at ``level``, with ``location`` in level-0 pixels."""
        try:
            return np.asarray(self._osr.read_region(location, level, size))
        except Exception as exc:  # openslide raises OpenSlideError and others for corrupt tiles
            raise CorruptFileError(self.path, "a tile cannot be decoded") from exc

    def thumbnail(self, max_size: int) -> np.ndarray:
        """RGB thumbnail whose longer side is ``max_size`` pixels, composited on white."""
        try:
            image = self._osr.get_thumbnail((max_size, max_size))
        except Exception as exc:
            raise CorruptFileError(self.path, "the slide's pixels cannot be decoded") from exc
        return np.asarray(image.convert("RGB"))


def _float_or_none(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def is_slide_file(path: Path) -> bool:
    import openslide

    return path.name.lower().endswith(SLIDE_SUFFIXES) and openslide.OpenSlide.detect_format(str(path)) is not None
