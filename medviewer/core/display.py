"""Turning stored pixel values into display bytes, shared by the viewers and the thumbnails."""

from __future__ import annotations

import numpy as np

from medviewer.core.volume import VoiTransform, Volume


def apply_voi_lut(values: np.ndarray, voi: VoiTransform) -> np.ndarray:
    """Values through the VOI LUT Sequence table, if there is one (PS3.3 C.11.2.1.1): indices below the
    first mapped value take the first entry and those past the end the last; else the values as they are."""
    if voi.lut is None:
        return values
    index = np.clip(values.astype(np.int64, copy=False) - voi.first_mapped, 0, len(voi.lut) - 1)
    return voi.lut[index]


def apply_window(
    values: np.ndarray, width: float, centre: float, invert: bool = False, function: str = "LINEAR"
) -> np.ndarray:
    """Map values through a DICOM window to uint8 with the VOI LUT Function's formula (PS3.3 C.11.2.1.2
    to C.11.2.1.3.2): LINEAR (centre - 0.5 and width - 1, as the standard writes it), LINEAR_EXACT, SIGMOID."""
    values = values.astype(np.float32, copy=False)
    if function == "SIGMOID":
        out = 255.0 / (1.0 + np.exp(np.clip(-4.0 * (values - centre) / max(width, 1e-6), -80, 80)))
    elif function == "LINEAR_EXACT":
        out = (values - (centre - width / 2.0)) * (255.0 / max(width, 1e-6))
    else:
        span = max(width - 1.0, 1e-6)
        out = ((values - (centre - 0.5)) / span + 0.5) * 255.0
    out = np.clip(np.rint(out), 0, 255).astype(np.uint8)  # rounded: a 256/128 window leaves bytes as they are
    return 255 - out if invert else out


def display_frame(volume: Volume, index: int, width: float, centre: float) -> np.ndarray:
    """Frame ``index`` (axial slice) as it is shown: RGB with the window applied per channel (as Horos and
    Weasis do) for colour images, else grey through the VOI LUT, the window and the inversion."""
    if volume.colour is not None:
        return apply_window(volume.colour[index], width, centre)
    values = apply_voi_lut(volume.array[index], volume.voi)
    return apply_window(values, width, centre, volume.invert_display, volume.voi.function)


def shrink_to_fit(image: np.ndarray, max_size: int) -> np.ndarray:
    """Downsample by an integer stride so the longer side is at most ``max_size`` pixels."""
    step = max(1, int(np.ceil(max(image.shape[:2]) / max_size)))
    return np.ascontiguousarray(image[::step, ::step])


def label_table(colours: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """(max label + 1, 4) RGBA table: each label's colour, opaque; 0 (background) transparent."""
    table = np.zeros((max(colours, default=0) + 1, 4), dtype=np.uint8)
    for value, colour in colours.items():
        if value > 0:
            table[value, :3] = colour
            table[value, 3] = 255
    return table


def label_rgba(labels: np.ndarray, table: np.ndarray) -> np.ndarray:
    """RGBA image of a label slice; labels without a colour are drawn transparent."""
    safe = np.where((labels >= 0) & (labels < len(table)), labels, 0)
    return table[safe]


def heat_scale(values: np.ndarray, threshold: float | None = None) -> tuple[float, float]:
    """(low, high) a heatmap is drawn between: ``threshold`` (default: the smallest value) to the largest
    value, NaN (no value) ignored; never an empty range."""
    finite = values[np.isfinite(values)]
    low = float(threshold) if threshold is not None else float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else low + 1.0
    return low, max(high, low + 1e-6)


def heat_rgba(values: np.ndarray, lut: np.ndarray, low: float, high: float) -> np.ndarray:
    """RGBA image of a float map through ``lut`` between ``low`` and ``high``; below ``low``, and NaN (no
    value), is transparent."""
    shown = values >= low  # False for NaN
    span = max(high - low, 1e-12)
    scaled = (np.where(shown, values, low).astype(np.float32) - low) * ((len(lut) - 1) / span)
    index = np.clip(scaled, 0, len(lut) - 1).astype(np.intp)
    rgba = np.empty(values.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = lut[index]
    rgba[..., 3] = np.where(shown, 255, 0)
    return rgba


def error_pattern(width: int, height: int) -> np.ndarray:
    """RGBA red and white diagonal stripes, drawn where slide pixels cannot be decoded: unmistakably not tissue."""
    y, x = np.mgrid[0:height, 0:width]
    stripes = ((x + y) // 16) % 2 == 0
    tile = np.empty((height, width, 4), dtype=np.uint8)
    tile[...] = (255, 255, 255, 255)
    tile[stripes] = (220, 0, 0, 255)
    return tile
