"""The MPR viewer as a reader uses it: real mouse and key events, and what ends up drawn on screen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

from medviewer.catalog.pseudonyms import pseudonym
from medviewer.core import mpr
from medviewer.core.label_map import LabelMap
from medviewer.core.resample import resample_to
from medviewer.core.volume import Volume
from medviewer.io import open_volume
from medviewer.ui.app import make_settings
from medviewer.ui.volume_view import Layout, Tool, VolumeView
from tests.support.windows import grab, shown, viewport_point

AXIAL, CORONAL, SAGITTAL = mpr.Plane.AXIAL, mpr.Plane.CORONAL, mpr.Plane.SAGITTAL


@pytest.fixture(scope="module")
def demo_ct(demo_dir: Path) -> Volume:
    return open_volume(demo_dir / "ct")


@pytest.fixture
def viewer(qtbot, demo_ct: Volume) -> VolumeView:
    view = shown(qtbot, VolumeView(make_settings()))
    view.set_volume(demo_ct)
    qtbot.wait(20)
    return view


def send_mouse(viewer: VolumeView, plane, kind, uv, button, buttons) -> None:
    target = viewer.views[plane].viewport()
    pos = QPointF(viewport_point(viewer, plane, *uv))
    event = QMouseEvent(kind, pos, target.mapToGlobal(pos), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, event)


def drag(qtbot, viewer: VolumeView, plane, start, end, button=Qt.MouseButton.LeftButton) -> None:
    none = Qt.MouseButton.NoButton
    send_mouse(viewer, plane, QMouseEvent.Type.MouseButtonPress, start, button, button)
    for t in np.linspace(0, 1, 6)[1:]:
        point = (start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]))
        send_mouse(viewer, plane, QMouseEvent.Type.MouseMove, point, none, button)
        qtbot.wait(5)
    send_mouse(viewer, plane, QMouseEvent.Type.MouseButtonRelease, end, button, none)
    qtbot.wait(10)


def click(qtbot, viewer: VolumeView, plane, uv) -> None:
    send_mouse(
        viewer, plane, QMouseEvent.Type.MouseButtonPress, uv, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton
    )
    send_mouse(
        viewer, plane, QMouseEvent.Type.MouseButtonRelease, uv, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    )
    qtbot.wait(10)


def drawn_colour(viewer: VolumeView, plane: mpr.Plane, zyx) -> np.ndarray:
    """The colour on screen where voxel ``zyx`` is drawn in ``plane``'s view."""
    _, u, v = mpr.index_to_display(viewer.volume.shape, viewer.volume.spacing, plane, np.asarray(zyx))
    view = viewer.views[plane]
    pixels = grab(view)
    point = viewport_point(viewer, plane, u, v)
    ratio = pixels.shape[1] / view.width()
    return pixels[int(point.y() * ratio), int(point.x() * ratio)].astype(int)


def voxel_where(volume: Volume, condition: np.ndarray, plane: mpr.Plane, k: int) -> np.ndarray:
    """A voxel of slice ``k`` of ``plane`` meeting ``condition`` (a boolean slice as the view draws it)."""
    rows, cols = np.nonzero(condition)
    i = len(rows) // 2
    return mpr.to_index(volume.shape, plane, k, rows[i], cols[i]).astype(int)


def test_three_views_show_the_crosshair_slices_with_true_aspect(viewer: VolumeView, demo_ct: Volume):
    z, y, x = (int(round(c)) for c in viewer.crosshair)
    np.testing.assert_array_equal(viewer.views[AXIAL].image.image, demo_ct.array[z])
    np.testing.assert_array_equal(viewer.views[CORONAL].image.image, demo_ct.array[::-1, y, :])
    np.testing.assert_array_equal(viewer.views[SAGITTAL].image.image, demo_ct.array[::-1, :, x])
    # 0.7 mm pixels across, 2.5 mm slices down: 20 mm is the same length on screen both ways.
    origin = viewport_point(viewer, CORONAL, 10, 10)
    across, down = viewport_point(viewer, CORONAL, 30, 10), viewport_point(viewer, CORONAL, 10, 30)
    assert abs((across - origin).x() - (down - origin).y()) <= 1
    assert (across - origin).x() > 20
    for plane in (CORONAL, SAGITTAL):
        text = viewer.views[plane].edge_labels
        assert (text["top"].text(), text["bottom"].text()) == ("S", "I")
    assert [viewer.views[AXIAL].edge_labels[e].text() for e in ("left", "right", "top", "bottom")] == list("RLAP")
    assert viewer.views[SAGITTAL].edge_labels["left"].text() == "A"


