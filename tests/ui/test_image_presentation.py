"""2-D images, cine loops and colour images in the volume viewer, as a radiologist expects to see them.

Volumes are built by hand with what ``medviewer.io`` sets for such files: frames as z, identity direction,
and the presentation, orientation, pixel size, frame time, colour, VOI and overlays the file gives.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QEnterEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QLineEdit, QVBoxLayout, QWidget

from medviewer.core import mpr
from medviewer.core.display import apply_voi_lut, apply_window
from medviewer.core.measurements import Measurement, MeasurementKind
from medviewer.core.volume import Presentation, VoiTransform, Volume
from medviewer.ui.app import make_settings
from medviewer.ui.volume_view import OVERLAY_COLOUR, Layout, VolumeView
from tests.support.windows import grab, shown, viewport_point

AXIAL, CORONAL, SAGITTAL = mpr.Plane.AXIAL, mpr.Plane.CORONAL, mpr.Plane.SAGITTAL
EDGE_ORDER = ("left", "right", "top", "bottom")


def radiograph(frames: int = 1, **fields: object) -> Volume:
    """A DX-like image: 0.2 mm detector pixels, orientation only from PatientOrientation."""
    y, x = np.mgrid[0:240, 0:200]
    base = (500 + 10 * x + 5 * y).astype(np.uint16)
    array = np.stack([base + 1000 * k for k in range(frames)])
    defaults: dict[str, object] = {
        "modality": "DX",
        "description": "Chest PA",
        "presentation": Presentation.IMAGE,
        "orientation_known": False,
        "patient_orientation": ("L", "F"),
        "spacing_note": "pixel size at the detector",
    }
    defaults.update(fields)
    return Volume(array, spacing=(0.2, 0.2, 1.0), origin=(0, 0, 0), **defaults)


def cine_loop(frames: int = 30, frame_time_ms: float | None = 40.0) -> Volume:
    """An ultrasound loop: a bright disc moving right, one step per frame, no pixel size."""
    yy, xx = np.mgrid[0:120, 0:160]
    array = np.stack([np.where((xx - 20 - 4 * t) ** 2 + (yy - 60) ** 2 < 200, 220, 40) for t in range(frames)])
    return Volume(
        array.astype(np.uint8),
        spacing=(1, 1, 1),
        origin=(0, 0, 0),
        modality="US",
        presentation=Presentation.CINE,
        orientation_known=False,
        spacing_known=False,
        frame_time_ms=frame_time_ms,
    )


def colour_photo() -> Volume:
    """Three solid colour bands over a near-white strip, with the luminance as ``array``."""
    rgb = np.zeros((1, 120, 180, 3), np.uint8)
    rgb[0, :, :60] = (200, 30, 30)
    rgb[0, :, 60:120] = (30, 200, 30)
    rgb[0, :, 120:] = (30, 30, 200)
    rgb[0, 90:, :] = (250, 240, 230)
    luminance = rgb @ np.array([0.299, 0.587, 0.114])
    return Volume(
        luminance.astype(np.float32),
        spacing=(0.5, 0.5, 1.0),
        origin=(0, 0, 0),
        modality="XC",
        presentation=Presentation.IMAGE,
        orientation_known=False,
        colour=rgb,
    )


@pytest.fixture
def viewer(qtbot) -> VolumeView:
    return shown(qtbot, VolumeView(make_settings()))


def letters(viewer: VolumeView, plane: mpr.Plane = AXIAL) -> list[str]:
    return [viewer.views[plane].edge_labels[edge].text() for edge in EDGE_ORDER]


def wheel(view, down: bool = True) -> None:
    centre = QPointF(view.viewport().rect().center())
    event = QWheelEvent(
        centre,
        view.viewport().mapToGlobal(centre),
        QPoint(),
        QPoint(0, -120 if down else 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view.viewport(), event)


def screen_colour(viewer: VolumeView, row: int, col: int) -> np.ndarray:
    """The colour on screen at the centre of pixel (row, col) of the axial (image) view."""
    su, sv = mpr.pixel_size(viewer.volume.spacing, AXIAL)
    view = viewer.views[AXIAL]
    pixels = grab(view)
    point = viewport_point(viewer, AXIAL, (col + 0.5) * su, (row + 0.5) * sv)
    ratio = pixels.shape[1] / view.width()
    return pixels[int(point.y() * ratio), int(point.x() * ratio)].astype(int)


def hover(viewer: VolumeView, row: int, col: int) -> None:
    su, sv = mpr.pixel_size(viewer.volume.spacing, AXIAL)
    target = viewer.views[AXIAL].viewport()
    pos = QPointF(viewport_point(viewer, AXIAL, (col + 0.5) * su, (row + 0.5) * sv))
    none = Qt.MouseButton.NoButton
    event = QMouseEvent(
        QMouseEvent.Type.MouseMove, pos, target.mapToGlobal(pos), none, none, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(target, event)


# 2-D images ---------------------------------------------------------------------------------------------


def test_a_radiograph_is_one_view_with_the_files_letters_and_image_numbers(qtbot, viewer: VolumeView):
    image = radiograph(frames=3)
    viewer.set_volume(image)
    qtbot.wait(10)
    assert viewer.views[AXIAL].isVisible() and viewer.views[AXIAL].width() > 1000
    assert not viewer.views[CORONAL].isVisible() and not viewer.views[SAGITTAL].isVisible()
    assert not viewer.layout_action.isVisible()
    assert letters(viewer) == ["R", "L", "H", "F"]  # rows run to the patient's left, columns to the feet
    assert not viewer.views[AXIAL].v_line.isVisible()  # no crosshair over a single image
    corner = viewer.views[AXIAL].corner_labels
    assert corner["bottom_left"].text() == "Image 1/3"  # no slice position: frames are not positions
    assert corner["top_right"].text() == "DX\nChest PA"
    np.testing.assert_array_equal(viewer.views[AXIAL].image.image, image.array[0])
    wheel(viewer.views[AXIAL])
    assert corner["bottom_left"].text() == "Image 2/3"
    np.testing.assert_array_equal(viewer.views[AXIAL].image.image, image.array[1])
    qtbot.keyClick(viewer, Qt.Key.Key_Right)
    assert corner["bottom_left"].text() == "Image 3/3"
    viewer.set_layout(Layout.THREE)  # asking for MPR never reformats an image
    assert not viewer.views[CORONAL].isVisible()
    assert viewer.views[AXIAL].isVisible()
    # A real pixel size: a millimetre scale bar, with what the size means beside it.
    bar, note = viewer.views[AXIAL].scale_bar, viewer.views[AXIAL].scale_note
    assert bar.isVisible() and bar.length_mm() > 0
    assert note.isVisible() and note.text() == "pixel size at the detector"
    hover(viewer, 100, 50)
    assert viewer.probe.text() == f"image 3  ·  pixel (50, 100)  ·  {image.array[2, 100, 50]}"


def test_multi_letter_orientation_gets_the_opposite_of_each_letter(viewer: VolumeView):
    viewer.set_volume(radiograph(patient_orientation=("A", "FR")))
    assert letters(viewer) == ["P", "A", "HL", "FR"]
    assert mpr.opposite_direction("FR") == "HL"
    assert mpr.opposite_direction("X") == ""  # not a patient direction: blank, never guessed


def test_unknown_orientation_and_pixel_size_draw_no_letters_and_no_millimetres(qtbot, viewer: VolumeView):
    viewer.set_volume(radiograph(patient_orientation=None, spacing_known=False, spacing_note=""))
    qtbot.wait(10)
    assert letters(viewer) == ["", "", "", ""]
    view = viewer.views[AXIAL]
    assert not view.scale_bar.isVisible()
    assert view.scale_note.isVisible() and "No pixel size" in view.scale_note.text()
    text = viewer.add_measurement(Measurement(MeasurementKind.DISTANCE, AXIAL, 0, [(10.0, 10.0), (40.0, 50.0)]))
    assert text == "50.0 px"  # the spacing is 1 and means pixels
    assert viewer.measurement_panel.texts() == ["Distance (image 1): 50.0 px"]  # not "axial 1"
    # A volume without a known orientation is drawn with no letters either, and no position in mm.
    volume = Volume(np.zeros((4, 20, 20), np.int16), spacing=(1, 1, 1), origin=(0, 0, 0), orientation_known=False)
    viewer.set_volume(volume)
    assert all(letters(viewer, plane) == ["", "", "", ""] for plane in mpr.Plane)
    assert viewer.views[AXIAL].corner_labels["bottom_left"].text() == "Axial 3/4"
    assert viewer.views[CORONAL].isVisible()  # it is still a volume: three views


def test_a_volume_after_an_image_gets_its_three_views_back(qtbot, viewer: VolumeView):
    viewer.set_volume(radiograph())
    volume = Volume(np.zeros((10, 30, 30), np.int16), spacing=(1, 1, 2), origin=(0, 0, 0), modality="CT")
    viewer.set_volume(volume)
    qtbot.wait(10)
    assert all(view.isVisible() for view in viewer.views.values())
    assert viewer.layout_action.isVisible()
    assert letters(viewer) == ["R", "L", "A", "P"]
    assert viewer.views[AXIAL].corner_labels["bottom_left"].text() == "Axial 6/10\n10.0 mm"
    assert viewer.views[AXIAL].v_line.isVisible()


# cine -------------------------------------------------------------------------------------------------


def test_a_cine_loop_plays_at_its_frame_rate_and_loops(qtbot, viewer: VolumeView):
    loop = cine_loop(frames=30, frame_time_ms=40.0)
    viewer.set_volume(loop)
    qtbot.wait(10)
    player = viewer.cine
    assert player.isVisible() and not viewer.views[CORONAL].isVisible()
    assert player.rate_label.text() == "25 fps" and player.timer.interval() == 40
    assert player.frame_label.text() == "Frame 1/30"
    assert viewer.views[AXIAL].corner_labels["bottom_left"].text() == "Frame 1/30"
    started = time.monotonic()
    player.play()
    qtbot.waitUntil(lambda: viewer.index >= 6, timeout=5000)
    assert time.monotonic() - started >= 5 * 0.040  # not faster than the file's rate
    frame = viewer.index
    np.testing.assert_array_equal(viewer.views[AXIAL].image.image, loop.array[frame])
    assert player.frame_label.text() == f"Frame {frame + 1}/30"
    viewer.setFocus()
    qtbot.keyClick(viewer, Qt.Key.Key_Space)
    assert not player.playing
    viewer.show_frame(29)
    player.play()
    qtbot.waitUntil(lambda: viewer.index < 29, timeout=2000)  # past the last frame: back to the first
    player.pause()


def test_the_cine_slider_and_the_wheel_move_the_same_frame(qtbot, viewer: VolumeView):
    loop = cine_loop(frames=12, frame_time_ms=None)
    viewer.set_volume(loop)
    player = viewer.cine
    assert player.rate_label.text() == "frame rate unknown, 10 fps" and player.timer.interval() == 100
    player.slider.setValue(7)
    assert viewer.index == 7
    np.testing.assert_array_equal(viewer.views[AXIAL].image.image, loop.array[7])
    assert viewer.views[AXIAL].corner_labels["bottom_left"].text() == "Frame 8/12"
    wheel(viewer.views[AXIAL], down=False)
    assert viewer.index == 6 and player.slider.value() == 6 and player.frame_label.text() == "Frame 7/12"
    viewer.set_volume(radiograph())  # not a loop: no player
    assert not player.isVisible() and not player.playing


# colour -----------------------------------------------------------------------------------------------


def test_colour_images_are_drawn_in_their_own_colours(qtbot, viewer: VolumeView):
    photo = colour_photo()
    viewer.set_volume(photo)
    qtbot.wait(10)
    np.testing.assert_array_equal(viewer.views[AXIAL].image.image, photo.colour[0])
    assert viewer.window() == (256, 128)
    assert viewer.views[AXIAL].corner_labels["bottom_right"].text() == "W 256 L 128"
    for row, col in ((40, 30), (40, 90), (40, 150), (100, 90)):
        np.testing.assert_array_equal(screen_colour(viewer, row, col), photo.colour[0, row, col])
    assert not viewer.colormap_box.isEnabled()
    hover(viewer, 40, 30)
    assert viewer.probe.text().endswith("R 200 G 30 B 30")
    viewer.set_window(100, 100)  # the window acts on each channel
    np.testing.assert_array_equal(viewer.views[AXIAL].image.image, apply_window(photo.colour[0], 100, 100))
    assert tuple(screen_colour(viewer, 40, 30)) == (255, 0, 0)
    viewer.set_volume(radiograph())
    assert viewer.colormap_box.isEnabled()


# VOI LUT and VOI LUT Function -----------------------------------------------------------------------------


def test_a_voi_lut_maps_the_pixels_before_the_window(viewer: VolumeView):
    lut = (np.sqrt(np.arange(4096)) * 64).astype(np.uint16)  # a non-linear table, as a mammogram's
    image = radiograph(voi=VoiTransform(lut=lut, first_mapped=0))
    viewer.set_volume(image)
    mapped = apply_voi_lut(image.array[0], image.voi)
    np.testing.assert_array_equal(viewer.views[AXIAL].image.image, mapped)
    low, high = float(lut.min()), float(lut.max())
    assert viewer.window() == pytest.approx((high - low, (high + low) / 2))
    assert [p.percentiles for p in viewer.presets()][0] == (1, 99)  # presets act on the table's output
    viewer.apply_preset(1)
    assert viewer.window()[1] == pytest.approx(np.percentile(mapped, [1, 99]).mean(), rel=0.05)


@pytest.mark.parametrize("function", ["SIGMOID", "LINEAR_EXACT"])
def test_sigmoid_and_exact_windows_are_drawn_with_the_dicom_formula(viewer: VolumeView, function: str):
    lut = np.arange(4096, dtype=np.uint16)[::-1].copy()
    image = radiograph(window=(800.0, 1500.0), voi=VoiTransform(lut=lut, function=function))
    viewer.set_volume(image)
    view = viewer.views[AXIAL]
    expected = apply_window(apply_voi_lut(image.array[0], image.voi), 800.0, 1500.0, function=function)
    np.testing.assert_array_equal(view.image.image, expected)
    assert tuple(view.image.levels) == (0, 255)


def test_monochrome1_stays_inverted_with_a_sigmoid_window(qtbot, viewer: VolumeView):
    image = radiograph(invert_display=True, window=(400.0, 1500.0), voi=VoiTransform(function="SIGMOID"))
    viewer.set_volume(image)
    qtbot.wait(10)
    assert viewer.colormap == "inverted grey"
    bright, dark = (239, 199), (0, 0)  # highest and lowest stored values of the image
    assert screen_colour(viewer, *bright).max() < 30 and screen_colour(viewer, *dark).min() > 225


# overlay planes ------------------------------------------------------------------------------------------


def test_overlay_planes_are_drawn_and_toggled(qtbot, viewer: VolumeView):
    overlay = np.zeros((1, 240, 200), bool)
    overlay[0, 10:14, 20:120] = True
    viewer.set_volume(radiograph(overlay=overlay))
    qtbot.wait(10)
    item = viewer.views[AXIAL].overlay_planes
    assert viewer.overlays_action.isVisible() and viewer.overlays_action.isChecked()
    assert (item.image[overlay[0]] == OVERLAY_COLOUR).all() and (item.image[~overlay[0], 3] == 0).all()
    assert tuple(screen_colour(viewer, 12, 60)) == OVERLAY_COLOUR[:3]
    viewer.overlays_action.trigger()
    assert item.image is None
    assert tuple(screen_colour(viewer, 12, 60)) != OVERLAY_COLOUR[:3]
    viewer.set_volume(radiograph())
    assert not viewer.overlays_action.isVisible()


# the small things -----------------------------------------------------------------------------------------


def test_an_empty_view_shows_no_crosshair_and_no_scale_bar(qtbot):
    empty = shown(qtbot, VolumeView(make_settings()))
    for view in empty.views.values():
        assert not view.v_line.isVisible() and not view.h_line.isVisible()
        assert not view.scale_bar.isVisible() and not view.scale_note.isVisible()
        assert all(label.text() == "" for label in view.edge_labels.values())
    assert not empty.preset_box.isEnabled()


def test_a_new_volume_resets_the_preset_box_and_the_probe(qtbot, viewer: VolumeView):
    volume = Volume(np.arange(8000, dtype=np.int16).reshape(20, 20, 20), spacing=(1, 1, 1), origin=(0, 0, 0))
    viewer.set_volume(volume)
    viewer.apply_preset(2)
    assert viewer.preset_box.currentIndex() == 2
    viewer._window_drag(30, 0)  # dragged off the preset: the box no longer claims it
    assert viewer.preset_box.currentIndex() == -1 and viewer.preset_box.placeholderText() == "Custom window"
    viewer.views[AXIAL].hovered.emit(5.0, 5.0)
    assert viewer.probe.text()
    viewer.set_volume(radiograph())
    assert viewer.preset_box.currentText() == "0 · Default" and viewer.probe.text() == ""
    hover(viewer, 10, 10)
    assert viewer.probe.text()
    QApplication.sendEvent(viewer.views[AXIAL], QEvent(QEvent.Type.Leave))  # the mouse left the image
    assert viewer.probe.text() == ""


def test_keys_work_without_a_click_and_a_focus_click_does_not_move_the_crosshair(qtbot):
    window = QWidget()
    search = QLineEdit()  # where someone may be typing, e.g. a patient search
    viewer = VolumeView(make_settings())
    column = QVBoxLayout(window)
    column.addWidget(search)
    column.addWidget(viewer, 1)
    shown(qtbot, window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    volume = Volume(np.arange(8000, dtype=np.int16).reshape(20, 20, 20), spacing=(1, 1, 1), origin=(0, 0, 0))
    search.clearFocus()
    viewer.set_volume(volume)
    axial = viewer.views[AXIAL]
    assert axial.hasFocus()  # a number key works at once, without a click
    qtbot.keyClick(axial, Qt.Key.Key_2)
    assert viewer.preset_box.currentIndex() == 2
    viewer.preset_box.setFocus()
    QApplication.sendEvent(axial, QEnterEvent(QPointF(5, 5), QPointF(5, 5), QPointF(5, 5)))
    assert axial.hasFocus()  # the mouse over the image brings the keys with it
    search.setFocus()
    viewer.set_volume(volume)
    QApplication.sendEvent(axial, QEnterEvent(QPointF(5, 5), QPointF(5, 5), QPointF(5, 5)))
    assert search.hasFocus()  # neither a new volume nor the mouse takes the keyboard from someone typing
    before = viewer.crosshair.copy()
    target = viewport_point(viewer, AXIAL, 3.5, 4.5)
    qtbot.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, pos=target)
    assert axial.hasFocus()
    np.testing.assert_array_equal(viewer.crosshair, before)  # that click only brought the keyboard here
    qtbot.keyClick(axial, Qt.Key.Key_3)
    assert viewer.preset_box.currentIndex() == 3
    qtbot.mouseClick(axial.viewport(), Qt.MouseButton.LeftButton, pos=target, delay=50)
    assert viewer.crosshair[1:] == pytest.approx([4, 3], abs=0.1)  # to a screen pixel


@pytest.mark.parametrize(("name", "plane"), [("CT_small.dcm", mpr.Plane.AXIAL), ("MR2_UNCI.dcm", mpr.Plane.SAGITTAL)])
def test_a_single_slice_is_shown_in_the_one_view_that_shows_it_with_its_letters(
    qtbot, viewer: VolumeView, name: str, plane: mpr.Plane
):
    """A one-slice CT (axial) and a one-slice sagittal MR: the other two views would be one-voxel strips."""
    from pydicom.data import get_testdata_file

    from medviewer.io import open_volume

    volume = open_volume(get_testdata_file(name))
    viewer.set_volume(volume)
    qtbot.wait(10)
    assert [p for p in viewer.views if viewer.views[p].isVisible()] == [plane]
    assert viewer.drawn_planes() == (plane,) and not viewer.layout_action.isVisible()
    letters = {edge: label.text() for edge, label in viewer.views[plane].edge_labels.items()}
    expected = mpr.edge_letters(volume.direction, plane)
    assert letters == expected and all(expected.values())  # from the file's orientation, all four edges
