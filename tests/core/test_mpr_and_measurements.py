"""Where each view's pixels are in the patient, and what measurements read from them, in millimetres."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medviewer.core import mpr
from medviewer.core.measurements import (
    Measurement,
    MeasurementKind,
    angle_degrees,
    distance_mm,
    region_statistics,
    summary,
)
from medviewer.core.volume import Volume
from medviewer.core.window_presets import load_presets, presets_for


def rotation(axis: int, degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def anisotropic_oblique_volume() -> Volume:
    array = np.arange(20 * 30 * 40, dtype=np.int16).reshape(20, 30, 40)
    return Volume(
        array, spacing=(0.5, 0.8, 3.0), origin=(10.0, -20.0, 5.0), direction=rotation(2, 20) @ rotation(0, 15)
    )


@pytest.mark.parametrize("plane", list(mpr.Plane))
def test_view_pixels_map_back_to_the_voxels_they_show(plane: mpr.Plane):
    volume = anisotropic_oblique_volume()
    k = mpr.slice_count(volume.shape, plane) // 3
    pixels = mpr.extract(volume.array, plane, k)
    rng = np.random.default_rng(1)
    for row, col in rng.integers(0, pixels.shape, size=(25, 2)):
        zyx = mpr.to_index(volume.shape, plane, k, row, col).astype(int)
        assert volume.array[tuple(zyx)] == pixels[row, col]
        assert mpr.from_index(volume.shape, plane, zyx) == (k, row, col)
        su, sv = mpr.pixel_size(volume.spacing, plane)
        np.testing.assert_allclose(
            mpr.display_to_index(volume.shape, volume.spacing, plane, k, (col + 0.5) * su, (row + 0.5) * sv), zyx
        )


def test_coronal_and_sagittal_put_superior_at_the_top():
    volume = Volume(np.zeros((10, 4, 4), np.int16), spacing=(1, 1, 2), origin=(0, 0, 0))
    for plane in (mpr.Plane.CORONAL, mpr.Plane.SAGITTAL):
        top = volume.index_to_world(mpr.to_index(volume.shape, plane, 0, 0, 0))
        bottom = volume.index_to_world(mpr.to_index(volume.shape, plane, 0, 9, 0))
        assert top[2] - bottom[2] == pytest.approx(18.0)  # 9 rows of 2 mm, superior above


def test_orientation_letters_follow_radiological_convention_and_oblique_data():
    identity = np.eye(3)
    assert mpr.edge_letters(identity, mpr.Plane.AXIAL) == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert mpr.edge_letters(identity, mpr.Plane.CORONAL) == {"left": "R", "right": "L", "top": "S", "bottom": "I"}
    assert mpr.edge_letters(identity, mpr.Plane.SAGITTAL) == {"left": "A", "right": "P", "top": "S", "bottom": "I"}
    tilted = rotation(2, 30)  # columns turned 30 degrees about the S axis
    letters = mpr.edge_letters(tilted, mpr.Plane.AXIAL)
    assert letters["right"] == "LP" and letters["left"] == "RA"
    assert mpr.orientation_letters(np.array([0.05, -0.1, 0.99])) == "S"


def test_distance_is_true_millimetres_under_anisotropic_oblique_geometry():
    volume = anisotropic_oblique_volume()
    # 3 mm right and 4 mm down on a sagittal view: 5 mm in the patient, whatever the spacing and rotation.
    m = Measurement(MeasurementKind.DISTANCE, mpr.Plane.SAGITTAL, 7, [(2.0, 6.0), (5.0, 10.0)])
    assert distance_mm(volume, m) == pytest.approx(5.0)
    # The same on the axial view across differently spaced columns and rows.
    m = Measurement(MeasurementKind.DISTANCE, mpr.Plane.AXIAL, 3, [(1.0, 1.0), (7.0, 9.0)])
    assert distance_mm(volume, m) == pytest.approx(10.0)
    assert summary(volume, m) == "10.0 mm"


def test_angle_is_measured_in_the_patient():
    volume = anisotropic_oblique_volume()
    right = Measurement(MeasurementKind.ANGLE, mpr.Plane.CORONAL, 5, [(10.0, 2.0), (2.0, 2.0), (2.0, 30.0)])
    assert angle_degrees(volume, right) == pytest.approx(90.0)
    sixty = Measurement(MeasurementKind.ANGLE, mpr.Plane.AXIAL, 5, [(11.0, 5.0), (1.0, 5.0), (6.0, 5.0 + 5 * 3**0.5)])
    assert angle_degrees(volume, sixty) == pytest.approx(60.0)


def test_region_statistics_over_known_pixels():
    array = np.zeros((3, 40, 40), dtype=np.int16)
    array[1, 10:20, 10:30] = 100  # a 20 x 10 pixel block of value 100
    array[1, 10:20, 10:20] = 50
    volume = Volume(array, spacing=(0.5, 2.0, 1.0), origin=(0, 0, 0))
    rect = Measurement(MeasurementKind.RECTANGLE, mpr.Plane.AXIAL, 1, [(5.0, 20.0), (15.0, 40.0)])
    stats = region_statistics(volume, rect)
    assert stats.pixel_count == 200
    assert stats.mean == pytest.approx(75.0) and stats.sd == pytest.approx(25.0)
    assert (stats.minimum, stats.maximum) == (50.0, 100.0)
    assert stats.area_mm2 == pytest.approx(200.0)  # 10 mm x 20 mm
    ellipse = Measurement(MeasurementKind.ELLIPSE, mpr.Plane.AXIAL, 1, [(5.0, 20.0), (15.0, 40.0)])
    stats = region_statistics(volume, ellipse)
    assert stats.area_mm2 == pytest.approx(math.pi * 5 * 10)
    assert 140 < stats.pixel_count < 200 and 50 <= stats.minimum and stats.maximum == 100


def test_ellipse_in_a_demo_lesion_reads_its_hounsfield_units(demo_dir, ground_truth):
    from medviewer.io import open_volume

    volume = open_volume(demo_dir / "ct")
    lesion = ground_truth["ct"]["lesions"][0]
    k, u, v = mpr.index_to_display(
        volume.shape, volume.spacing, mpr.Plane.AXIAL, volume.world_to_index(lesion["center_lps_mm"])
    )
    half = lesion["radius_mm"] * 0.6
    m = Measurement(MeasurementKind.ELLIPSE, mpr.Plane.AXIAL, round(k), [(u - half, v - half), (u + half, v + half)])
    stats = region_statistics(volume, m)
    assert stats.mean == pytest.approx(lesion["hu"], abs=8)
    assert "HU" in summary(volume, m)


def test_window_presets_are_data_with_the_issue_values():
    ct = {p.name: (p.width, p.centre) for p in load_presets()["CT"]}
    assert ct == {
        "Lung": (1500, -600),
        "Mediastinum": (350, 50),
        "Abdomen": (400, 40),
        "Bone": (2000, 300),
        "Brain": (80, 40),
    }
    mr = Volume(np.arange(1000, dtype=np.uint16).reshape(10, 10, 10), (1, 1, 1), (0, 0, 0), modality="MR")
    width, centre = presets_for(mr)[0].window_for(mr)
    assert (centre - width / 2, centre + width / 2) == pytest.approx((9.99, 989.01))


def test_windows_of_float_volumes_with_nan_background_are_finite():
    array = np.full((8, 16, 16), np.nan, np.float32)
    array[:, 4:12, 4:12] = np.linspace(0, 100, 8 * 8 * 8, dtype=np.float32).reshape(8, 8, 8)
    volume = Volume(array, spacing=(1, 1, 1), origin=(0, 0, 0), modality="MR")
    width, centre = volume.display_window()
    assert np.isfinite([width, centre]).all() and 0 < centre < 100
    for preset in presets_for(volume):
        assert np.isfinite(preset.window_for(volume)).all()
    assert Volume(np.full((2, 2, 2), np.nan), (1, 1, 1), (0, 0, 0)).display_window() == (1.0, 0.5)
