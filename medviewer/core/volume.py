"""A voxel array with its place in the patient.

Every view, measurement and overlay maps between voxels and millimetres through ``Volume``, so that
geometry is decided once. Conventions, chosen to match DICOM and ITK so nothing is silently flipped:

- ``array`` is indexed (z, y, x): slice, row, column.
- ``spacing``, ``origin`` and the columns of ``direction`` are in (x, y, z) order, in millimetres, in
  the DICOM patient frame LPS (x to the patient's left, y to posterior, z to superior).
- ``index_to_world`` takes indices in array order (z, y, x) and returns LPS (x, y, z).
"""

from __future__ import annotations

import dataclasses
import enum
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray

from medviewer.core.patient import PatientInfo

#: Display defaults by modality: (window width, window centre). CT uses a soft-tissue window.
MODALITY_WINDOWS: dict[str, tuple[float, float]] = {"CT": (400.0, 40.0)}


def percentile_window(values: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """(width, centre) spanning two percentiles of ``values``, ignoring NaN (common outside the brain in
    SPM/FSL output); (1, 0.5) when nothing finite is left."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN input is handled below
        low, high = np.nanpercentile(values.astype(np.float64, copy=False), percentiles)
    if not (np.isfinite(low) and np.isfinite(high)):
        return 1.0, 0.5
    return float(max(high - low, 1e-3)), float((high + low) / 2)


class Presentation(enum.Enum):
    """How an image is meant to be looked at, decided by ``medviewer.io`` from what the file says.

    Only a stack of slices with a known place in the patient can be reformatted; a radiograph, a
    secondary capture or an ultrasound frame is a picture of a projection or of an unknown plane, and
    a cine is the same plane over time. Showing either in three MPR views would invent anatomy.
    """

    VOLUME = "volume"  # a 3-D stack: three linked MPR views
    IMAGE = "image"  # 2-D images (one or more unrelated frames): one view, no reformatting
    CINE = "cine"  # frames of one plane over time: one view and a player


@dataclass(frozen=True)
class VoiTransform:
    """The VOI stage of the greyscale pipeline (PS3.3 C.11.2) that a plain linear window cannot express.

    ``lut`` is a VOI LUT Sequence table (output values indexed by ``value - first_mapped``, clamped at
    both ends); when present it replaces the window, and the user's window then acts on its output.
    ``function`` is the VOI LUT Function that applies to windows: LINEAR, LINEAR_EXACT or SIGMOID.
    """

    lut: np.ndarray | None = None
    first_mapped: int = 0
    function: str = "LINEAR"
    explanation: str = ""

    def lut_window(self) -> tuple[float, float] | None:
        """(width, centre) spanning the table's output, where an image with a VOI LUT opens; None without one."""
        if self.lut is None:
            return None
        low, high = float(self.lut.min()), float(self.lut.max())
        return max(high - low, 1.0), (high + low) / 2


@dataclass
class Volume:
    array: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    modality: str = ""
    description: str = ""
    warnings: list[str] = field(default_factory=list)
    #: Non-identifying facts about where the volume came from (series UID, study UID, source kind).
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Display-only inversion (MONOCHROME1): stored values stay as acquired.
    invert_display: bool = False
    #: Window (width, centre) the file suggests; None lets ``display_window`` choose.
    window: tuple[float, float] | None = None
    patient: PatientInfo = field(default_factory=PatientInfo)
    presentation: Presentation = Presentation.VOLUME
    #: Whether the file says where the image lies in the patient; letters are never drawn otherwise.
    orientation_known: bool = True
    #: For 2-D images: the patient directions of the rows (to the right) and of the columns (down),
    #: from PatientOrientation (e.g. ("L", "F") or ("A", "FR")); None when the file does not say.
    patient_orientation: tuple[str, str] | None = None
    #: Whether ``spacing`` in the image plane is a real pixel size (else it is 1 and means "pixels").
    spacing_known: bool = True
    #: Shown next to the scale bar, e.g. that the pixel size is at the detector, not at the patient.
    spacing_note: str = ""
    #: Milliseconds between cine frames, from FrameTime, FrameTimeVector or CineRate; None when unknown.
    frame_time_ms: float | None = None
    #: (z, y, x, 3) uint8 RGB of colour images as the file means them; ``array`` then holds luminance,
    #: which measurements, the probe and models use.
    colour: np.ndarray | None = None
    voi: VoiTransform = field(default_factory=VoiTransform)
    #: (z, y, x) bool: the DICOM overlay planes (60xx groups) burnt together; None when there are none.
    overlay: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a Volume array must be 3-D (z, y, x), got shape {self.array.shape}")
        self.direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        self.spacing = _xyz("spacing", self.spacing)
        self.origin = _xyz("origin", self.origin)

    @property
    def shape(self) -> tuple[int, int, int]:
        return cast(tuple[int, int, int], self.array.shape)  # 3-D, as __post_init__ checked

    def index_to_world_matrix(self) -> NDArray[np.float64]:
        """4x4 map from homogeneous (z, y, x, 1) indices to LPS millimetres (x, y, z, 1)."""
        matrix = np.eye(4)
        matrix[:3, :3] = (self.direction * np.asarray(self.spacing)[None, :])[:, ::-1]
        matrix[:3, 3] = self.origin
        return matrix

    def index_to_world(self, index_zyx: Any) -> np.ndarray:
        matrix = self.index_to_world_matrix()
        return np.asarray(index_zyx, dtype=float) @ matrix[:3, :3].T + matrix[:3, 3]

    def world_to_index(self, point_lps: Any) -> np.ndarray:
        matrix = self.index_to_world_matrix()
        return (np.asarray(point_lps, dtype=float) - matrix[:3, 3]) @ np.linalg.inv(matrix[:3, :3]).T

    def closest_to_lps(self) -> Volume:
        """The same voxels, permuted and flipped so that x, y, z run as near as possible to L, P, S.

        Viewers draw array slices as stored; without this, a NIfTI stored in RAS order or a sagittal
        acquisition would be shown mirrored or on its side. Only axis order and sign change (no
        resampling), and origin and direction follow, so every voxel keeps its world position.
        """
        dominant = np.argmax(np.abs(self.direction), axis=0)  # world axis of each (x, y, z) column
        if sorted(dominant) != [0, 1, 2]:
            return self  # too oblique to name a nearest axis for each column: keep as stored
        perm = [int(np.flatnonzero(dominant == k)[0]) for k in range(3)]  # old column for new column k
        flips = [bool(self.direction[k, old] < 0) for k, old in enumerate(perm)]
        if perm == [0, 1, 2] and not any(flips):
            return self
        size_xyz = self.array.shape[:3][::-1]
        axes = [2 - perm[2], 2 - perm[1], 2 - perm[0]]

        def reorder(voxels: np.ndarray) -> np.ndarray:
            """The same permutation and flips for every per-voxel array (colour keeps its last axis)."""
            moved = np.transpose(voxels, axes + list(range(3, voxels.ndim)))
            for k in range(3):
                if flips[k]:
                    moved = np.flip(moved, axis=2 - k)
            return np.ascontiguousarray(moved)

        direction = self.direction[:, perm].copy()
        origin = np.asarray(self.origin, dtype=float).copy()
        for k, old in enumerate(perm):
            if flips[k]:
                origin += self.direction[:, old] * self.spacing[old] * (size_xyz[old] - 1)
                direction[:, k] = -direction[:, k]
        return dataclasses.replace(
            self,
            array=reorder(self.array),
            colour=None if self.colour is None else reorder(self.colour),
            overlay=None if self.overlay is None else reorder(self.overlay),
            spacing=(self.spacing[perm[0]], self.spacing[perm[1]], self.spacing[perm[2]]),
            origin=tuple(origin),
            direction=direction,
        )

    def display_window(self) -> tuple[float, float]:
        """(width, centre) to show first: the file's own, the VOI LUT's output range, the modality's, or
        the data's 1-99 %."""
        if self.window is not None:
            return self.window
        if (lut_window := self.voi.lut_window()) is not None:
            return lut_window
        if self.modality in MODALITY_WINDOWS:
            return MODALITY_WINDOWS[self.modality]
        sample = self.array[:: max(1, self.shape[0] // 16), ::4, ::4]
        return percentile_window(sample, (1, 99))

    def to_sitk(self) -> Any:
        """The same voxels and geometry as a SimpleITK image, for users' own pipelines."""
        import SimpleITK as sitk

        # SimpleITK's SWIG-made setters carry no annotations, which --strict refuses to call from typed code.
        image: Any = sitk.GetImageFromArray(self.array)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(tuple(self.direction.flatten()))
        return image


def _xyz(name: str, values: Sequence[float]) -> tuple[float, float, float]:
    """Readers hand over lists, numpy arrays and numpy scalars; a volume keeps three plain floats (x, y, z)."""
    if len(values) != 3:
        raise ValueError(f"a Volume {name} needs three values (x, y, z), got {len(values)}")
    return float(values[0]), float(values[1]), float(values[2])
