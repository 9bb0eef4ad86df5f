"""Volume geometry: index/world mapping and SimpleITK interop agree to the micrometre."""

import numpy as np
import SimpleITK as sitk

from medviewer.core.volume import Volume


def oblique_volume() -> Volume:
    angle = np.deg2rad(20)
    direction = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    return Volume(array=array, spacing=(0.5, 0.8, 2.0), origin=(-10.0, 20.0, 30.0), direction=direction)


def test_index_to_world_follows_spacing_and_direction():
    volume = oblique_volume()
    # One step along x (last array axis) moves 0.5 mm along the first direction column.
    step = volume.index_to_world((0, 0, 1)) - volume.index_to_world((0, 0, 0))
    np.testing.assert_allclose(step, 0.5 * volume.direction[:, 0], atol=1e-9)
    # One slice step moves 2 mm along the slice normal.
    step_z = volume.index_to_world((1, 0, 0)) - volume.index_to_world((0, 0, 0))
    np.testing.assert_allclose(np.linalg.norm(step_z), 2.0, atol=1e-9)
    np.testing.assert_allclose(volume.index_to_world((0, 0, 0)), volume.origin)


def test_world_to_index_inverts_index_to_world():
    volume = oblique_volume()
    indices = np.array([[0, 0, 0], [3, 4, 5], [1.5, 2.25, 0.75]])
    np.testing.assert_allclose(volume.world_to_index(volume.index_to_world(indices)), indices, atol=1e-9)


def test_to_sitk_matches_simpleitk_geometry_and_voxels():
    volume = oblique_volume()
    image = volume.to_sitk()
    assert image.GetSize() == (6, 5, 4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), volume.array)
    for index_xyz in [(0, 0, 0), (5, 4, 3), (2, 1, 3)]:
        ours = volume.index_to_world(index_xyz[::-1])
        theirs = image.TransformIndexToPhysicalPoint(index_xyz)
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_closest_to_lps_keeps_every_voxel_at_its_world_position():
    # A RAS-stored, axis-swapped volume: x runs to the patient's right, y superior, z anterior.
    direction = np.array([[-1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    array = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    stored = Volume(array=array, spacing=(0.5, 0.8, 2.0), origin=(10.0, -5.0, 3.0), direction=direction)
    lps = stored.closest_to_lps()
    np.testing.assert_allclose(lps.direction, np.eye(3), atol=1e-12)
    assert lps.spacing == (0.5, 2.0, 0.8)
    assert lps.shape == (4, 3, 5)
    for zyx in np.ndindex(*array.shape):
        value = array[zyx]
        new_index = tuple(np.argwhere(lps.array == value)[0])
        np.testing.assert_allclose(lps.index_to_world(new_index), stored.index_to_world(zyx), atol=1e-9)


def test_closest_to_lps_leaves_an_lps_volume_alone():
    volume = oblique_volume()
    assert volume.closest_to_lps() is volume
