"""Where the tissue lies on a slide's thumbnail, so overviews and patch runs can skip the bare glass.

Otsu's threshold is taken on saturation rather than brightness: stained tissue is coloured and glass is
grey or white, whatever the scanner's white balance or illumination falloff, which shift brightness
but hardly saturation. Pen marks are coloured too, so green-to-cyan ink (hues H&E stains never take)
and near-black ink, dust or scanner-border shadows are excluded before the threshold is computed,
so they neither count as tissue nor pull the threshold. Blue ink is close to haematoxylin's hue and
is not told apart.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

MIN_SATURATION = 0.05  # below this, a pixel is glass even if Otsu, on a tissue-only thumbnail, says otherwise
INK_HUES = (0.2, 0.6)  # green to cyan (HSV hue in 0..1): no H&E stain, common marker colours
DARK_VALUE = 0.2  # HSV value below which a pixel is ink, dust or shadow rather than stained tissue
MIN_REGION_FRACTION = 0.0005  # specks and holes smaller than this part of the thumbnail are noise


def tissue_mask(thumbnail_rgb: np.ndarray) -> np.ndarray:
    """Boolean mask, True on tissue, of an RGB uint8 thumbnail (h, w, 3); all False on a blank slide."""
    from skimage.color import rgb2hsv
    from skimage.filters import threshold_otsu

    rgb = np.asarray(thumbnail_rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image of shape (h, w, 3), not {rgb.dtype} {rgb.shape}")
    hsv = rgb2hsv(rgb)
    hue, saturation, value = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    ink = (value < DARK_VALUE) | ((hue > INK_HUES[0]) & (hue < INK_HUES[1]) & (saturation > 0.15))
    candidates = saturation[~ink]
    if candidates.size == 0 or np.ptp(candidates) < MIN_SATURATION:
        return np.zeros(rgb.shape[:2], bool)
    # skimage.filters is unannotated, which --strict refuses to call from typed code.
    threshold = max(float(threshold_otsu(candidates)), MIN_SATURATION)  # type: ignore[no-untyped-call]
    mask = (saturation > threshold) & ~ink
    return _cleaned(mask, max(1, round(MIN_REGION_FRACTION * mask.size)))


def _cleaned(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """Close gaps between nuclei and stroma, then drop specks and fill small holes (not large lumens)."""
    disk = ndimage.generate_binary_structure(2, 1)
    mask = ndimage.binary_closing(mask, disk, iterations=2, border_value=0)
    mask = _without_small_regions(mask, min_pixels)
    return ~_without_small_regions(~mask, min_pixels)


def _without_small_regions(mask: np.ndarray, min_pixels: int) -> np.ndarray:
    labels: NDArray[np.int32]  # scipy.ndimage is unannotated: it returns Any
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_pixels
    keep[0] = False
    return keep[labels]
