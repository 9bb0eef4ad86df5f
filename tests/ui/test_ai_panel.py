"""The AI panel in the window: models run in the background on the shown volume, results name the model,
saliency is laid over the image, failures and cancels leave the window working, results are kept."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QLabel

from medviewer.ai.stored_results import StoredResult
from medviewer.catalog import audit
from medviewer.io import open_slide
from medviewer.ui.app import make_settings
from medviewer.ui.main_window import MainWindow
from tests.support.models_for_tests import TinyVolumeNet, load_scripted, metadata
from tests.support.patch_models import load_patch_model
from tests.support.paths import real_file
from tests.support.tiny_bundle import export_tiny, metadata_with, write_bundle
from tests.support.windows import shown

TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    return export_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def window(qtbot) -> MainWindow:
    return shown(qtbot, MainWindow(make_settings()), 1600, 1000)


def with_model(qtbot, window: MainWindow, bundle: Path, demo_dir: Path) -> None:
    window.open_paths([demo_dir / "ct2"])
    assert window.wait_until_idle(TIMEOUT_MS)
    package = window.ai_panel.add_model(bundle, approve=True)
    assert window.wait_until_idle(TIMEOUT_MS)  # approved (the registry and the trail written), then listed
    names = [window.ai_panel.model_box.itemText(i) for i in range(window.ai_panel.model_box.count())]
    window.ai_panel.model_box.setCurrentIndex(names.index(f"{package.name} {package.version}"))


def test_every_slice_runs_in_the_background_and_the_result_names_the_model(
    qtbot, window: MainWindow, demo_dir: Path, tiny, tmp_path: Path
):
    with_model(qtbot, window, write_bundle(tmp_path / "tiny", tiny), demo_dir)
    panel = window.ai_panel
    job = panel.run(every_slice=True)
    assert job is not None and panel.cancel_button.isEnabled()  # the call returned while the model runs
    chosen = panel.model_box.currentIndex()
    panel.model_box.setCurrentIndex(0 if chosen else 1)  # another model chosen meanwhile: the run stays cancellable
    assert panel.cancel_button.isEnabled() and not panel.run_all_button.isEnabled()
    panel.model_box.setCurrentIndex(chosen)
    assert window.wait_until_idle(TIMEOUT_MS)
    result = panel.last_run.result
    assert result.probabilities.shape == (48, 2)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-5)  # softmax
    text = panel.result_label.text()
    assert "tiny lesion classifier 0.1.0" in text and result.info.model_hash[:12] in text
    assert "Not for diagnostic use" in text
    assert panel.curve.isVisible()
    panel.slice_chosen.emit(7)  # a click on the per-slice curve
    assert int(window.volume_view.crosshair[0]) == 7
    inference = [e for e in audit.events() if e.event == "inference"]
    assert inference and inference[-1].details["model_hash"] == result.info.model_hash
    series = next(e for e in window.patient_panel.entries() if e.kind == "series")
    window.patient_panel.tree.setCurrentItem(window.patient_panel.item_for(series.key))
    details = window.patient_panel.details
    rows = [details.topLevelItem(i).text(0) for i in range(details.topLevelItemCount())]
    assert rows == ["AI: tiny lesion classifier 0.1.0"]


def test_saliency_is_laid_over_the_slice_as_model_attention(
    qtbot, window: MainWindow, demo_dir: Path, tiny, tmp_path: Path
):
    with_model(qtbot, window, write_bundle(tmp_path / "tiny", tiny), demo_dir)
    panel = window.ai_panel
    panel.method_box.setCurrentIndex(panel.method_box.findData("gradcam"))
    assert panel.run_saliency() is not None
    assert window.wait_until_idle(TIMEOUT_MS)
    view = window.volume_view
    assert view.heatmap is not None and view.legend.isVisible()
    k = int(view.crosshair[0])
    assert np.isfinite(view.heatmap.values[k]).all()  # the shown slice is covered
    assert not np.isfinite(view.heatmap.values[(k + 5) % view.volume.shape[0]]).any()  # other slices are not
    assert "not where a lesion is" in panel.saliency_caption.text()


def test_a_model_whose_output_does_not_match_its_classes_fails_with_a_message_and_the_window_goes_on(
    qtbot, window: MainWindow, demo_dir: Path, tiny, tmp_path: Path
):
    three = {"0": "a", "1": "b", "2": "c"}
    metadata = metadata_with(
        {
            "medviewer.output.classes": ["a", "b", "c"],
            "network_data_format.outputs.pred.num_channels": 3,
            "network_data_format.outputs.pred.channel_def": three,
        }
    )
    with_model(qtbot, window, write_bundle(tmp_path / "wrong", tiny, metadata), demo_dir)
    panel = window.ai_panel
    panel.run(every_slice=False)
    assert window.wait_until_idle(TIMEOUT_MS)
    message = panel.progress_label.text()
    assert message.startswith("Failed:") and "3" in message and "2" in message
    assert panel.run_slice_button.isEnabled()  # and the window still works
    window.ai_panel.model_box.setCurrentIndex(0)


def test_cancel_and_closing_stop_the_worker(qtbot, demo_dir: Path, tiny, tmp_path: Path):
    window = shown(qtbot, MainWindow(make_settings()), 1600, 1000)
    with_model(qtbot, window, write_bundle(tmp_path / "tiny", tiny), demo_dir)
    panel = window.ai_panel
    panel.run(every_slice=True)
    panel.run(every_slice=True)
    panel.cancel_button.click()
    assert window.wait_until_idle(TIMEOUT_MS)
    assert panel.progress_label.text().startswith("Cancelled")
    panel.run(every_slice=True)
    window.close()  # while a run may still be going
    assert window.jobs.working() == 0


def test_a_volume_model_runs_on_the_whole_volume(qtbot, window: MainWindow, demo_dir: Path, tmp_path: Path):
    classes = ["bleed", "fracture"]
    meta = metadata(target="volume", shape=[4, 8, 8], activation="sigmoid", classes=classes, explain=False)
    loaded = load_scripted(tmp_path / "volume", TinyVolumeNet(), meta)
    with_model(qtbot, window, loaded.package.source, demo_dir)
    panel = window.ai_panel
    assert panel.run_volume_button.isEnabled() and not panel.run_all_button.isEnabled()
    panel.run_volume()
    assert window.wait_until_idle(TIMEOUT_MS)
    result = panel.last_run.result
    assert result.probabilities.shape == (2,) and ((0 <= result.probabilities) & (result.probabilities <= 1)).all()
    assert "for the whole volume" in panel.result_label.text() and "test model 1.0" in panel.result_label.text()
    assert panel.bars_title == "Probabilities for the whole volume"
    # Saliency of a volume model covers the whole volume, laid over it in its own geometry.
    assert panel.saliency_button.isEnabled() and panel.saliency_button.text() == "Show saliency on the volume"
    panel.method_box.setCurrentIndex(panel.method_box.findData("occlusion"))
    panel.run_saliency()
    assert window.wait_until_idle(TIMEOUT_MS)
    view = window.volume_view
    assert view.heatmap is not None and view.heatmap.values.shape == view.volume.shape
    assert view.legend.isVisible() and "Occlusion" in view.legend.title


def test_a_slide_run_lays_patch_probabilities_over_the_slide_and_a_click_shows_the_patch(
    qtbot, window: MainWindow, tmp_path: Path
):
    slide_path = tmp_path / "CMU-1-Small-Region.svs"
    shutil.copy(real_file("wsi/CMU-1-Small-Region.svs"), slide_path)
    loaded = load_patch_model(tmp_path / "redness")
    window.open_paths([slide_path])
    assert window.wait_until_idle(TIMEOUT_MS)
    panel = window.ai_panel
    # A slide shown: the panel offers a model that runs on slides (the demo patch model), not the CT one.
    assert panel.package().spec.target == "slide_patch" and panel.run_slide_button.isEnabled()
    package = panel.add_model(loaded.package.source, approve=False)  # approved by load_patch_model
    names = [panel.model_box.itemText(i) for i in range(panel.model_box.count())]
    panel.model_box.setCurrentIndex(names.index(f"{package.name} {package.version}"))
    assert panel.run_slide_button.isEnabled() and not panel.run_all_button.isEnabled()
    panel.run_slide()
    assert window.wait_until_idle(TIMEOUT_MS)
    result = panel.slide_result
    view = window.slide_view
    assert view.heat_item.isVisible() and view.legend.isVisible()
    grid = result.grid
    drawn = view.heat_item.mapRectToView(view.heat_item.boundingRect())
    assert drawn.width() == pytest.approx(grid.columns * grid.patch_size_level0[0], rel=1e-3)
    assert (drawn.x(), drawn.y()) == pytest.approx(grid.origin)
    row, column = grid.tissue_cells()[len(grid.tissue_cells()) // 2]
    x, y, width, height = grid.box(row, column)
    view.clicked.emit(x + width / 2, y + height / 2)  # a click on that patch
    assert window.wait_until_idle(TIMEOUT_MS)
    assert "inside the clicked patch" in panel.saliency_caption.text()
    patch = view.detail_item.mapRectToView(view.detail_item.boundingRect())
    assert (patch.x(), patch.y(), patch.width()) == pytest.approx((x, y, width), rel=1e-3)
    # The slide's heatmap stays under the patch's saliency, and the legend names both.
    assert view.heat_item.isVisible() and view.heat_item.mapRectToView(view.heat_item.boundingRect()) == drawn
    # The test model gives raw scores (activation "none"): named as scores, on their own range.
    assert view.legend.title.startswith("tumour score per patch;") and "on the patch" in view.legend.title
    # The overlay style applies to what is shown: patches below the threshold become transparent.
    tumour = result.heatmap(result.classes.index("tumour"))
    threshold = round(float(np.nanmedian(tumour)), 2)
    panel.opacity_slider.setValue(80)
    panel.threshold_spin.setValue(threshold)
    assert view.heat_item.opacity() == pytest.approx(0.8) and view.detail_item.isVisible()
    alpha = view.heat_item.image[..., 3]
    kept = tumour >= threshold
    assert 0 < kept.sum() < np.isfinite(tumour).sum()
    assert (alpha[np.nan_to_num(tumour) < threshold] == 0).all() and (alpha[kept] > 0).all()
    # The legend keeps the heatmap's numbers under the patch's saliency.
    assert (view.legend.low, view.legend.high) == pytest.approx((threshold, float(np.nanmax(tumour))))
    panel.run_slide()  # a new run's heatmap replaces the old result's patch detail
    assert window.wait_until_idle(TIMEOUT_MS)
    assert view.heat_item.isVisible() and not view.detail_item.isVisible()
    view.set_heatmap(None)  # cleared, as opening another slide clears it: a style change must not bring it back
    panel.threshold_spin.setValue(0.1)
    assert not view.heat_item.isVisible()
    csv_path, geojson_path = tmp_path / "patches.csv", tmp_path / "patches.geojson"
    panel.export_slide_result("csv", csv_path)
    panel.export_slide_result("geojson", geojson_path)
    assert len(csv_path.read_text().splitlines()) == len(grid.tissue_cells()) + 1
    features = json.loads(geojson_path.read_text())["features"]
    assert {f["properties"]["objectType"] for f in features} == {"tile"}
    # A run that ends after another image was opened is not drawn over that image.
    panel.run_slide()
    other = open_slide(slide_path)
    panel.set_slide(other, lambda: None)
    assert window.wait_until_idle(TIMEOUT_MS)
    assert not view.heat_item.isVisible() and "not shown: another image is open now" in panel.progress_label.text()
    other.close()


@pytest.mark.slow
def test_a_slide_result_is_shown_again_when_the_slide_is_opened_again(qtbot, tmp_path: Path):
    slide_path = tmp_path / "CMU-1-Small-Region.svs"
    shutil.copy(real_file("wsi/CMU-1-Small-Region.svs"), slide_path)
    loaded = load_patch_model(tmp_path / "redness")
    first = shown(qtbot, MainWindow(make_settings()), 1600, 1000)
    first.open_paths([slide_path])
    assert first.wait_until_idle(TIMEOUT_MS)
    package = first.ai_panel.add_model(loaded.package.source, approve=False)
    names = [first.ai_panel.model_box.itemText(i) for i in range(first.ai_panel.model_box.count())]
    first.ai_panel.model_box.setCurrentIndex(names.index(f"{package.name} {package.version}"))
    first.ai_panel.run_slide()
    assert first.wait_until_idle(TIMEOUT_MS)
    computed = first.ai_panel.slide_result
    demo = next(i for i, name in enumerate(names) if name.startswith("slide-patch-tumour-demo"))
    first.ai_panel.model_box.setCurrentIndex(demo)  # a second run, with another model: the latest one
    first.ai_panel.run_slide()
    assert first.wait_until_idle(TIMEOUT_MS)
    latest = first.ai_panel.slide_result
    first.close()

    again = shown(qtbot, MainWindow(make_settings()), 1600, 1000)  # a new session on the same catalog
    again.open_paths([slide_path])
    assert again.wait_until_idle(TIMEOUT_MS)
    panel, view = again.ai_panel, again.slide_view
    assert panel.result_label.text().startswith("Stored result of") and latest.info.model_hash[:12] in (
        panel.result_label.text()
    )
    np.testing.assert_array_equal(panel.slide_result.probabilities, latest.probabilities)
    # The earlier run, chosen in the patient panel's list, is shown instead.
    details = again.patient_panel.details
    rows = [details.topLevelItem(i) for i in range(details.topLevelItemCount())]
    earlier = next(row for row in rows if row.text(0) == "AI: test model 1.0")
    details.itemActivated.emit(earlier, 0)
    assert again.wait_until_idle(TIMEOUT_MS)
    assert computed.info.model_hash[:12] in panel.result_label.text()
    np.testing.assert_array_equal(panel.slide_result.probabilities, computed.probabilities)
    assert view.heat_item.isVisible() and view.heat_item.image.shape[:2] == computed.probabilities.shape[:2]
    # The model is installed, so a click on a patch of the kept result explains it with that same model.
    row, column = computed.grid.tissue_cells()[0]
    x, y, width, height = computed.grid.box(row, column)
    view.clicked.emit(x + width / 2, y + height / 2)
    assert again.wait_until_idle(TIMEOUT_MS)
    assert view.detail_item.isVisible() and "inside the clicked patch" in panel.saliency_caption.text()


def test_results_are_drawn_only_on_the_image_they_belong_to(qtbot, window: MainWindow, demo_dir: Path, tiny, tmp_path):
    with_model(qtbot, window, write_bundle(tmp_path / "tiny", tiny), demo_dir)
    panel = window.ai_panel
    panel.run(every_slice=True)
    window.tabs.setCurrentIndex(1)  # the slide tab (no slide): the volume is no longer on screen
    assert window.wait_until_idle(TIMEOUT_MS)
    assert "not shown: another image is open now" in panel.progress_label.text()
    assert panel.result_label.text() == "No result yet." and panel.last_run is None
    window.tabs.setCurrentIndex(0)
    panel.run(every_slice=True)
    assert window.wait_until_idle(TIMEOUT_MS)
    result = panel.last_run.result
    # A kept result of a series that has since changed (one slice fewer) is refused, not drawn misplaced.
    volume = window.volume_view.volume
    stale = StoredResult("slices", result, "softmax", False, (volume.shape[0] - 1, *volume.shape[1:]))
    reason = panel.show_stored(stale, "2026-01-01T00:00:00.000000+00:00")
    assert reason is not None and "run the model again" in reason
    assert panel.show_stored(StoredResult("slices", result, "softmax", False, volume.shape), "2026-01-01T00:00") is None
    assert panel.result_label.text().startswith("Stored result of 2026-01-01 00:00 UTC.")


def test_the_model_card_fits_the_screen_and_renders_its_markdown(qtbot, window: MainWindow):
    """The demo CT model's real card: headings and emphasis drawn, not shown as # and *, and the dialog,
    buttons included, no taller than most of a 1080p screen."""
    panel = window.ai_panel
    names = [panel.model_box.itemText(i) for i in range(panel.model_box.count())]
    panel.model_box.setCurrentIndex(next(i for i, name in enumerate(names) if name.startswith("ct-slice-lesion")))
    panel.show_card()
    dialog = panel.card_dialog
    qtbot.waitUntil(dialog.isVisible)
    package = panel.package()
    assert "#" in package.card and "**" in package.card  # the card is Markdown ...
    text = dialog.card.toPlainText()
    assert "**" not in text and not any(line.startswith("#") for line in text.splitlines())  # ... drawn as such
    assert dialog.card.document().toMarkdown().count("#") >= 1  # headings kept as headings
    screen = dialog.screen().availableGeometry()
    assert dialog.frameGeometry().height() <= screen.height() * 0.85
    facts = dialog.findChild(QLabel, "cardFacts").text()
    assert "SHA-256" in facts and "NOT FOR DIAGNOSTIC USE" in facts
    dialog.accept()
