"""The main window as a user sees it: real images drawn, patients listed, errors shown, settings kept."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import openslide
import pytest
from PySide6.QtCore import QPointF, Qt

from medviewer.core.mpr import Plane
from medviewer.ui.app import make_settings
from medviewer.ui.main_window import SLIDE_TAB, VOLUME_TAB, MainWindow
from tests.support.paths import real_file
from tests.support.windows import shown

LOAD_TIMEOUT_MS = 60_000


@pytest.fixture
def window(qtbot) -> MainWindow:
    return shown(qtbot, MainWindow(make_settings()), 1600, 1000)


def open_and_wait(qtbot, window: MainWindow, *paths: Path) -> None:
    window.open_paths(list(paths), activate_first_only=True)
    qtbot.waitUntil(lambda: not window.busy(), timeout=LOAD_TIMEOUT_MS)


def grab_array(widget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(widget.grab().toImage().Format.Format_RGB888)
    ptr = image.constBits()
    return (
        np.array(ptr, dtype=np.uint8)
        .reshape(image.height(), image.bytesPerLine())[:, : image.width() * 3]
        .reshape(image.height(), image.width(), 3)
    )


@pytest.mark.slow
def test_demo_ct_is_shown_in_three_views_with_ct_window(qtbot, window: MainWindow, demo_dir: Path):
    open_and_wait(qtbot, window, demo_dir / "ct", demo_dir / "slide.tiff")
    view = window.volume_view
    volume = view.volume
    assert window.tabs.currentIndex() == VOLUME_TAB
    assert view.index == volume.shape[0] // 2
    np.testing.assert_array_equal(view.views[Plane.AXIAL].image.image, volume.array[volume.shape[0] // 2])
    assert view.window() == pytest.approx((400, 40))
    assert view.views[Plane.AXIAL].corner_labels["bottom_left"].text().startswith("Axial 61/120")
    qtbot.wait(50)
    for plane in Plane:
        pixels = grab_array(view.views[plane]).astype(int)
        assert (pixels.max(axis=2) > 200).mean() > 0.005  # bone drawn white
        assert (pixels.max(axis=2) < 15).mean() > 0.2  # air and the background black


def test_demo_slide_thumbnail_is_drawn_in_level0_coordinates(qtbot, window: MainWindow, demo_dir: Path):
    open_and_wait(qtbot, window, demo_dir / "slide.tiff")
    assert window.tabs.currentIndex() == SLIDE_TAB
    view = window.slide_view
    rect = view.overview.mapRectToView(view.overview.boundingRect())
    assert (rect.width(), rect.height()) == (20480, 15360)
    overview = view.overview.image
    assert max(overview.shape[:2]) == 2048
    qtbot.wait(50)
    pixels = grab_array(view.graphics).astype(int)
    pink = (pixels[..., 0] - pixels[..., 1] > 40) & (pixels[..., 2] - pixels[..., 1] > 20)
    assert pink.mean() > 0.05  # eosin-stained tissue is on screen
    assert "0.5 µm/px" in view.caption.text()


@pytest.mark.slow
def test_each_slide_opened_from_the_window_is_fully_refined_once_the_window_is_idle(
    qtbot, window: MainWindow, demo_dir: Path, tmp_path: Path
):
    """The screenshot script and users' scripts wait for an idle window; idle must mean every visible tile
    is drawn, including the tiles asked for after the slide appears and the last ones still in the signal queue."""
    cmu = tmp_path / "CMU-1-Small-Region.svs"
    shutil.copy(real_file("wsi/CMU-1-Small-Region.svs"), cmu)
    view = window.slide_view
    for path in (demo_dir / "slide.tiff", cmu, demo_dir / "slide.tiff"):
        window.open_paths([path])
        assert window.wait_until_idle(LOAD_TIMEOUT_MS)
        assert view.slide.path == path and view.visible_tiles and view.is_refined()
    reference = openslide.OpenSlide(str(demo_dir / "slide.tiff"))
    for key in view.visible_tiles:
        location, size = view.pyramid.tile_region(key)
        expected = np.asarray(reference.read_region(location, key[0], size))
        np.testing.assert_array_equal(view.tile_items[key].image, expected)


def test_bad_paths_are_reported_and_the_window_carries_on(qtbot, window: MainWindow, tmp_path: Path, demo_dir: Path):
    missing = tmp_path / "missing-study"
    empty = tmp_path / "empty"
    empty.mkdir()
    text = tmp_path / "report.dcm"
    text.write_text("Findings: none\n")
    open_and_wait(qtbot, window, missing, empty, text)
    messages = window.message_bar.messages
    assert any(str(missing) in m and "no such file or folder" in m for m in messages)
    assert any(str(empty) in m and "no DICOM images were found" in m for m in messages)
    assert any(str(text) in m and "not a DICOM file" in m for m in messages)
    assert window.message_bar.isVisible()
    assert window.volume_view.volume is None  # nothing half-loaded is shown
    open_and_wait(qtbot, window, demo_dir / "ct2")
    assert window.volume_view.volume is not None


def test_keys_move_through_slices(qtbot, window: MainWindow, demo_dir: Path):
    open_and_wait(qtbot, window, demo_dir / "ct2")
    view = window.volume_view
    start = view.index
    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_PageDown)
    assert view.index == start + 1
    np.testing.assert_array_equal(view.views[Plane.AXIAL].image.image, view.volume.array[start + 1])
    qtbot.keyClick(view, Qt.Key.Key_PageUp)
    qtbot.keyClick(view, Qt.Key.Key_PageUp)
    assert view.index == start - 1


def test_recent_files_and_layout_persist_across_windows(qtbot, demo_dir: Path, medviewer_home: Path):
    first = MainWindow(make_settings())
    qtbot.addWidget(first)
    first.show()
    open_and_wait(qtbot, first, demo_dir / "ct2")
    first.close()
    assert (medviewer_home / "config" / "medviewer.ini").exists()
    second = MainWindow(make_settings())
    qtbot.addWidget(second)
    assert second.recent_paths()[0] == str((demo_dir / "ct2").absolute())
    assert [a.text() for a in second.recent_menu.actions()] == second.recent_paths()


def test_dropping_a_folder_opens_it(qtbot, window: MainWindow, demo_dir: Path):
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(demo_dir / "ct2"))])
    event = QDropEvent(
        QPointF(400, 300), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(event)
    qtbot.waitUntil(lambda: not window.busy(), timeout=LOAD_TIMEOUT_MS)
    assert window.volume_view.volume.shape == (48, 256, 256)
    assert window.tabs.currentIndex() == VOLUME_TAB


def test_dicom_seg_overlay_is_drawn_over_its_real_ct(qtbot, window: MainWindow):
    import pydicom.data

    from tests.support.paths import real_file

    ct2 = Path(pydicom.data.get_testdata_file("dicomdirtests/77654033/CT2/17106")).parent
    open_and_wait(qtbot, window, ct2)
    window.open_overlay(real_file("highdicom/seg_image_ct_binary.dcm"))
    qtbot.waitUntil(lambda: not window.busy(), timeout=LOAD_TIMEOUT_MS)
    view = window.volume_view
    label_map = view.label_map
    assert label_map is not None and label_map.voxel_counts()
    labelled = np.argwhere(label_map.array > 0)
    target = labelled[len(labelled) // 2]
    view.set_crosshair(target)
    view.set_overlay_opacity(1.0)
    axial = view.views[Plane.AXIAL]
    drawn = axial.labels.image
    rows, cols = np.nonzero(drawn[..., 3])
    assert len(rows) == (label_map.array[view.slice_index(Plane.AXIAL)] > 0).sum()
    colour = label_map.colours[int(label_map.array[tuple(target)])]
    assert tuple(drawn[rows[0], cols[0], :3]) == colour
    assert window.overlay_action.isEnabled()


def test_opens_and_failed_opens_are_in_the_audit_trail(qtbot, window: MainWindow, demo_dir: Path, tmp_path: Path):
    from medviewer.catalog import audit

    open_and_wait(qtbot, window, demo_dir / "ct2", tmp_path / "missing")
    events = {(e.event, e.subject) for e in audit.events()}
    assert ("open", audit.path_subject(demo_dir / "ct2")) in events
    assert ("failed_open", audit.path_subject(tmp_path / "missing")) in events
    assert audit.verify().ok


def test_the_tool_dock_follows_the_tab(qtbot, window: MainWindow):
    from PySide6.QtWidgets import QDockWidget

    def raised(name: str) -> bool:
        dock = window.findChild(QDockWidget, name)
        return not dock.visibleRegion().isEmpty()

    assert window.tabs.currentIndex() == VOLUME_TAB and raised("measureDock") and not raised("annotationDock")
    window.tabs.setCurrentIndex(SLIDE_TAB)
    qtbot.wait(10)
    assert raised("annotationDock") and not raised("measureDock")
