"""Resampling lands values at the right millimetres, on real NIfTI geometries (sagittal, oblique, RAS)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from medviewer.core.resample import resample_to, target_to_source_index
from medviewer.core.volume import Volume
from medviewer.io.nifti import read_nifti
from tests.support.paths import XA30I_REF, nibabel_file, real_file


def world_field(volume: Volume) -> np.ndarray:
    """A value that is a linear function of the LPS position: linear resampling must reproduce it exactly."""
    index = np.indices(volume.shape).reshape(3, -1).T
    world = volume.index_to_world(index)
    return (world @ np.array([0.7, -1.3, 2.1]) + 5.0).reshape(volume.shape)


def interior(source: Volume, target: Volume) -> np.ndarray:
    """Target voxels whose centre has source neighbours on every side (no blending with the fill)."""
    index = np.indices(target.shape).reshape(3, -1).T
    mapping = target_to_source_index(source, target)
    source_index = index @ mapping[:3, :3].T + mapping[:3, 3]
    inside = np.all((source_index >= 0) & (source_index <= np.asarray(source.shape) - 1), axis=1)
    return inside.reshape(target.shape)


@pytest.mark.parametrize("order", [0, 1])
def test_identical_geometry_returns_the_same_values(order: int):
    volume = read_nifti(real_file(XA30I_REF))
    out = resample_to(volume, volume, order=order)
    np.testing.assert_array_equal(out, volume.array)
    assert out.dtype == (volume.array.dtype if order == 0 else np.float32)
    assert out is not volume.array


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz"])
def test_reoriented_copy_maps_back_voxel_for_voxel(name: str):
    """RAS-stored files made LPS by permuting and flipping axes: every value returns to its millimetre."""
    stored = read_nifti(nibabel_file(name))
    lps = stored.closest_to_lps()
    assert not np.array_equal(lps.direction, stored.direction)  # a real reorientation happened
    np.testing.assert_array_equal(resample_to(stored, lps, order=0), lps.array)
    np.testing.assert_array_equal(resample_to(lps, stored, order=1), stored.array.astype(np.float32))


def permuted(volume: Volume, order: tuple[int, int, int]) -> Volume:
    """The same voxels with array axes reordered (new axis n is old axis order[n]); geometry follows."""
    columns = [2 - order[2 - m] for m in range(3)]  # xyz column of the new array's axis, in the old one
    return dataclasses.replace(
        volume,
        array=np.ascontiguousarray(volume.array.transpose(order)),
        spacing=tuple(volume.spacing[c] for c in columns),
        direction=volume.direction[:, columns],
    )


@pytest.mark.parametrize("order", [(1, 2, 0), (2, 0, 1), (0, 2, 1)])
def test_permuted_copy_maps_back_voxel_for_voxel(order: tuple[int, int, int]):
    stored = read_nifti(real_file(XA30I_REF))
    copy = permuted(stored, order)
    index = np.array([[3, 40, 70], [95, 0, 127]])
    np.testing.assert_allclose(  # the copy puts the same voxel at the same millimetres
        copy.index_to_world(index[:, list(order)]), stored.index_to_world(index), atol=1e-9
    )
    np.testing.assert_array_equal(resample_to(copy, stored, order=0), stored.array)
    np.testing.assert_array_equal(resample_to(stored, copy, order=1), copy.array.astype(np.float32))


def test_downsampled_copy_lands_on_the_right_millimetres():
    full = read_nifti(real_file(XA30I_REF))
    half = dataclasses.replace(
        full, array=full.array[::2, ::2, ::2].copy(), spacing=tuple(2 * s for s in full.spacing)
    )  # same origin: voxel (i, j, k) of half is voxel (2i, 2j, 2k) of full
    nearest = resample_to(half, full, order=0)
    np.testing.assert_array_equal(nearest[::2, ::2, ::2], half.array)
    linear = resample_to(half, full, order=1)
    np.testing.assert_array_equal(linear[::2, ::2, ::2], half.array.astype(np.float32))
    midway = (half.array[0, 0, :-1].astype(np.float32) + half.array[0, 0, 1:]) / 2
    np.testing.assert_allclose(linear[0, 0, 1:-1:2], midway, rtol=1e-6)


@pytest.mark.parametrize(
    ("source_name", "target_name"),
    [
        ("example4d.nii.gz", "anatomical.nii"),
        ("anatomical.nii", "example4d.nii.gz"),
        pytest.param("example4d.nii.gz", XA30I_REF, marks=pytest.mark.slow),
    ],
)
def test_linear_resampling_reproduces_a_field_defined_in_millimetres(source_name: str, target_name: str):
    """Oblique and axis-aligned pairs of different spacing and origin: value = f(LPS position) survives."""
    source_geometry = read_nifti(nibabel_file(source_name))
    target_path = real_file(target_name) if target_name == XA30I_REF else nibabel_file(target_name)
    target = read_nifti(target_path)
    source = dataclasses.replace(source_geometry, array=world_field(source_geometry).astype(np.float32))
    inside = interior(source, target)
    assert inside.sum() > 1000  # the two volumes really overlap
    out = resample_to(source, target, order=1, fill=-1e6)
    np.testing.assert_allclose(out[inside], world_field(target)[inside], atol=2e-3)
    assert np.all(out[~interior_or_edge(source, target)] == -1e6)


def interior_or_edge(source: Volume, target: Volume) -> np.ndarray:
    """Target voxels within one source voxel of the source's extent: farther out is fill only."""
    index = np.indices(target.shape).reshape(3, -1).T
    mapping = target_to_source_index(source, target)
    source_index = index @ mapping[:3, :3].T + mapping[:3, 3]
    near = np.all((source_index > -1) & (source_index < np.asarray(source.shape)), axis=1)
    return near.reshape(target.shape)


