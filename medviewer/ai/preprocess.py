"""A model's input made from a volume, as its metadata says, with MONAI transforms; and saliency mapped back.

The window, the command line and the demo models' training scripts all call these functions, so a model
sees the same input however it is run. Steps, in order:

1. resampling to ``spec.spacing_mm`` where given (else the pixels keep their spacing),
2. resizing to ``spec.shape``,
3. repeating the single image channel to ``spec.channels``,
4. intensity: a ``window`` is clipped and mapped to 0..1, a ``scale`` divides by ``max`` and standardises
   each channel, no intensity leaves values as read.

``spec.spacing_mm`` and ``spec.shape`` list axes in array order: (rows, columns) for a slice, (z, y, x) for
a volume; ``Volume.spacing`` is (x, y, z), so it is reversed here.

Both spatial steps are MONAI ``Resize`` calls that stretch the image's full extent onto the new grid:
resampling to a spacing is a resize to the size that spacing gives over the same extent. Shrinking averages
the pixels each new one covers ("area"), so fine detail cannot alias; anything else interpolates linearly.
(MONAI's ``anti_aliasing`` is not used: its Gaussian pads with zeros and darkens the image's edges.)
Every step maps the image's edges onto the input's edges, so ``input_to_slice`` and ``input_to_volume`` undo
them all with one resize, and a heatmap lines up with the pixels it explains. Orientation is settled before
any of this: ``medviewer.io`` hands every volume over in the axis order closest to LPS (``Volume.closest_to_lps``),
so a model always sees axial slices with the patient's right on the image's left, as radiologists view them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medviewer.ai.package import IntensityWindow, ModelSpec
from medviewer.core.volume import Volume


def spacing_size(size: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]) -> tuple[int, ...]:
    """Pixels per axis that keep the same extent at ``target_spacing`` (at least one per axis)."""
    return tuple(max(1, round(n * s / t)) for n, s, t in zip(size, spacing, target_spacing, strict=True))


def slice_batch(volume: Volume, indices: list[int], spec: ModelSpec) -> np.ndarray:
    """Axial slices ``volume.array[k]`` for each k in ``indices`` as a float32 (N, C, H, W) batch.

    The slices go through MONAI together, as the channels of one image, because one call per batch costs
    far less than one per slice."""
    if len(spec.shape) != 2:
        raise ValueError(f"slice_batch needs a model with a 2-D input shape, not {list(spec.shape)}")
    depth = volume.shape[0]
    outside = [k for k in indices if not 0 <= k < depth]
    if outside:
        raise ValueError(f"slice indices {outside} are outside the volume's {depth} slices")
    stack = volume.array[list(indices)].astype(np.float32)
    in_plane = (volume.spacing[1], volume.spacing[0])  # rows are y, columns are x
    stack = _resize(stack, in_plane, spec)
    return np.ascontiguousarray(apply_intensity(_channels(stack, spec), spec).transpose(1, 0, 2, 3))


def volume_input(volume: Volume, spec: ModelSpec) -> np.ndarray:
    """The whole volume as a float32 (1, C, D, H, W) input for a ``volume`` model."""
    if len(spec.shape) != 3:
        raise ValueError(f"volume_input needs a model with a 3-D input shape, not {list(spec.shape)}")
    image = _resize(volume.array[None].astype(np.float32), volume.spacing[::-1], spec)[0]
    return np.ascontiguousarray(apply_intensity(_channels(image, spec), spec)[None])


def input_to_slice(saliency: np.ndarray, volume: Volume, index: int, spec: ModelSpec) -> np.ndarray:
    """A map over the model's (H, W) input laid back onto slice ``index``'s own (rows, columns) grid.

    Resampling and resizing both stretch the slice's full extent onto the input (module docstring), so
    their inverse is one resize of the input's extent back onto the slice's; the index is checked so a
    map is never put on a slice that does not exist."""
    if not 0 <= index < volume.shape[0]:
        raise ValueError(f"slice index {index} is outside the volume's {volume.shape[0]} slices")
    if saliency.shape != tuple(spec.shape):
        raise ValueError(f"the map has shape {list(saliency.shape)}, not the model's input shape {list(spec.shape)}")
    return resize_to(saliency[None].astype(np.float32), volume.shape[1:])[0, ...]


def input_to_volume(saliency: np.ndarray, volume: Volume, spec: ModelSpec) -> np.ndarray:
    """A map over a volume model's (D, H, W) input laid back onto the volume's own (z, y, x) grid: one resize,
    for the reason ``input_to_slice`` gives."""
    if saliency.shape != tuple(spec.shape):
        raise ValueError(f"the map has shape {list(saliency.shape)}, not the model's input shape {list(spec.shape)}")
    return resize_to(saliency[None].astype(np.float32), volume.shape)[0, ...]


def _resize(image: np.ndarray, spacing: Sequence[float], spec: ModelSpec) -> np.ndarray:
    """(channels, *spatial) resampled to the model's spacing, if it has one, then resized to its shape."""
    if spec.spacing_mm is not None:
        image = resize_to(image, spacing_size(image.shape[1:], spacing, spec.spacing_mm))
    return resize_to(image, spec.shape)


def resize_to(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """(channels, *spatial) float32 resized to ``size``: averaged where every axis shrinks, else linear."""
    size = tuple(size)
    if image.shape[1:] == size:
        return image
    from monai.transforms import Resize
    from monai.utils import convert_to_numpy

    if all(new <= old for new, old in zip(size, image.shape[1:], strict=True)):
        mode = "area"
    else:
        mode = "bilinear" if len(size) == 2 else "trilinear"
    resized = Resize(size, mode=mode)(image)  # type: ignore[arg-type]  # typed as Tensor, takes numpy arrays too
    return np.asarray(convert_to_numpy(resized), dtype=np.float32)


def _channels(image: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Slices (N, H, W) or a volume (D, H, W) with a channel axis in front: the grey values in each channel."""
    return np.repeat(image[None], spec.channels, axis=0)


def apply_intensity(image: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Intensity per the metadata on a channel-first array."""
    intensity = spec.intensity
    if intensity is None:
        return image
    from monai.utils import convert_to_numpy

    if isinstance(intensity, IntensityWindow):
        from monai.transforms import ScaleIntensityRange

        window = ScaleIntensityRange(intensity.low, intensity.high, 0.0, 1.0, clip=True)
        return np.asarray(convert_to_numpy(window(image)), dtype=np.float32)
    from monai.transforms import NormalizeIntensity

    # (x / max - mean) / std, as one standardisation: (x - mean * max) / (std * max).
    mean = np.broadcast_to(np.asarray(intensity.mean), spec.channels) * intensity.max_value
    std = np.broadcast_to(np.asarray(intensity.std), spec.channels) * intensity.max_value
    standardise = NormalizeIntensity(subtrahend=mean, divisor=std, channel_wise=True)
    return np.asarray(convert_to_numpy(standardise(image)), dtype=np.float32)