def test_drawn_pixels_follow_window_presets_and_colour_maps(qtbot, viewer: VolumeView, demo_ct: Volume):
    k = viewer.slice_index(AXIAL)
    hu = demo_ct.array[k]
    lung = voxel_where(demo_ct, (hu > -900) & (hu < -800), AXIAL, k)
    soft = voxel_where(demo_ct, np.abs(hu - 40) < 5, AXIAL, k)
    assert drawn_colour(viewer, AXIAL, lung).max() < 20  # soft-tissue window: lung is black
    viewer.setFocus()
    qtbot.keyClick(viewer, Qt.Key.Key_1)  # lung preset
    assert viewer.window() == pytest.approx((1500, -600))
    assert viewer.views[AXIAL].corner_labels["bottom_right"].text() == "W 1500 L -600"
    lung_grey = drawn_colour(viewer, AXIAL, lung)
    assert 40 < lung_grey.mean() < 120  # -850 HU in a -1350..150 window: dark grey, not black
    qtbot.keyClick(viewer, Qt.Key.Key_3)  # abdomen
    viewer.set_colormap("hot")
    r, g, b = drawn_colour(viewer, AXIAL, soft)
    assert r > 200 and g > 80 and b < 60  # mid-window on the hot map: orange
    viewer.set_colormap("grey")
    r, g, b = drawn_colour(viewer, AXIAL, soft)
    assert abs(r - g) < 3 and abs(g - b) < 3 and 100 < r < 160


def test_right_drag_changes_window_and_level(qtbot, viewer: VolumeView):
    width, centre = viewer.window()
    drag(qtbot, viewer, AXIAL, (150, 150), (230, 110), button=Qt.MouseButton.RightButton)
    new_width, new_centre = viewer.window()
    assert new_width > width and new_centre > centre


def test_click_in_one_view_moves_the_other_two(qtbot, viewer: VolumeView, demo_ct: Volume):
    target = np.array([60, 200, 300])
    _, u, v = mpr.index_to_display(demo_ct.shape, demo_ct.spacing, AXIAL, target)
    click(qtbot, viewer, AXIAL, (u, v))
    assert viewer.slice_index(CORONAL) == 200 and viewer.slice_index(SAGITTAL) == 300
    np.testing.assert_array_equal(viewer.views[CORONAL].image.image, demo_ct.array[::-1, 200, :])
    np.testing.assert_array_equal(viewer.views[SAGITTAL].image.image, demo_ct.array[::-1, :, 300])
    _, cu, cv = mpr.index_to_display(demo_ct.shape, demo_ct.spacing, CORONAL, viewer.crosshair)
    assert viewer.views[CORONAL].v_line.value() == pytest.approx(cu)
    assert viewer.views[CORONAL].h_line.value() == pytest.approx(cv)
    # Dragging on the sagittal view moves the axial slice with it.
    _, su, sv = mpr.index_to_display(demo_ct.shape, demo_ct.spacing, SAGITTAL, np.array([30, 250, 300]))
    drag(qtbot, viewer, SAGITTAL, (su, sv - 20), (su, sv))
    assert viewer.slice_index(AXIAL) == 30
    np.testing.assert_array_equal(viewer.views[AXIAL].image.image, demo_ct.array[30])


def test_wheel_and_page_keys_step_slices_in_the_view_used(qtbot, viewer: VolumeView, demo_ct: Volume):
    start = viewer.slice_index(CORONAL)
    view = viewer.views[CORONAL]
    centre = QPointF(view.viewport().rect().center())
    wheel = QWheelEvent(
        centre,
        view.viewport().mapToGlobal(centre),
        QPoint(),
        QPoint(0, -120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), wheel)
    assert viewer.slice_index(CORONAL) == start + 1
    viewer.setFocus()
    qtbot.keyClick(viewer, Qt.Key.Key_PageUp)
    qtbot.keyClick(viewer, Qt.Key.Key_PageUp)
    assert viewer.slice_index(CORONAL) == start - 1
    np.testing.assert_array_equal(view.image.image, demo_ct.array[::-1, start - 1, :])


