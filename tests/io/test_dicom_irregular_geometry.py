"""Gantry tilt, uneven steps, missing slices and mixed orientations: detected, reported, placed truly.

The check that matters is where each stored pixel ends up: for every original slice, the pixel at
(row r, column c) lies at IPP + c * column spacing * row direction + r * row spacing * column direction,
and the voxel nearest that point must hold exactly the pixel's value, within half a voxel of it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.io import list_series, open_volume
from tests.support.paths import real_file


def misplaced_pixels(volume: Volume, files: list[Path]) -> int:
    """How many pixels of the original files are not found, unaltered, at their true world position."""
    half_diagonal = 0.5 * np.linalg.norm(volume.spacing)
    misplaced = 0
    for path in files:
        ds = pydicom.dcmread(path)
        values = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        iop = np.asarray(ds.ImageOrientationPatient, float)
        row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
        r, c = np.indices(values.shape).reshape(2, -1)
        world = (
            np.asarray(ds.ImagePositionPatient, float) + np.outer(c * col_mm, iop[:3]) + np.outer(r * row_mm, iop[3:])
        )
        index = np.rint(volume.world_to_index(world)).astype(int)
        inside = np.all((index >= 0) & (index < np.array(volume.shape)), axis=1)
        index = np.clip(index, 0, np.array(volume.shape) - 1)
        found = volume.array[index[:, 0], index[:, 1], index[:, 2]]
        near = np.linalg.norm(volume.index_to_world(index) - world, axis=1) <= half_diagonal + 1e-6
        misplaced += int(np.sum(~(inside & near & (found == values.reshape(-1)))))
    return misplaced


def naive_stack(files: list[Path]) -> Volume:
    """What a reader that ignores tilt and uneven steps builds (SimpleITK's series reader, for one)."""
    datasets = sorted((pydicom.dcmread(p) for p in files), key=lambda ds: float(ds.ImagePositionPatient[2]))
    iop = np.asarray(datasets[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    heights = [np.asarray(ds.ImagePositionPatient, float) @ normal for ds in datasets]
    array = np.stack([ds.pixel_array + int(ds.RescaleIntercept) for ds in datasets]).astype(np.int16)
    return Volume(
        array=array,
        spacing=(*(float(v) for v in datasets[0].PixelSpacing[::-1]), (heights[-1] - heights[0]) / (len(heights) - 1)),
        origin=tuple(float(v) for v in datasets[0].ImagePositionPatient),
        direction=np.stack([iop[:3], iop[3:], normal], axis=1),
    )


@pytest.mark.slow
def test_gantry_tilt_and_uneven_steps_put_every_pixel_at_its_true_position(ge_tilt_dir: Path):
    volume = open_volume(ge_tilt_dir)
    text = " | ".join(volume.warnings)
    assert "gantry tilt of 18.5 degrees" in text
    assert "steps from 1.08 to 7.00 mm" in text
    assert "regular grid of 134 planes 1.08 mm apart" in text
    assert volume.array.dtype == np.int16
    assert volume.shape == (134, 611, 512)  # in-plane extent grown to hold every shifted slice
    np.testing.assert_allclose(volume.spacing, (0.4882812, 0.4882812, 1.0811), atol=1e-4)
    np.testing.assert_allclose(volume.direction.T @ volume.direction, np.eye(3), atol=1e-9)  # orthonormal
    np.testing.assert_allclose(volume.direction[:, 2], (0, 0.3173, 0.9483), atol=1e-4)  # the slice normal
    assert volume.array.min() == -1500  # the fill is the data minimum, not a new value
    assert misplaced_pixels(volume, sorted(ge_tilt_dir.iterdir())) == 0


@pytest.mark.slow
def test_naive_stacking_of_the_tilted_series_fails_the_same_check(ge_tilt_dir: Path):
    files = sorted(ge_tilt_dir.iterdir())
    assert misplaced_pixels(naive_stack(files), files) > 100_000


def test_non_uniform_spacing_without_tilt_is_regularised_and_the_gap_reported(ct2_dir: Path):
    volume = open_volume(ct2_dir)
    assert volume.warnings == [
        "slice spacing is not uniform (steps from 1.25 to 202.50 mm)",
        "about 161 slice(s) missing between -99.48 and 103.02 mm; that gap is left empty",
        "the 4 slices are placed on a regular grid of 165 planes 1.25 mm apart "
        "(each plane shows the nearest slice; nothing is interpolated)",
    ]
    assert volume.shape == (165, 16, 16)
    np.testing.assert_allclose(volume.spacing, (0.488281, 0.488281, 1.25))
    assert misplaced_pixels(volume, sorted(ct2_dir.iterdir())) == 0
    assert (volume.array[1:-3] == volume.array.min()).all()  # the gap holds no invented slices


def test_a_deleted_middle_file_is_reported_as_a_missing_slice(xa30i_dir: Path, tmp_path: Path):
    damaged = tmp_path / "gap"
    shutil.copytree(xa30i_dir, damaged)
    removed = sorted(damaged.iterdir())[40]
    position = float(pydicom.dcmread(removed, stop_before_pixels=True).ImagePositionPatient[0])
    removed.unlink()
    volume = open_volume(damaged)
    missing = [w for w in volume.warnings if "missing" in w]
    assert len(missing) == 1 and missing[0].startswith("about 1 slice(s) missing between")
    assert volume.array.shape == (128, 128, 96)  # still 96 positions 2 mm apart, one of them empty
    # The empty plane is the removed file's sagittal position: normal (-1, 0, 0), so height = -x
    assert f"{-position - 2:.2f} and {-position + 2:.2f} mm" in missing[0]
    column = int(np.rint(volume.world_to_index([position, 0, 0])[2]))
    assert (volume.array[:, :, column] == 0).all() and volume.array[:, :, column + 1].max() > 500
    assert misplaced_pixels(volume, sorted(damaged.iterdir())) == 0


def test_a_series_mixing_orientations_is_split_into_stacks(xa30i_dir: Path, tmp_path: Path):
    mixed = tmp_path / "mixed"
    shutil.copytree(xa30i_dir, mixed)
    for k, path in enumerate(sorted(mixed.iterdir())[:5]):  # five slices turned into an axial localizer
        ds = pydicom.dcmread(path)
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-128, -128, 10.0 * k]
        ds.save_as(path)
    stacks = list_series(mixed)
    assert [(s.orientation, s.slices) for s in stacks] == [("sagittal", 91), ("axial", 5)]
    assert stacks[0].series_uid == stacks[1].series_uid and stacks[0].key != stacks[1].key
    volume = open_volume(mixed)
    assert volume.shape == (128, 128, 91)
    assert "the series holds 2 separate stacks of slices" in volume.warnings[0]
    axial = open_volume(mixed, series_uid=stacks[1].key)
    assert axial.shape == (5, 128, 128)
    np.testing.assert_allclose(axial.spacing[2], 10.0)


@pytest.mark.parametrize("time_index", [0, 2])
def test_a_4d_series_is_not_stacked_as_3d(time_index: int):
    folder = real_file("dcm_qa_stc/2_epiRT_ascending")
    volume = open_volume(folder, time_index=time_index)
    assert volume.shape == (8, 64, 64)  # 8 positions, not 24 slices
    assert volume.warnings == [f"the series holds 3 time points; showing time point {time_index + 1}"]
    np.testing.assert_allclose(volume.spacing[2], 3.3, atol=1e-4)
    files = sorted(folder.iterdir())[8 * time_index : 8 * time_index + 8]  # instance numbers run in time order
    for z, path in enumerate(files):
        np.testing.assert_array_equal(volume.array[z], pydicom.dcmread(path).pixel_array)


def test_a_time_point_beyond_the_series_is_a_clear_error():
    folder = real_file("dcm_qa_stc/2_epiRT_ascending")
    with pytest.raises(MedviewerError) as caught:
        open_volume(folder, time_index=3)
    assert caught.value.reason == "time point 4 was asked for, but the series holds 3 (1 to 3)"


def test_evenly_tilted_slices_with_rounded_positions_keep_one_plane_each(xa30i_dir: Path, tmp_path: Path):
    """Positions rounded to 0.01 mm (as scanners write them) must not make a grid step short and repeat a slice."""
    folder = tmp_path / "tilted"
    folder.mkdir()
    files = sorted(xa30i_dir.iterdir())
    datasets = [pydicom.dcmread(path) for path in files]
    iop = np.asarray(datasets[0].ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda ds: float(np.asarray(ds.ImagePositionPatient, float) @ normal))
    for k, ds in enumerate(datasets):
        shifted = np.asarray(ds.ImagePositionPatient, float) + k * 0.3 * iop[3:]  # 0.3 mm per step: no half-pixel ties
        ds.ImagePositionPatient = [f"{v:.2f}" for v in shifted + (0.01 if k % 3 == 0 else 0.0)]
        ds.save_as(folder / f"{k:03d}.dcm")
    volume = open_volume(folder)
    assert any(f"regular grid of {len(files)} planes 2.00 mm apart" in w for w in volume.warnings)
    assert any("gantry tilt of 8.5 degrees" in w for w in volume.warnings)
    assert not any("not uniform" in w for w in volume.warnings)
    planes = [volume.array[:, :, i] for i in range(volume.shape[2])]  # sagittal: the normal runs along x
    assert not any(np.array_equal(a, b) for a, b in zip(planes, planes[1:], strict=False))  # no slice shown twice