def test_nearest_labels_keep_their_type_and_land_inside_their_box_in_millimetres():
    reference = read_nifti(nibabel_file("example4d.nii.gz"))  # oblique target
    source = read_nifti(nibabel_file("anatomical.nii"))  # axis-aligned, RAS-stored source
    labels = np.zeros(source.shape, dtype=np.uint8)
    labels[5:15, 10:30, 8:20] = 3
    source = dataclasses.replace(source, array=labels)
    out = resample_to(source, reference, order=0)
    assert out.dtype == np.uint8
    assert set(np.unique(out)) == {0, 3}
    hit = np.argwhere(out == 3)
    source_index = source.world_to_index(reference.index_to_world(hit))
    assert np.all(source_index >= np.array([5, 10, 8]) - 0.5 - 1e-6)
    assert np.all(source_index <= np.array([14, 29, 19]) + 0.5 + 1e-6)


def test_a_source_elsewhere_gives_only_fill():
    volume = read_nifti(nibabel_file("anatomical.nii"))
    far = dataclasses.replace(volume, origin=tuple(np.asarray(volume.origin) + 1000.0))
    assert np.all(resample_to(far, volume, order=0, fill=7) == 7)


def test_orders_above_linear_and_unstorable_fill_are_refused():
    volume = read_nifti(nibabel_file("anatomical.nii"))
    with pytest.raises(ValueError, match="order"):
        resample_to(volume, volume, order=3)
    labels = dataclasses.replace(volume, array=np.zeros(volume.shape, np.uint8))
    with pytest.raises(ValueError, match="fill"):
        resample_to(labels, volume, order=0, fill=-1)


@pytest.mark.slow
def test_a_512_by_512_by_120_flipped_copy_is_fast():
    rng = np.random.default_rng(0)
    target = Volume(rng.integers(0, 1000, (120, 512, 512), dtype=np.int16), (0.7, 0.7, 2.5), (-180.0, -180.0, 0.0))
    flipped = Volume(
        target.array[:, ::-1, ::-1].copy(),
        target.spacing,
        tuple(target.index_to_world((0, 511, 511))),
        np.diag([-1.0, -1.0, 1.0]),
    )
    start = time.perf_counter()
    out = resample_to(flipped, target, order=0)
    elapsed = time.perf_counter() - start
    np.testing.assert_array_equal(out, target.array)
    assert elapsed < 1.0, f"a flip took {elapsed:.2f} s"


def test_linear_sampling_on_the_last_source_voxel_is_not_filled():
    """A target voxel exactly on the source's last voxel centre takes its value, even with NaN as fill."""
    source = Volume(np.arange(64, dtype=np.float32).reshape(4, 4, 4), spacing=(2, 2, 2), origin=(0, 0, 0))
    target = Volume(np.zeros((7, 7, 7), np.float32), spacing=(1, 1, 1), origin=(0, 0, 0))
    values = resample_to(source, target, order=1, fill=np.nan)
    assert np.isfinite(values).all()
    assert values[6, 6, 6] == source.array[3, 3, 3] and values[0, 0, 6] == source.array[0, 0, 3]
