"""The viewer on real scanners' series: acquired pixels appear where they belong, letters follow the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from medviewer.core import mpr
from medviewer.io import open_volume
from medviewer.ui.app import make_settings
from medviewer.ui.volume_view import VolumeView
from tests.support.windows import shown


@pytest.fixture
def viewer(qtbot) -> VolumeView:
    return shown(qtbot, VolumeView(make_settings()))


def acquired_pixels_in_view(viewer: VolumeView, path: Path, plane: mpr.Plane) -> tuple[np.ndarray, np.ndarray]:
    """A DICOM file's pixels, and what the view draws at the same millimetres (after moving there)."""
    ds = pydicom.dcmread(path)
    volume = viewer.volume
    iop = np.asarray(ds.ImageOrientationPatient, float)
    row_step, col_step = (float(v) for v in ds.PixelSpacing)
    rows, cols = np.mgrid[0 : ds.Rows : 7, 0 : ds.Columns : 7]
    world = (
        np.asarray(ds.ImagePositionPatient, float)
        + cols.reshape(-1, 1) * col_step * iop[:3]
        + rows.reshape(-1, 1) * row_step * iop[3:]
    )
    index = np.rint(volume.world_to_index(world)).astype(int)
    viewer.set_crosshair(index[0])
    k, view_rows, view_cols = np.array([mpr.from_index(volume.shape, plane, i) for i in index]).T
    assert (k == viewer.slice_index(plane)).all(), "the file's pixels must lie in one slice of this view"
    drawn = viewer.views[plane].image.image[view_rows.astype(int), view_cols.astype(int)]
    return ds.pixel_array[rows, cols].reshape(-1), drawn


def test_sagittal_mr_series_is_drawn_as_acquired_in_the_sagittal_view(viewer: VolumeView, xa30i_dir: Path):
    viewer.set_volume(open_volume(xa30i_dir))
    acquired, drawn = acquired_pixels_in_view(viewer, sorted(xa30i_dir.iterdir())[40], mpr.Plane.SAGITTAL)
    np.testing.assert_array_equal(drawn, acquired)
    letters = viewer.views[mpr.Plane.SAGITTAL].edge_labels
    assert [letters[e].text() for e in ("left", "right", "top", "bottom")] == ["A", "P", "S", "I"]
    assert viewer.window()[0] > 0  # MR: window from the data's percentiles


def test_gantry_tilted_ct_shows_oblique_letters_and_true_pixels(viewer: VolumeView, ge_tilt_dir: Path):
    viewer.set_volume(open_volume(ge_tilt_dir))
    axial = viewer.views[mpr.Plane.AXIAL].edge_labels
    assert (axial["top"].text(), axial["bottom"].text()) == ("AS", "PI")  # the tilted slice plane
    assert (axial["left"].text(), axial["right"].text()) == ("R", "L")
    acquired, drawn = acquired_pixels_in_view(viewer, sorted(ge_tilt_dir.iterdir())[5], mpr.Plane.AXIAL)
    ds = pydicom.dcmread(sorted(ge_tilt_dir.iterdir())[5])
    hu = acquired.astype(int) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    np.testing.assert_array_equal(drawn, hu)


def test_ctrl_wheel_zooms_around_the_cursor(viewer: VolumeView, xa30i_dir: Path):
    viewer.set_volume(open_volume(xa30i_dir))
    view = viewer.views[mpr.Plane.AXIAL]
    target = QPointF(90.0, 60.0)  # display mm under the cursor
    pos = QPointF(view.mapFromScene(view.box.mapViewToScene(target)))
    width_before = view.box.viewRange()[0][1] - view.box.viewRange()[0][0]
    wheel = QWheelEvent(
        pos,
        view.viewport().mapToGlobal(pos),
        QPoint(),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.ControlModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), wheel)
    width_after = view.box.viewRange()[0][1] - view.box.viewRange()[0][0]
    assert width_after < width_before * 0.95  # zoomed in
    under_cursor = view.box.mapSceneToView(view.mapToScene(pos.toPoint()))
    assert under_cursor.x() == pytest.approx(target.x(), abs=1.0) and under_cursor.y() == pytest.approx(
        target.y(), abs=1.0
    )
    assert viewer.slice_index(mpr.Plane.AXIAL) == viewer.volume.shape[0] // 2  # zoom does not change slice
