"""Sampling one volume on another's voxel grid, by world position.

Overlays (label maps, model outputs, a second series) come in their own geometry; drawing them on a
volume needs their values at that volume's voxel centres, whatever the spacing, origin, direction or
axis order of either. Everything goes through the two volumes' index-to-world maps, so a mismatch in
array order can never shift an overlay.

When each target axis runs along one source axis (the usual case: the same scan in another axis
order or file format, or at another resolution), sampling is done as three 1-D passes, and grids that
coincide are copied exactly. Oblique relations go through ``scipy.ndimage.affine_transform``, which
holds the GIL, so it is not split across threads.

Outside the source, ``fill`` is used; within half a voxel beyond the source's outermost voxel centres
(still inside its edge voxels), nearest-neighbour sampling finds the edge voxel and linear sampling
blends it towards ``fill``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from medviewer.core.volume import Volume

#: Largest disagreement (in source voxels, anywhere in the target) for grids to count as coinciding.
GRID_TOLERANCE = 1e-3


def target_to_source_index(source: Volume, target: Volume) -> np.ndarray:
    """4x4 map from target (z, y, x) indices to the source (z, y, x) indices at the same world point."""
    return np.linalg.inv(source.index_to_world_matrix()) @ target.index_to_world_matrix()


def resample_to(source: Volume, target: Volume, order: int = 1, fill: float = 0.0) -> np.ndarray:
    """``source``'s values at the world positions of ``target``'s voxel centres, shaped like ``target``.

    ``order`` 0 (nearest, for labels) keeps the source's dtype; ``order`` 1 (linear, for intensities)
    returns float32. Higher orders are refused: their overshoot invents values a viewer should not show.
    """
    if order not in (0, 1):
        raise ValueError(f"order must be 0 (nearest) or 1 (linear), not {order}")
    array = source.array
    if not _holds(array.dtype, fill):
        if order == 0:
            raise ValueError(f"fill {fill} cannot be stored in the source's type {array.dtype}")
        array = array.astype(np.float32)
    mapping = target_to_source_index(source, target)
    axes = _aligned_axes(mapping, target.shape)
    if axes is not None:
        return _separable(array, mapping, axes, target.shape, order, fill)
    return _affine_transform(array, mapping, target.shape, order, fill)


def _holds(dtype: np.dtype, value: float) -> bool:
    return bool(np.asarray(value).astype(dtype) == value)


def _aligned_axes(mapping: np.ndarray, shape: tuple[int, int, int]) -> list[int] | None:
    """The source axis along each target axis, if each target axis runs along exactly one source axis.

    A coefficient counts as zero when, over the whole target, it moves a sample by less than
    ``GRID_TOLERANCE`` voxels: float noise in headers must not push a plain copy onto the slow path.
    """
    extent = np.asarray(shape, dtype=float) - 1
    significant = np.abs(mapping[:3, :3]) * extent[None, :] >= GRID_TOLERANCE
    if not (np.all(significant.sum(axis=0) == 1) and np.all(significant.sum(axis=1) == 1)):
        return None
    return [int(np.flatnonzero(significant[:, t])[0]) for t in range(3)]


def _separable(
    array: np.ndarray, mapping: np.ndarray, axes: list[int], shape: tuple[int, int, int], order: int, fill: float
) -> np.ndarray:
    """Axis-aligned resampling as three 1-D passes: much faster than a general 3-D transform.

    Sample positions within ``GRID_TOLERANCE`` of a voxel centre are snapped to it, so coinciding
    grids (the same scan in another axis order or file format) are copied exactly.
    """
    values = np.transpose(array, axes)
    for t in (2, 1, 0):
        source_axis = axes[t]
        coords = mapping[source_axis, t] * np.arange(shape[t]) + mapping[source_axis, 3]
        nearest = np.round(coords)
        coords = np.where(np.abs(coords - nearest) < GRID_TOLERANCE, nearest, coords)
        if np.array_equal(coords, np.arange(values.shape[t])):
            continue  # this axis already coincides
        values = _interpolate_axis(values, t, coords, order, fill)
    return np.array(values, dtype=array.dtype if order == 0 else np.float32, order="C")


def _interpolate_axis(values: np.ndarray, axis: int, coords: np.ndarray, order: int, fill: float) -> np.ndarray:
    """``values`` sampled at ``coords`` along one axis, with ``fill`` standing for everything outside.

    Whole-voxel positions are looked up without blending, whatever the order, so integer data stays
    exact and is converted only once at the end.
    """
    low = np.floor(coords if order == 1 else coords + 0.5).astype(np.intp)
    weight = (coords - low).astype(np.float32)
    low_values = _take(values, axis, low, fill)
    if order == 0 or not weight.any():
        return low_values
    high = np.where(weight > 0, low + 1, low)  # a zero weight must not blend in ``fill`` (NaN * 0 is NaN)
    blended: NDArray[np.float32] = np.subtract(_take(values, axis, high, fill), low_values, dtype=np.float32)
    broadcast = [1] * values.ndim
    broadcast[axis] = len(coords)
    blended *= weight.reshape(broadcast)
    blended += low_values
    return blended


def _take(values: np.ndarray, axis: int, index: np.ndarray, fill: float) -> np.ndarray:
    """``values`` at ``index`` along ``axis``, ``fill`` where the index is outside.

    Evenly stepped indices inside the array (flips, crops, whole-voxel shifts) become a slice: a view,
    where a gather would copy the whole volume once per axis.
    """
    size = values.shape[axis]
    selector: list[slice | np.ndarray] = [slice(None)] * values.ndim
    steps = np.diff(index)
    if index.size > 1 and steps[0] != 0 and np.all(steps == steps[0]) and 0 <= index.min() and index.max() < size:
        stop = index[-1] + steps[0]
        selector[axis] = slice(index[0], stop if stop >= 0 else None, steps[0])
        return values[tuple(selector)]
    taken: np.ndarray = np.take(values, np.clip(index, 0, size - 1), axis=axis)
    outside = (index < 0) | (index >= size)
    if outside.any():
        selector[axis] = outside
        taken[tuple(selector)] = fill
    return taken


def _affine_transform(
    array: np.ndarray, mapping: np.ndarray, shape: tuple[int, int, int], order: int, fill: float
) -> np.ndarray:
    """General (oblique) resampling.

    The source is padded with one voxel of ``fill`` so that scipy's "constant" mode treats edges as the
    separable passes do (edge voxels reach half a voxel out); its "grid-constant" mode, which would do
    the same unpadded, is about 1.5 times slower.
    """
    resampled: np.ndarray = ndimage.affine_transform(  # scipy.ndimage is unannotated: it returns Any
        np.pad(array, 1, constant_values=fill),
        mapping[:3, :3],
        offset=mapping[:3, 3] + 1,
        output_shape=shape,
        output=array.dtype if order == 0 else np.float32,
        order=order,
        mode="constant",
        cval=fill,
        prefilter=False,
    )
    return resampled
