"""What a clinician reads of an AI result in the window: per class summaries as the command line gives them,
charts whose titles say what they show, a patch click that changes bars and text together, a warning above a
result whose input is outside the model's training data (crosses on the per-slice curve, hatching on the
slide), and float16 offered only where models run on CUDA. Results are built here (no model runs) except
where the precision must reach a run, which is faked at the inference call."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from medviewer.actions.model_runs import Runtime
from medviewer.ai.inference import RunInfo, SliceResult, VolumeResult
from medviewer.ai.ood import OodReport
from medviewer.ai.slide_run import PatchGrid, SlideResult
from medviewer.ai.stored_results import StoredResult, shape_of
from medviewer.core.volume import Volume
from medviewer.ui import ai_words
from medviewer.ui.ai_panel import AiPanel
from medviewer.ui.slide_overlays import SlideHeatmap
from medviewer.ui.slide_view import SlideView
from tests.support.windows import shown

SLICES = 40
CLASSES = ("normal", "lesion")


def info(precision: str = "float32") -> RunInfo:
    return RunInfo("ct-slice-lesion-demo", "1.0.0", "ab" * 32, "cpu", precision, 0.5, 16, ())


def report(flagged: np.ndarray | None = None, checked: bool = True, reasons: tuple[str, ...] = ()) -> OodReport:
    shape = (SLICES,) if flagged is None else flagged.shape
    feature = np.zeros(shape, bool) if flagged is None else flagged
    why = "" if checked else "the model's package has no training statistics"
    return OodReport(
        checked=checked,
        why_not=why,
        scores=np.zeros(shape, np.float32),
        threshold=1.0 if checked else None,
        feature_flagged=feature,
        intensity_flagged=np.zeros(shape, bool),
        image_reasons=reasons,
    )


def lesion_curve() -> np.ndarray:
    """p(lesion) peaking at 0.9 on 0-based slice 30 (slice number 31), above 0.5 on 5 slices."""
    lesion = np.full(SLICES, 0.1, np.float32)
    lesion[28:33] = [0.6, 0.8, 0.9, 0.7, 0.55]
    return np.stack([1 - lesion, lesion], axis=1)


def slice_result(ood: OodReport | None, probabilities: np.ndarray | None = None) -> SliceResult:
    values = lesion_curve() if probabilities is None else probabilities
    return SliceResult(tuple(range(len(values))), CLASSES, values, info(), ood)


@pytest.fixture
def panel(qtbot) -> AiPanel:
    panel = shown(qtbot, AiPanel(), 380, 1200)
    panel.set_volume(Volume(np.zeros((SLICES, 4, 4), np.int16), spacing=(1, 1, 1), origin=(0, 0, 0)), 0)
    return panel


def show(panel: AiPanel, result: object, kind: str = "slices", activation: str = "softmax") -> None:
    image = panel.slide if kind == "slide" else panel.volume
    assert panel.show_stored(StoredResult(kind, result, activation, False, shape_of(image)), "2026-01-01T00:00") is None


def bar_heights(panel: AiPanel) -> list[float]:
    bars = [item for item in panel.bars.getPlotItem().items if hasattr(item, "opts") and "height" in item.opts]
    return [float(h) for h in bars[0].opts["height"]]


def test_every_slice_text_gives_each_class_its_peak_slice_mean_and_count_and_the_bars_name_their_slice(
    panel: AiPanel,
):
    chosen: list[int] = []
    panel.slice_chosen.connect(chosen.append)
    panel.set_slice(4)
    show(panel, slice_result(report()))
    lines = panel.result_label.text().splitlines()
    lesion = "lesion: highest 0.9000 on slice 31, mean "
    assert lines[1].startswith(lesion) and lines[1].endswith("above 0.5 on 5 of 40 slices")
    mean = float(lesion_curve()[:, 1].mean())
    assert f"mean {mean:.4f}" in lines[1]
    assert lines[2].startswith("normal: highest 0.9000 on slice 1, mean") and "above 0.5 on 35 of 40" in lines[2]
    # The bars are the slice shown in the viewer, named; they follow it as it moves.
    assert panel.bars_title == "Probabilities on slice 5 of 40"
    assert bar_heights(panel) == pytest.approx([0.9, 0.1])
    panel.set_slice(30)
    assert panel.bars_title == "Probabilities on slice 31 of 40" and bar_heights(panel) == pytest.approx([0.1, 0.9])
    assert panel.slice_line.value() == 31
    # The curve: the chosen class per slice, numbered from 1.
    assert panel.curve_title == "p(lesion) per slice" and panel.curve.getPlotItem().getAxis("bottom").labelText == (
        "slice number"
    )
    x, y = panel.curve.getPlotItem().listDataItems()[0].getData()
    assert list(x) == list(range(1, SLICES + 1)) and y[30] == pytest.approx(0.9)
    # The way to the peak goes to 0-based slice 30.
    assert panel.peak_button.isVisible() and "slice 31" in panel.peak_button.text()
    panel.peak_button.click()
    assert chosen == [30]
    # Choosing the other class for saliency (the demo CT model's classes are the result's): the result leads
    # with it.
    assert panel.class_box.currentText() == "lesion"
    panel.class_box.setCurrentText("normal")
    assert panel.result_label.text().splitlines()[1].startswith("normal: highest")
    assert panel.curve_title == "p(normal) per slice"


def test_a_one_slice_run_and_a_volume_run_say_what_their_bars_are(panel: AiPanel):
    one = SliceResult((7,), CLASSES, np.array([[0.3, 0.7]], np.float32), info(), report(np.zeros(1, bool)))
    show(panel, one)
    assert panel.result_label.text().splitlines()[1] == "lesion: 0.7000 on slice 8"
    assert panel.bars_title == "Probabilities on slice 8 of 40" and not panel.curve.isVisible()
    assert not panel.peak_button.isVisible()
    volume = VolumeResult(("bleed", "fracture"), np.array([0.2, 0.6], np.float32), info())
    show(panel, volume, "volume", "sigmoid")
    assert panel.bars_title == "Probabilities for the whole volume"
    assert "fracture: 0.6000 for the whole volume" in panel.result_label.text()


@pytest.mark.parametrize("state", ["flagged", "whole image", "unchecked", "clean", "scattered", "unknown"])
def test_the_banner_says_when_the_input_is_outside_the_training_data(panel: AiPanel, state: str):
    flagged = np.zeros(SLICES, bool)
    if state == "flagged":
        flagged[[3, 30, 31]] = True  # 3 of 40: more than the 1 in 20 that chance gives on data like the training
    if state == "scattered":
        flagged[[17, 30]] = True  # 2 of 40: no more than chance; marked, but no banner
    ood = {
        "flagged": report(flagged),
        "whole image": report(flagged, reasons=("the image is not a CT (modality MR)",)),
        "unchecked": report(checked=False),
        "clean": report(flagged),
        "scattered": report(flagged),
        "unknown": None,
    }[state]
    show(panel, slice_result(ood))
    banner, note = panel.ood_banner, panel.ood_note
    if state in ("flagged", "whole image"):
        assert banner.isVisible() and ood.banner() in banner.text() and not note.isVisible()
        # Above everything else of the result: the text and both charts.
        assert banner.y() < panel.result_label.y() < panel.bars.y() < panel.curve.y()
    else:
        assert not banner.isVisible() and note.isVisible()
        expected = {
            "unchecked": "the model's package has no training statistics",
            "clean": "Checked against the training data: none of the 40 slices is outside it.",
            "scattered": "Checked against the training data: 2 of 40 slices stand out (features unlike the "
            "training data's on 2 slices), as a few do by chance on data like it; they are marked.",
            "unknown": ai_words.NOT_KNOWN,
        }[state]
        assert expected in note.text()
    if state == "flagged":
        # The peak slice is one of the flagged ones: the text says not to read it as a finding.
        assert "3 of 40 slices (4, 31–32)" in panel.result_label.text()
        assert "do not read it as a finding" in panel.result_label.text()
        panel.set_slice(30)
        assert panel.bars_title.endswith(f"({ai_words.OUTSIDE})")
    panel.clear_result()
    assert not banner.isVisible() and not note.isVisible()


def test_the_curve_has_marks_exactly_at_the_flagged_slices(panel: AiPanel):
    flagged = np.zeros(SLICES, bool)
    flagged[[0, 12, 13, 39]] = True
    show(panel, slice_result(report(flagged)))
    x, y = panel.curve_marks.getData()
    assert list(x) == [1, 13, 14, 40]  # slice numbers, as the curve's axis counts
    np.testing.assert_allclose(y, lesion_curve()[flagged, 1])
    assert panel.curve_legend_text == f"✕ {ai_words.OUTSIDE}"
    show(panel, slice_result(report()))  # nothing flagged: no marks, no legend
    assert panel.curve_marks is None and panel.curve_legend_text == ""


def slide_result(flagged: np.ndarray | None) -> SlideResult:
    tissue = np.array([[True, True, False, True], [True, True, True, True], [False, True, True, False]])
    tumour = np.array([[0.1, 0.2, np.nan, 0.3], [0.4, 0.95, 0.6, 0.2], [np.nan, 0.1, 0.8, np.nan]], np.float32)
    probabilities = np.stack([1 - tumour, tumour], axis=-1)
    grid = PatchGrid((100.0, 50.0), (256.0, 256.0), 3, 4, 1, (64, 64), tissue)
    ood = report(flagged) if flagged is not None else None
    return SlideResult(grid, ("normal", "tumour"), probabilities, info(), ood)


def test_a_patch_click_changes_the_bars_and_the_text_together_and_back_goes_to_the_slide_mean(panel: AiPanel):
    heatmaps, details = [], []
    panel.slide_heatmap_ready.connect(heatmaps.append)
    panel.slide_detail_ready.connect(details.append)
    panel.set_slide(SimpleNamespace(dimensions=(1124, 818), path=None), lambda: None)
    flagged = np.zeros((3, 4), bool)
    flagged[1, 2] = True
    result = slide_result(flagged)
    show(panel, result, "slide", "softmax")
    text = panel.result_label.text()
    assert "Slide mean over 9 tissue patches:" in text
    tumour = result.probabilities[..., 1][result.grid.tissue]
    assert f"tumour: slide mean {tumour.mean():.4f}, max 0.9500 (row 1, column 1), top class in 3 of 9" in text
    assert panel.bars_title == "Slide mean over 9 tissue patches"
    assert bar_heights(panel) == pytest.approx([1 - tumour.mean(), tumour.mean()])
    assert "1 of 9 tissue patches" in text
    heat = heatmaps[-1]
    assert heat.caption == "p(tumour) per patch" and heat.maximum == 1.0 and (heat.flagged == flagged).all()

    x, y, width, height = result.grid.box(1, 2)
    panel.patch_clicked(x + width / 2, y + height / 2)
    text = panel.result_label.text()
    assert panel.bars_title == f"This patch (row 1, column 2) ({ai_words.OUTSIDE})"
    assert bar_heights(panel) == pytest.approx([0.4, 0.6])
    assert "This patch (row 1, column 2): tumour 0.6000, normal 0.4000." in text
    assert "Slide mean over 9 tissue patches:" in text  # the slide's summary stays beside the patch's
    assert "do not read it as a finding" in text
    assert panel.back_button.isVisible() and len(heatmaps) == 1  # the heatmap (and its hatching) stays

    panel.back_button.click()
    assert panel.bars_title == "Slide mean over 9 tissue patches" and "This patch" not in panel.result_label.text()
    assert not panel.back_button.isVisible() and details[-1] is None  # the patch's saliency is taken away


def test_the_slide_view_hatches_exactly_the_flagged_cells_and_hides_them_with_the_heatmap(qtbot):
    view = shown(qtbot, SlideView(), 900, 700)
    values = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    flagged = np.zeros((3, 4), bool)
    flagged[[0, 0, 2], [1, 2, 3]] = True
    origin, cell = (100.0, 50.0), (256.0, 128.0)
    view.set_heatmap(values, origin, cell, "p(tumour) per patch", flagged=flagged)
    assert view.ood_cells == [(0, 1), (0, 2), (2, 3)] and view.ood_item.isVisible() and view.ood_note.isVisible()
    path = view.ood_item.path()
    for row in range(3):
        for column in range(4):
            centre = QPointF(origin[0] + (column + 0.5) * cell[0], origin[1] + (row + 0.5) * cell[1])
            assert path.contains(centre) == flagged[row, column], (row, column)
    view.restyle_overlays("hot", 0.7, 0.1, 0.9)  # a style change keeps the hatching
    assert view.ood_cells == [(0, 1), (0, 2), (2, 3)] and view.ood_item.isVisible()
    view.set_heatmap(values, origin, cell, "p(tumour) per patch")  # a result with nothing flagged
    assert view.ood_cells == [] and not view.ood_item.isVisible() and not view.ood_note.isVisible()
    view.set_heatmap(values, origin, cell, "p(tumour) per patch", flagged=flagged)
    view.set_heatmap(None)
    assert view.ood_cells == [] and not view.ood_item.isVisible()


def test_float16_needs_cuda_and_the_chosen_precision_reaches_the_run(qtbot, panel: AiPanel, monkeypatch):
    float16 = panel.precision_box.model().item(1)
    assert panel.precision_box.itemText(1) == "float16" and not float16.isEnabled()  # devices not known yet
    panel._on_probe(Runtime("PyTorch", ("cpu",), 0.0))
    assert not float16.isEnabled() and "CUDA" in float16.toolTip()
    panel.precision_box.setCurrentIndex(1)  # even forced, a CPU run is asked for float32
    assert panel.precision() == "float32"
    panel._on_probe(Runtime("PyTorch", ("cuda", "cpu"), 0.0))
    assert float16.isEnabled()
    panel.precision_box.setCurrentIndex(1)
    assert panel.precision() == "float16"

    asked: list[str] = []

    def run_slices(loaded, volume, indices, progress=None, cancelled=None, precision="float32"):
        asked.append(precision)
        values = np.tile(np.array([[0.8, 0.2]], np.float32), (len(indices), 1))
        return SliceResult(tuple(indices), CLASSES, values, info(precision), report())

    monkeypatch.setattr("medviewer.ai.inference.run_slices", run_slices)
    monkeypatch.setattr("medviewer.ai.inference.set_torch_threads", lambda: 1)
    monkeypatch.setattr("medviewer.actions.model_runs.LoadedModels.get", lambda self, package: None)
    names = [panel.model_box.itemText(i) for i in range(panel.model_box.count())]
    panel.model_box.setCurrentIndex(next(i for i, name in enumerate(names) if name.startswith("ct-slice-lesion")))
    job = panel.run(every_slice=True)
    qtbot.waitUntil(lambda: not panel.busy(), timeout=30_000)
    assert asked == ["float16"] and "(float16)" in job.description
    assert "cpu, float16" in panel.result_label.text()  # the identity line says the precision it ran at
    panel.shutdown()


def test_the_runtime_probe_offers_float16_only_on_cuda(qtbot, panel: AiPanel):
    panel.schedule_probe()
    qtbot.waitUntil(lambda: panel.ready, timeout=60_000)
    assert panel.model_device is not None
    assert panel.precision_box.model().item(1).isEnabled() == (panel.model_device == "cuda")


def test_the_window_hatches_the_flagged_patches_of_a_slide_result(qtbot):
    from medviewer.ui.app import make_settings
    from medviewer.ui.main_window import MainWindow

    window = shown(qtbot, MainWindow(make_settings()), 1400, 900)
    flagged = np.zeros((3, 4), bool)
    flagged[1, 2] = True
    values = np.full((3, 4), 0.5, np.float32)
    window.ai_panel.slide_heatmap_ready.emit(
        SlideHeatmap(values, (0.0, 0.0), (64.0, 64.0), "p(tumour) per patch", 1.0, flagged)
    )
    view = window.slide_view
    assert view.heat_item.isVisible() and view.ood_cells == [(1, 2)] and view.ood_item.isVisible()
    window.ai_panel.overlay_style_changed.emit()  # restyled from the panel: the hatching stays
    assert view.ood_cells == [(1, 2)]