def test_probe_reads_hounsfield_units_and_world_position(qtbot, viewer: VolumeView, demo_ct: Volume):
    zyx = np.array([viewer.slice_index(AXIAL), 256, 100])
    _, u, v = mpr.index_to_display(demo_ct.shape, demo_ct.spacing, AXIAL, zyx)
    send_mouse(viewer, AXIAL, QMouseEvent.Type.MouseMove, (u, v), Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    x, y, z = demo_ct.index_to_world(zyx)
    text = viewer.probe.text()
    assert f"{demo_ct.array[tuple(zyx)]} HU" in text
    assert f"({x:.1f}, {y:.1f}, {z:.1f}) mm" in text


def test_distance_and_roi_measurements_are_listed_drawn_and_deletable(qtbot, viewer, demo_ct, ground_truth):
    viewer.set_tool(Tool.DISTANCE)
    drag(qtbot, viewer, CORONAL, (100.0, 100.0), (130.0, 140.0))
    distance = float(viewer.measurement_panel.texts()[0].split(": ")[1].removesuffix(" mm"))
    assert distance == pytest.approx(50.0, abs=0.6)  # 30 mm across, 40 mm down, to a screen pixel
    lesion = ground_truth["ct"]["lesions"][0]
    k, u, v = mpr.index_to_display(
        demo_ct.shape, demo_ct.spacing, AXIAL, demo_ct.world_to_index(lesion["center_lps_mm"])
    )
    viewer.set_crosshair(np.array([k, *viewer.crosshair[1:]]))
    viewer.set_tool(Tool.ELLIPSE)
    half = lesion["radius_mm"] * 0.6
    drag(qtbot, viewer, AXIAL, (u - half, v - half), (u + half, v + half))
    roi_text = viewer.measurement_panel.texts()[1]
    mean = float(roi_text.split("mean ")[1].split(" HU")[0])
    assert mean == pytest.approx(lesion["hu"], abs=8)
    graphic = viewer.graphics[1]
    assert graphic.shape.isVisible() and graphic.shape.rect().width() == pytest.approx(2 * half, rel=0.05)
    viewer.set_tool(Tool.ANGLE)
    for point in ((50.0, 50.0), (80.0, 50.0), (80.0, 90.0)):
        click(qtbot, viewer, AXIAL, point)
    angle = float(viewer.measurement_panel.texts()[2].split(": ")[1].removesuffix("°"))
    assert angle == pytest.approx(90.0, abs=1.5)
    viewer.delete_measurement(0)
    assert len(viewer.measurement_panel.texts()) == 2 and viewer.measurement_panel.texts()[0].startswith("Ellipse")
    assert graphic.shape.scene() is not None
    viewer.step(3, AXIAL)  # measurements belong to their slice
    assert not graphic.shape.isVisible()


@pytest.mark.slow
def test_label_map_and_heatmap_overlays_are_drawn_in_their_colours(qtbot, viewer, demo_ct, ground_truth):
    lesion = ground_truth["ct"]["lesions"][0]
    centre = np.round(demo_ct.world_to_index(lesion["center_lps_mm"])).astype(int)
    labels = np.zeros(demo_ct.shape, np.uint8)
    labels[centre[0] - 1 : centre[0] + 2, centre[1] - 4 : centre[1] + 5, centre[2] - 4 : centre[2] + 5] = 1
    viewer.set_crosshair(centre)
    inside = centre + [0, 3, 3]  # off the crosshair lines, inside the label
    viewer.set_label_map(LabelMap(labels, {1: "lesion"}, {1: (0, 255, 0)}, "lesion.nii.gz"))
    viewer.set_overlay_opacity(1.0)
    r, g, b = drawn_colour(viewer, AXIAL, inside)
    assert g > 200 and r < 60 and b < 60
    viewer.set_overlay_opacity(0.0)
    r, g, b = drawn_colour(viewer, AXIAL, inside)
    assert abs(int(r) - int(g)) < 3  # only the grey image
    # A coarse heatmap in another geometry (4 mm voxels), hot at the lesion, resampled into the CT.
    coarse = Volume(
        np.zeros((30, 30, 30), np.float32), spacing=(4, 4, 4), origin=tuple(np.subtract(lesion["center_lps_mm"], 60))
    )
    coarse.array[13:18, 13:18, 13:18] = 1.0
    resampled = resample_to(coarse, demo_ct, order=1, fill=np.nan)  # as explain_volume does in its job
    on_grid = Volume(resampled, demo_ct.spacing, demo_ct.origin, demo_ct.direction)
    viewer.set_heatmap(on_grid, name="saliency", colormap="jet", opacity=1.0, threshold=0.5)
    assert viewer.legend.isVisible() and viewer.legend.high == pytest.approx(1.0)
    r, g, b = drawn_colour(viewer, AXIAL, inside)
    assert r > 100 and b < 60  # top of the jet map: dark red
    corner = voxel_where(demo_ct, demo_ct.array[centre[0]] < -900, AXIAL, centre[0])
    assert drawn_colour(viewer, AXIAL, corner).max() < 20  # below the threshold: nothing drawn over air
    # Restyled (the AI panel's colours and opacity) without resampling again: the same values, drawn anew.
    values = viewer.heatmap.values
    viewer.restyle_heatmap("hot", 0.0, 0.5)
    assert viewer.heatmap.values is values and viewer.heatmap.colormap == "hot"
    r, g, b = drawn_colour(viewer, AXIAL, inside)
    assert abs(int(r) - int(g)) < 3  # fully transparent: only the grey image


def test_anonymised_display_and_export_leave_out_identifiers(qtbot, viewer: VolumeView, demo_ct, tmp_path):
    top_left = viewer.views[AXIAL].corner_labels["top_left"]
    assert demo_ct.patient.patient_id in top_left.text()
    shown, anonymous = viewer.grab_views(), viewer.grab_views(include_identifiers=False)
    assert demo_ct.patient.patient_id in top_left.text()  # the display is left as it was
    assert shown.size() == anonymous.size() and shown.width() > 500
    corner = anonymous.copy(0, 0, 120, 40)
    assert all(is_dark(corner.pixel(x, y)) for x in range(120) for y in range(40))
    assert shown.copy(0, 0, 120, 40) != corner
    viewer.set_anonymised(True)  # on screen: a stable pseudonym instead of name and ID, and no date
    alias = pseudonym(demo_ct.patient.patient_id, demo_ct.patient.name)
    assert top_left.text() == f"{alias.name}\nID {alias.patient_id}"
    assert demo_ct.patient.study_date not in top_left.text()


def is_dark(rgb: int) -> bool:
    return max((rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255) < 40


def test_one_view_layout_and_reset(qtbot, viewer: VolumeView):
    viewer.set_layout(Layout.SAGITTAL)
    qtbot.wait(10)
    assert viewer.views[SAGITTAL].isVisible() and not viewer.views[AXIAL].isVisible()
    assert viewer.views[SAGITTAL].width() > 900
    viewer.views[SAGITTAL].box.scaleBy((0.5, 0.5))
    viewer.set_window(10, 10)
    viewer.reset_view()
    assert viewer.window() == pytest.approx((400, 40))
    (x0, x1), _ = viewer.views[SAGITTAL].box.viewRange()
    assert x1 - x0 >= viewer.volume.shape[1] * viewer.volume.spacing[1]
    viewer.set_layout(Layout.THREE)
    assert all(v.isVisible() for v in viewer.views.values())
    assert viewer.views[AXIAL].scale_bar.length_mm() in (20, 50, 100)


def test_actions_without_a_volume_and_a_new_volume_drop_unfinished_drawing(qtbot, demo_ct: Volume):
    empty = VolumeView(make_settings())
    qtbot.addWidget(empty)
    empty.show()
    empty.set_label_map(None)
    empty.apply_preset(1)
    empty.step(1)
    empty.set_heatmap(None)
    qtbot.keyClick(empty, Qt.Key.Key_3)
    assert empty.volume is None and empty.label_map is None
    with pytest.raises(ValueError):
        empty.set_label_map(LabelMap(np.zeros((2, 2, 2), np.uint8), {}, {}, "x.nii"))
    empty.set_volume(demo_ct)
    empty.set_tool(Tool.ANGLE)
    empty._press(empty.views[AXIAL], 5.0, 5.0)
    empty._release(empty.views[AXIAL], 5.0, 5.0)
    empty.set_volume(demo_ct)  # opening a volume forgets a measurement half drawn on the last one
    assert empty._drawing == [] and empty._drawing_view is None
    assert empty.measurement_panel.texts() == []
