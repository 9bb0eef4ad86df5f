"""Segmentation labels laid on a volume's voxel grid, with their names and colours.

A label map is always stored in the geometry of the volume it is shown on (readers resample it
there), so a viewer draws label slice k over image slice k with no geometry of its own to get wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from medviewer.core.volume import Volume

#: Kelly's colours of maximum contrast (Kelly 1965), without white, black, grey and olive, which vanish
#: on grey-scale images. Label v gets entry (v - 1) modulo the length, so colours depend on the value only.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (243, 195, 0),
    (135, 86, 146),
    (243, 132, 0),
    (161, 202, 241),
    (190, 0, 50),
    (194, 178, 128),
    (0, 136, 86),
    (230, 143, 172),
    (0, 103, 165),
    (249, 147, 121),
    (96, 78, 151),
    (246, 166, 0),
    (179, 68, 108),
    (220, 211, 0),
    (136, 45, 23),
    (141, 182, 0),
    (101, 69, 34),
    (226, 88, 34),
)


def default_colour(label: int) -> tuple[int, int, int]:
    return PALETTE[(label - 1) % len(PALETTE)]


def default_colours(labels: Iterable[int]) -> dict[int, tuple[int, int, int]]:
    return {label: default_colour(label) for label in labels if label != 0}


def label_dtype(max_label: int) -> np.dtype:
    """The smallest unsigned type holding ``max_label``: label maps are as large as their volume.

    Labels stop at 65535, the largest DICOM segment number, which keeps per-label counts cheap.
    """
    for dtype in (np.uint8, np.uint16):
        if max_label <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"label {max_label} is too large for a label map")


@dataclass
class LabelMap:
    #: (z, y, x) non-negative integer labels in the reference volume's geometry; 0 is background.
    array: np.ndarray
    names: dict[int, str]
    colours: dict[int, tuple[int, int, int]]
    #: File name only: the full path can name a patient.
    source: str
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a label map must be 3-D (z, y, x), got shape {self.array.shape}")
        if not np.issubdtype(self.array.dtype, np.integer):
            raise ValueError(f"a label map holds integers, not {self.array.dtype}")
        if self.array.size and self.array.min() < 0:
            raise ValueError("a label map holds no negative labels")

    @classmethod
    def from_array(
        cls,
        array: np.ndarray,
        source: str,
        names: dict[int, str] | None = None,
        colours: dict[int, tuple[int, int, int]] | None = None,
        warnings: list[str] | None = None,
    ) -> LabelMap:
        """A label map whose every label has a name and a colour: given ones first, defaults for the rest."""
        present = [label for label in _counts(array) if label != 0]
        names = {**{label: f"label {label}" for label in present}, **(names or {})}
        colours = {**default_colours(present), **(colours or {})}
        return cls(array=array, names=names, colours=colours, source=source, warnings=list(warnings or []))

    def voxel_counts(self) -> dict[int, int]:
        """Voxels per label, background excluded."""
        return {label: count for label, count in _counts(self.array).items() if label != 0}

    def volumes_mm3(self, reference: Volume) -> dict[int, float]:
        """Volume per label in cubic millimetres, from the voxel size of the volume the map lies on."""
        if reference.shape != self.array.shape:
            raise ValueError(f"the label map {self.array.shape} does not lie on a volume of shape {reference.shape}")
        voxel_mm3 = abs(float(np.linalg.det(reference.direction * np.asarray(reference.spacing)[None, :])))
        return {label: count * voxel_mm3 for label, count in self.voxel_counts().items()}


def _counts(array: np.ndarray) -> dict[int, int]:
    """Voxels per value; bincount is a single pass, where unique would sort the whole volume."""
    if array.size == 0:
        return {}
    counts = np.bincount(array.ravel())
    return {int(value): int(counts[value]) for value in np.flatnonzero(counts)}
