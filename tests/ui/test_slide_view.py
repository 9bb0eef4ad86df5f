"""The slide browser on real slides: tiles drawn as OpenSlide decodes them, never blank, annotations kept."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import numpy as np
import openslide
import pytest
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from medviewer.annotations.geojson import read_geojson
from medviewer.annotations.model import AnnotationKind
from medviewer.catalog.pseudonyms import file_alias
from medviewer.io import open_slide
from medviewer.ui.annotation_layer import LengthLabel, Tool
from medviewer.ui.app import make_settings
from medviewer.ui.slide_view import SlideView
from medviewer.ui.tile_loader import TileLoader
from tests.support.paths import real_file
from tests.support.windows import shown

TIMEOUT_MS = 30_000


@pytest.fixture
def cmu_copy(tmp_path: Path) -> Path:
    """A copy of the real Aperio slide in a folder of its own, so its annotation sidecar lands there."""
    path = tmp_path / "CMU-1-Small-Region.svs"
    shutil.copy(real_file("wsi/CMU-1-Small-Region.svs"), path)
    return path


def open_view(qtbot, path: Path, cache_mb: int | None = None) -> SlideView:
    settings = make_settings()
    if cache_mb is not None:
        settings.setValue("slide/cache_mb", cache_mb)
    view = shown(qtbot, SlideView(settings))
    slide = open_slide(path)
    view.set_slide(slide, slide.thumbnail(1024))
    settle(qtbot, view)
    return view


def settle(qtbot, view: SlideView) -> None:
    qtbot.waitUntil(lambda: not view.busy() and view.is_refined(), timeout=TIMEOUT_MS)


def grab(widget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    return np.array(image.constBits(), dtype=np.uint8).reshape(h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3)


def screen_point(view: SlideView, x: float, y: float) -> QPointF:
    return QPointF(view.graphics.mapFromScene(view.box.mapViewToScene(QPointF(x, y))))


def send(view: SlideView, kind, point: QPointF, button, buttons, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    target = view.graphics.viewport()
    QApplication.sendEvent(target, QMouseEvent(kind, point, target.mapToGlobal(point), button, buttons, modifiers))


def drag(qtbot, view: SlideView, start: tuple[float, float], end: tuple[float, float]) -> None:
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    send(view, QMouseEvent.Type.MouseButtonPress, screen_point(view, *start), left, left)
    for t in np.linspace(0, 1, 8)[1:]:
        point = screen_point(view, start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]))
        send(view, QMouseEvent.Type.MouseMove, point, none, left)
        qtbot.wait(2)
    send(view, QMouseEvent.Type.MouseButtonRelease, screen_point(view, *end), left, none)


def click(view: SlideView, x: float, y: float, double: bool = False) -> None:
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    point = screen_point(view, x, y)
    send(view, QMouseEvent.Type.MouseButtonPress, point, left, left)
    send(view, QMouseEvent.Type.MouseButtonRelease, point, left, none)
    if double:
        send(view, QMouseEvent.Type.MouseButtonDblClick, point, left, left)
        send(view, QMouseEvent.Type.MouseButtonRelease, point, left, none)


def test_tiles_are_drawn_exactly_as_openslide_decodes_them(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy)
    view.set_magnification(20)  # 0.5 µm per screen pixel: level 0 of this 0.499 µm/px slide
    settle(qtbot, view)
    assert view.target_level == 0 and view.visible_tiles
    reference = openslide.OpenSlide(str(cmu_copy))
    for key in view.visible_tiles[:4]:
        location, size = view.pyramid.tile_region(key)
        drawn = view.tile_items[key].image
        np.testing.assert_array_equal(drawn, np.asarray(reference.read_region(location, key[0], size)))
    pixels = grab(view.graphics).astype(int)
    stained = (pixels[..., 0] - pixels[..., 1] > 30).mean()
    assert stained > 0.1  # eosin-pink tissue fills the view


def test_a_jump_shows_the_overview_at_once_and_refines(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy)
    view.loader.set_slide(view.slide)  # forget every decoded tile: the jump lands on an uncached place
    for item in list(view.tile_items.values()):
        view.box.removeItem(item)
    view.tile_items.clear()
    view.set_magnification(40)
    view.centre_on(1500, 2000)
    view.refresh()
    assert view.overview.isVisible()
    first = grab(view.graphics).astype(int)
    assert (first.std(axis=(0, 1)) > 5).all()  # not a blank view: the thumbnail is drawn underneath
    settle(qtbot, view)
    assert view.is_refined() and all(key[0] == 0 for key in view.visible_tiles)


def test_cache_stays_within_its_byte_limit_while_panning(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy, cache_mb=8)  # 8 tiles of 512 x 512 RGBA; the slide has 30
    assert view.loader.cache.limit_bytes == 8 * 1024 * 1024
    view.set_magnification(40)
    for x in range(300, 2200, 400):
        view.centre_on(x, 1500)
        settle(qtbot, view)
        assert view.loader.cache.bytes <= view.loader.cache.limit_bytes


def test_scale_bar_magnification_and_missing_mpp(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy)
    view.set_magnification(10)
    assert view.level0_per_screen_pixel() == pytest.approx(1 / 0.499, rel=0.02)  # 10x: 1 µm per screen pixel
    assert view.scale_bar.isVisible() and view.scale_bar.pixels_per_mm == pytest.approx(1000, rel=0.02)
    no_mpp = open_view(qtbot, real_file("wsi/tcga-cr-7395-01a-01-ts1.svs"))
    assert no_mpp.slide.mpp is None
    assert not no_mpp.scale_bar.isVisible() and "No pixel size" in no_mpp.scale_note.text()
    assert no_mpp.annotation_panel.tree.headerItem().text(2) == "Area (px²)"


def test_minimap_click_moves_the_view(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy)
    view.set_magnification(20)
    minimap = view.minimap
    target = QPointF(minimap.width() * 0.25, minimap.height() * 0.75)
    event = QMouseEvent(
        QMouseEvent.Type.MouseButtonPress,
        target,
        minimap.mapToGlobal(target),
        Qt.MouseButton.LeftButton,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(minimap, event)
    centre = view.view_rect().center()
    width, height = view.slide.dimensions
    assert centre.x() == pytest.approx(width * 0.25, rel=0.03) and centre.y() == pytest.approx(height * 0.75, rel=0.03)


def test_tissue_and_heatmap_overlays_are_placed_in_level0_pixels(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy)
    view.tissue_box.setChecked(True)
    assert view.tissue_item.isVisible()
    rect = view.tissue_item.mapRectToView(view.tissue_item.boundingRect())
    assert (rect.width(), rect.height()) == view.slide.dimensions
    values = np.array([[0.1, 0.9], [0.5, np.nan]], dtype=np.float32)
    view.set_heatmap(values, origin=(100, 200), patch_size=(500, 400), name="tumour", threshold=0.3)
    heat = view.heat_item.mapRectToView(view.heat_item.boundingRect())
    assert (heat.x(), heat.y(), heat.width(), heat.height()) == (100, 200, 1000, 800)
    rgba = view.heat_item.image
    assert rgba[0, 0, 3] == 0 and rgba[1, 1, 3] == 0  # below the threshold, and no value: transparent
    assert rgba[0, 1, 3] == 255 and rgba[0, 1, 0] > rgba[0, 1, 2]  # the top of the jet map: red
    assert view.legend.isVisible() and view.legend.title == "tumour"


def test_drawing_editing_undo_and_autosave(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy)
    document = view.document
    view.annotation_panel.class_box.setCurrentText("Tumor")
    view.set_tool(Tool.RECTANGLE)
    drag(qtbot, view, (400.0, 500.0), (900.0, 1100.0))
    rectangle = document.annotations[-1]
    assert rectangle.kind is AnnotationKind.RECTANGLE and rectangle.classification.name == "Tumor"
    x0, y0, x1, y1 = rectangle.bounds()
    assert (x0, y0, x1, y1) == pytest.approx((400, 500, 900, 1100), abs=4)  # to a screen pixel
    row = view.annotation_panel.rows()[0]
    assert row[1] == "Tumor" and float(row[2].replace(",", "")) == pytest.approx(
        (x1 - x0) * (y1 - y0) * 0.499**2, rel=0.01
    )
    view.set_tool(Tool.POLYGON)
    for x, y in ((1200, 400), (1600, 420), (1500, 900)):
        click(view, x, y)
    click(view, 1250, 850, double=True)
    assert document.annotations[-1].kind is AnnotationKind.POLYGON and len(document.annotations[-1].vertices) == 4
    view.set_tool(Tool.POINT)
    click(view, 300, 300)
    assert document.annotations[-1].kind is AnnotationKind.POINTS
    view.set_tool(Tool.MOVE)
    click(view, 650, 800)
    assert view.annotations.selected == {rectangle.id}
    drag(qtbot, view, (650.0, 800.0), (750.0, 850.0))
    assert document.get(rectangle.id).bounds()[0] == pytest.approx(x0 + 100, abs=4)
    view.undo()
    assert document.get(rectangle.id).bounds()[0] == pytest.approx(x0, abs=0.01)  # the whole drag, one step
    view.redo()
    document.classify({rectangle.id}, "Stroma")  # one row rewritten in place, the others untouched
    assert [row[1] for row in view.annotation_panel.rows()] == ["Stroma", "Tumor", "Tumor"]
    document.undo()
    view.annotations.delete_selected()
    assert rectangle.id not in document and len(view.annotation_panel.rows()) == 2
    view.undo()
    assert rectangle.id in document
    sidecar = cmu_copy.with_name(cmu_copy.name + ".annotations.geojson")
    qtbot.waitUntil(sidecar.exists, timeout=5000)  # saved within seconds of the edit, by the timer
    qtbot.waitUntil(lambda: not document.dirty, timeout=5000)
    saved = {a.id: a for a in read_geojson(sidecar)}
    assert set(saved) == {a.id for a in document.annotations}
    np.testing.assert_allclose(saved[rectangle.id].vertices, document.get(rectangle.id).vertices, atol=0.01)
    assert saved[rectangle.id].classification.colour == (200, 0, 0)


def test_annotations_come_back_when_the_slide_is_reopened(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy)
    view.set_tool(Tool.ELLIPSE)
    drag(qtbot, view, (500.0, 500.0), (800.0, 700.0))
    view.shutdown()  # quitting saves at once
    again = open_view(qtbot, cmu_copy)
    assert [a.kind for a in again.document.annotations] == [AnnotationKind.ELLIPSE]
    assert again.annotations.items  # drawn


def test_a_damaged_sidecar_is_kept_and_reported(qtbot, cmu_copy: Path):
    sidecar = cmu_copy.with_name(cmu_copy.name + ".annotations.geojson")
    sidecar.write_text('{"type": "FeatureCollection", "features": [')
    messages: list[str] = []
    view = SlideView(make_settings())
    qtbot.addWidget(view)
    view.message.connect(messages.append)
    slide = open_slide(cmu_copy)
    view.set_slide(slide, slide.thumbnail(512))
    assert any(str(sidecar) in m and ".corrupt-" in m for m in messages)
    backups = list(cmu_copy.parent.glob("*.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_text().startswith('{"type": "FeatureCollection"')


def test_label_and_macro_are_shown_only_on_request_with_a_caution(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy)
    assert not hasattr(view, "associated_dialog")
    view.show_associated_images()
    dialog = view.associated_dialog
    texts = " ".join(label.text() for label in dialog.findChildren(type(view.caption)))
    assert "may show patient" in texts and "label" in texts and "macro" in texts
    assert QRectF(dialog.rect()).width() > 0


def test_a_qupath_export_imports_with_classes_and_colours_and_exports_again(qtbot, cmu_copy: Path, tmp_path: Path):
    from medviewer.ui.main_window import MainWindow

    window = MainWindow(make_settings())
    qtbot.addWidget(window)
    slide = open_slide(cmu_copy)
    window.slide_view.set_slide(slide, slide.thumbnail(512))
    source = real_file("annotations/qupath_0.5_export.geojson")
    expected = read_geojson(source)
    window.import_annotations(source)
    document = window.slide_view.document
    assert len(document) == len(expected)
    for original in expected:
        imported = document.get(original.id)
        np.testing.assert_allclose(imported.vertices, original.vertices, atol=0.01)
        if original.classification is not None:
            assert document.class_named(original.classification.name) is not None
    classes = {row[1] for row in window.slide_view.annotation_panel.rows()} - {""}
    assert classes == {a.classification.name for a in expected if a.classification}
    window.import_annotations(source)  # the same file twice: matched by id, nothing doubled, the skip said
    assert len(document) == len(expected)
    assert any(f"{len(expected)} annotation(s) already on this slide" in m for m in window.message_bar.messages)
    window.slide_view.export_annotations(tmp_path / "export")
    assert window.wait_until_idle(10_000)
    out = tmp_path / "export.geojson"
    assert window.statusBar().currentMessage() == "Saved export.geojson"
    assert {a.id for a in read_geojson(out)} == {a.id for a in expected}
    window.import_annotations(tmp_path / "missing.geojson")
    assert any("missing.geojson" in m for m in window.message_bar.messages)
    window.slide_view.shutdown()


def test_a_corrupt_tile_is_drawn_striped_reported_once_and_browsing_goes_on(qtbot, tmp_path: Path):
    import tifffile

    damaged = tmp_path / "damaged.svs"
    shutil.copy(real_file("wsi/CMU-1-Small-Region.svs"), damaged)
    with tifffile.TiffFile(damaged) as tif:
        page = tif.pages[0]
        offset = page.dataoffsets[-(-page.imagewidth // page.tilewidth) + 1]  # the stored tile at (1, 1)
    with open(damaged, "r+b") as handle:
        handle.seek(offset)
        handle.write(bytes(64))
    messages: list[str] = []
    view = shown(qtbot, SlideView(make_settings()))
    view.message.connect(messages.append)
    slide = open_slide(damaged)
    view.set_slide(slide, slide.thumbnail(512))
    view.set_magnification(40)
    view.centre_on(300, 300)
    settle(qtbot, view)
    striped = view.tile_items[(0, 0, 0)].image
    assert tuple(striped[0, 0]) == (220, 0, 0, 255) and (striped[..., 1] == 255).any()
    neighbour = view.tile_items[(0, 1, 0)].image
    location, size = view.pyramid.tile_region((0, 1, 0))
    intact = openslide.OpenSlide(str(real_file("wsi/CMU-1-Small-Region.svs")))
    np.testing.assert_array_equal(neighbour, np.asarray(intact.read_region(location, 0, size)))
    view.centre_on(1500, 2500)
    settle(qtbot, view)
    view.loader.cache.clear()
    view.centre_on(300, 300)
    settle(qtbot, view)
    assert len(messages) == 1 and str(damaged) in messages[0] and "striped" in messages[0]


def test_edits_survive_a_failed_save_stale_selection_and_reselecting_the_slide(qtbot, cmu_copy: Path, monkeypatch):
    import medviewer.annotations.autosave as autosave

    view = open_view(qtbot, cmu_copy)
    messages: list[str] = []
    view.message.connect(messages.append)
    view.set_tool(Tool.POLYGON)
    click(view, 100, 100)
    click(view, 300, 100, double=True)  # a double-click with two vertices neither closes nor repeats one
    assert len(view.annotations._drawing) == 2 and len(view.document) == 0
    view.set_tool(Tool.RECTANGLE)
    drag(qtbot, view, (400.0, 400.0), (700.0, 600.0))
    rectangle = view.document.annotations[-1]
    view.annotations.select({rectangle.id})
    view.annotations.delete_selected()
    view.annotation_panel._classify_selected()  # the deleted annotation is no longer the panel's selection
    assert view.annotation_panel.selected_ids == set()
    view.undo()
    slide = view.slide
    view.set_slide(slide, view.thumbnail)  # shown again from the patient panel: history kept
    assert view.document.undo_description() is not None
    monkeypatch.setattr(autosave, "write_atomic", _disk_full)
    view.close_annotations()
    qtbot.waitUntil(lambda: not view.jobs.busy(), timeout=10_000)
    rescued = [m for m in messages if "saved to" in m and ".unsaved.geojson" in m]
    assert len(rescued) == 1
    rescue = Path(rescued[0].split("saved to ")[1].split(" instead")[0])
    assert [a.id for a in read_geojson(rescue)] == [rectangle.id]


def _disk_full(path, data) -> None:
    raise OSError(28, "No space left on device", str(path))


def test_the_loader_is_busy_until_a_read_tile_reaches_the_gui_thread(qtbot, cmu_copy: Path):
    """A tile read but not yet handed over still counts: waiting for an idle loader must not stop early."""
    loader = TileLoader(cache_mb=64)
    slide = open_slide(cmu_copy)
    loader.set_slide(slide)
    arrived: list = []
    loader.loaded.connect(lambda key, pixels: arrived.append(key))
    key = (slide.level_count - 1, 0, 0)
    loader.want([key])
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not loader.cached(key) and time.monotonic() < deadline:
        time.sleep(0.01)  # no events processed: the tile's signal waits in the queue
    assert loader.cached(key) and not arrived
    assert loader.busy()
    qtbot.waitUntil(lambda: not loader.busy(), timeout=TIMEOUT_MS)
    assert arrived == [key]
    loader.shutdown()


# measuring, pixel size, status line, points, keys, anonymised caption -----------------------------------


def line_labels(view: SlideView, annotation_id: str) -> list[str]:
    return [item.text for item in view.annotations.items[annotation_id] if isinstance(item, LengthLabel)]


def test_the_ruler_measures_in_microns_while_drawing_and_after_and_is_kept(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy)
    view.set_magnification(10)
    view.centre_on(700, 800)
    settle(qtbot, view)
    view.set_tool(Tool.RULER)
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    send(view, QMouseEvent.Type.MouseButtonPress, screen_point(view, 400, 800), left, left)
    for x in (500, 700, 1000):
        send(view, QMouseEvent.Type.MouseMove, screen_point(view, x, 800), none, left)
        qtbot.wait(20)  # pyqtgraph passes on at most one mouse move per frame
    preview = view.annotations.preview_label
    assert preview.isVisible() and preview.text.endswith(" µm")
    assert float(preview.text.split()[0].replace(",", "")) == pytest.approx(600 * 0.499, rel=0.01)  # while drawing
    send(view, QMouseEvent.Type.MouseButtonRelease, screen_point(view, 1000, 800), left, none)
    assert not preview.isVisible()
    line = view.document.annotations[-1]
    assert line.kind is AnnotationKind.LINE and len(line.vertices) == 2
    np.testing.assert_allclose(line.vertices, [[400, 800], [1000, 800]], atol=3)  # to a screen pixel (2 px here)
    microns = line.perimeter(0.499)
    assert microns == pytest.approx(299.4, rel=0.01)
    assert line_labels(view, line.id) == [f"{microns:,.1f} µm"]  # shown on the slide beside the line
    title, _, area, length = view.annotation_panel.rows()[-1]
    assert title == "Line 1" and area == "" and length == f"{microns:,.1f}"
    assert view.annotation_panel.tree.headerItem().text(3) == "Perimeter / length (µm)"
    qtbot.wait(20)
    pixels = grab(view.graphics).astype(int)
    middle = screen_point(view, *line.vertices.mean(axis=0))
    around = pixels[int(middle.y()) - 3 : int(middle.y()) + 4, int(middle.x()) - 3 : int(middle.x()) + 4]
    yellow = (around[..., 0] > 200) & (around[..., 1] > 200) & (around[..., 2] < 80)
    assert yellow.any()  # the line is drawn on the slide, in the unclassified colour
    view.undo()
    assert line.id not in view.document and line.id not in view.annotations.items
    view.redo()
    view.shutdown()
    again = open_view(qtbot, cmu_copy)
    (kept,) = again.document.annotations
    assert kept.id == line.id and kept.perimeter(0.499) == pytest.approx(microns)
    assert b'"LineString"' in cmu_copy.with_name(cmu_copy.name + ".annotations.geojson").read_bytes()
    assert line_labels(again, kept.id) == [f"{microns:,.1f} µm"]


@pytest.fixture
def two_unscaled_slides(tmp_path: Path) -> tuple[Path, Path]:
    """The TCGA slide (no MPP, no objective power) at two paths: to medviewer, two slides."""
    paths = []
    for folder in ("case-a", "case-b"):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / "tcga-cr-7395-01a-01-ts1.svs")
        shutil.copy(real_file("wsi/tcga-cr-7395-01a-01-ts1.svs"), paths[-1])
    return paths[0], paths[1]


@pytest.mark.slow
def test_a_pixel_size_set_by_hand_drives_scale_and_ruler_and_stays_with_its_slide(
    qtbot, two_unscaled_slides: tuple[Path, Path], cmu_copy: Path
):
    first, second = two_unscaled_slides
    view = open_view(qtbot, first)
    assert view.level0_microns() is None and not view.scale_bar.isVisible()
    assert not view.magnification_actions[10].isEnabled() and "magnification unknown" in view.status.text()
    asked: list = []
    view.ask_pixel_size = lambda parent, current: asked.append(current) or 0.25
    view.pixel_size_action.trigger()
    assert asked == [None] and view.level0_microns() == 0.25
    assert view.scale_bar.isVisible()
    assert view.scale_bar.pixels_per_mm == pytest.approx(1000 / (0.25 * view.level0_per_screen_pixel()))
    assert view.scale_note.isVisible() and "set by hand" in view.scale_note.text()
    assert "0.25 µm/px (pixel size set by hand)" in view.caption.text()
    assert view.annotation_panel.tree.headerItem().text(2) == "Area (µm²)"
    assert "set by hand" in view.annotation_panel.pixel_size_label.text()
    view.set_magnification(10)  # no objective power: 10x is 1 µm per screen pixel, from the pixel size
    assert view.level0_per_screen_pixel() == pytest.approx(4, rel=0.01)
    assert view.status.text().startswith("10.0x (from the pixel size")
    view.set_tool(Tool.RULER)
    drag(qtbot, view, (1000.0, 1000.0), (1000.0, 1800.0))
    line = view.document.annotations[-1]
    assert line.perimeter(0.25) == pytest.approx(200, rel=0.01)
    assert line_labels(view, line.id) == [f"{line.perimeter(0.25):,.1f} µm (pixel size set by hand)"]
    assert view.annotation_panel.rows()[-1][3] == f"{line.perimeter(0.25):,.1f}"
    view.shutdown()

    again = open_view(qtbot, first)  # remembered for this slide
    assert again.level0_microns() == 0.25 and again.pixel_size_by_hand() and again.scale_bar.isVisible()
    assert line_labels(again, line.id) == [f"{line.perimeter(0.25):,.1f} µm (pixel size set by hand)"]
    other = open_view(qtbot, second)  # the same file at another path: another slide, not given it
    assert other.level0_microns() is None and not other.scale_bar.isVisible()
    scanned = open_view(qtbot, cmu_copy)  # a file with its own MPP: that one, and no setting by hand
    assert scanned.level0_microns() == 0.499 and not scanned.pixel_size_by_hand()
    assert not scanned.pixel_size_action.isEnabled() and not scanned.scale_note.isVisible()
    again.ask_pixel_size = lambda parent, current: 0.0  # 0 forgets it
    again.ask_for_pixel_size()
    assert again.level0_microns() is None and "px (no pixel size)" in line_labels(again, line.id)[0]
    assert open_view(qtbot, first).level0_microns() is None


def test_the_status_line_shows_magnification_and_the_cursor_in_pixels_and_microns(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy)
    view.set_magnification(20)  # the scan's own power: one screen pixel per level-0 pixel
    view.centre_on(1000, 800)
    assert view.status.text() == "20.0x"
    point = screen_point(view, 1000.5, 800.5)
    send(view, QMouseEvent.Type.MouseMove, point, Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    magnification, pixels, microns = view.status.text().split("  ·  ")
    assert magnification == "20.0x"
    x, y = (int(v.replace(",", "")) for v in re.findall(r"[xy] ([\d,]+)", pixels))
    assert (x, y) == (pytest.approx(1000, abs=1), pytest.approx(800, abs=1)) and pixels.endswith(" px")
    ux, uy = (float(v.replace(",", "")) for v in re.findall(r"[xy] ([\d,.]+)", microns))
    assert (ux, uy) == (pytest.approx(1000.5 * 0.499, abs=0.5), pytest.approx(800.5 * 0.499, abs=0.5))
    assert microns.endswith(" µm")
    view.set_magnification(5)
    assert view.status.text().startswith("5.0x  ·  ")


def test_the_point_tool_adds_to_one_multipoint_per_class_and_ctrl_z_takes_points_off(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy)
    view.annotation_panel.class_box.setCurrentText("Immune cells")
    view.set_tool(Tool.POINT)
    clicks = [(300, 300), (420, 310), (520, 650), (900, 1200), (1500, 2000)]
    for x, y in clicks:
        click(view, x, y)
    (points,) = view.document.annotations
    assert points.kind is AnnotationKind.POINTS and len(points.vertices) == len(clicks)
    assert points.classification.name == "Immune cells"
    np.testing.assert_allclose(points.vertices, clicks, atol=6)
    assert view.annotation_panel.rows() == [["Points 1 (5 points)", "Immune cells", "", ""]]
    view.graphics.setFocus()
    QTest.keyClick(view.graphics, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(view.document.get(points.id).vertices) == len(clicks) - 1
    assert len(view.annotations.items[points.id]) == len(clicks) - 1  # one marker gone from the slide
    QTest.keyClick(view.graphics, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert len(view.document.get(points.id).vertices) == len(clicks)
    QTest.keyClick(view.graphics, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    QTest.keyClick(view.graphics, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert len(view.document.get(points.id).vertices) == len(clicks)
    view.annotation_panel.class_box.setCurrentText("Tumor")
    click(view, 700, 700)
    assert [len(a.vertices) for a in view.document.annotations] == [len(clicks), 1]


def test_ctrl_z_undoes_a_drawn_rectangle_when_the_slide_has_focus(qtbot, cmu_copy: Path):
    view = open_view(qtbot, cmu_copy)
    view.set_tool(Tool.RECTANGLE)
    drag(qtbot, view, (400.0, 400.0), (800.0, 700.0))
    assert len(view.document) == 1
    view.graphics.setFocus()
    QTest.keyClick(view.graphics, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(view.document) == 0
    QTest.keyClick(view.graphics, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert len(view.document) == 1


@pytest.mark.slow
def test_the_anonymised_display_hides_the_slide_file_name(qtbot, tmp_path: Path):
    named = tmp_path / "SMITH_JOHN_1961.svs"
    shutil.copy(real_file("wsi/CMU-1-Small-Region.svs"), named)
    view = open_view(qtbot, named)
    assert view.caption.text().startswith("SMITH_JOHN_1961.svs")
    view.set_anonymised(True)
    alias = file_alias("Slide", str(named.absolute()))
    assert "SMITH" not in view.caption.text() and view.caption.text().startswith(alias)
    view.show_associated_images()
    assert view.associated_dialog.windowTitle() == f"{alias}: label and macro images"
    view.set_anonymised(False)
    assert view.caption.text().startswith("SMITH_JOHN_1961.svs")
    settings = make_settings()
    settings.setValue("view/anonymised", True)  # as the window leaves it: a new view starts anonymised
    later = open_view(qtbot, named)
    assert "SMITH" not in later.caption.text() and later.caption.text().startswith(alias)
