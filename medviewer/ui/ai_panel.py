"""The AI panel: the runtime, the model and its card, runs on the shown volume, and what the model thinks.

PyTorch takes seconds to import, so it is imported on a pool thread once the window is showing; the
panel says what it is doing until then (``runtime_ready`` fires when the probe has finished). Models
run on the single AI worker thread (``ai_worker.AiWorker``): the window stays responsive, a run can be
cancelled within one batch, and a failing model ends in a message. Results name the model, its version
and SHA-256, the device, the precision and the time taken; saliency is captioned as model attention, not
lesion location, and every result of a model not cleared for diagnosis says "not for diagnostic use".

What a result shows is said the way the command line says it (``ai_words``): per class, where it peaks and
its mean; each chart's title names what its bars are (one named slice, the whole volume, the slide mean, one
patch). Whether the input is like the model's training data comes first: a flagged result carries a warning
banner above its text and charts, flagged slices are crossed on the per-slice curve, and flagged patches are
hatched on the slide.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QRunnable, QSettings, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QStandardItemModel
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from medviewer.ai import registry
from medviewer.ai.available import builtin_bundles
from medviewer.ai.ood import NOT_AVAILABLE
from medviewer.ai.package import ModelPackage, read_package
from medviewer.ai.runtime import describe_runtime
from medviewer.ai.stored_results import StoredResult, of_run, shape_of
from medviewer.ai.summary import cell_words, slice_number, summarise_slide
from medviewer.core.colormaps import COLORMAP_NAMES
from medviewer.core.errors import MedviewerError
from medviewer.core.logs import log_unexpected
from medviewer.core.volume import Volume
from medviewer.io.slide import Slide
from medviewer.ui import ai_words
from medviewer.ui.ai_worker import AiJob, AiWorker
from medviewer.ui.model_card_dialog import ModelCardDialog

if TYPE_CHECKING:
    from medviewer.ai.inference import Precision
    from medviewer.ai.saliency import SaliencyRun

log = logging.getLogger(__name__)
SALIENCY_METHODS = (("gradcam", "Grad-CAM"), ("occlusion", "Occlusion"), ("ig", "Integrated gradients"))
NOT_DIAGNOSTIC = "Not for diagnostic use."
PANEL_WIDTH = 340  # room for the run buttons; longer texts wrap
PRECISIONS: tuple[Precision, ...] = ("float32", "float16")
#: The result's warning when its input is outside what the model was trained on: above everything else.
BANNER_STYLE = (
    "QLabel#oodBanner { background: #fff3cd; color: #8a1c1c; border: 2px solid #d9534f; border-radius: 4px; "
    "padding: 6px; font-weight: bold; }"
)
NOTE_STYLE = "QLabel#oodNote { color: #5a5a5a; font-style: italic; }"
BAR_COLOUR = "#4a90d9"
#: What marks an input outside the training data on the (dark) plots: amber, as the banner, and unlike the
#: curve's red.
FLAGGED_COLOUR = "#ffb000"
LABEL_COLOUR = "#e6e6e6"
#: A result whose kind carries no check of its input against the training data (a volume run).
_NO_CHECK = object()


@dataclass(frozen=True)
class OverlayStyle:
    """How model overlays are drawn: one choice for probability heatmaps and saliency alike, so comparing
    two overlays never means comparing two colour scales. Below ``threshold`` is left transparent."""

    colormap: str = "jet"
    opacity: float = 0.45
    threshold: float = 0.2

    @property
    def detail_opacity(self) -> float:
        """A clicked patch's saliency, more opaque than the heatmap under it, so it reads through its colour."""
        return min(1.0, self.opacity + 0.25)


class _ProbeRelay(QObject):
    done = Signal(str, float, object)  # (runtime in words, when torch finished importing, devices fastest first)


class _ProbeTask(QRunnable):
    def __init__(self, relay: _ProbeRelay) -> None:
        super().__init__()
        self.relay = relay

    def run(self) -> None:
        devices: list[str] = []
        try:
            from medviewer.ai.devices import available_devices

            text = describe_runtime()
            devices = available_devices()
        except Exception as exc:  # a broken torch install must not take the window down
            log_unexpected(log, "AI runtime unavailable")
            text = f"The AI runtime could not be loaded ({type(exc).__name__}); images can still be viewed."
        self.relay.done.emit(text, time.time(), devices)


class AiPanel(QWidget):
    """``heatmap_ready(volume, caption)`` for the volume view; ``result_ready(job, result)`` for the
    window to store; ``slice_chosen(index)`` (0-based) when a point of the per-slice curve is clicked or the
    slice where the chosen class peaks is asked for."""

    runtime_ready = Signal(float)  # epoch seconds when torch finished importing
    heatmap_ready = Signal(object, str)
    result_ready = Signal(object, object)
    slice_chosen = Signal(int)
    #: (values (rows, columns), origin, cell size, caption): a map over the slide in level-0 pixels; the
    #: heatmap of a run, and the detail (a clicked patch's saliency, or None to take it away) laid over it.
    #: The heatmap's also has the top of its scale (or None) and the cells outside the training data (a bool
    #: (rows, columns) array, or None when none are), which are hatched.
    slide_heatmap_ready = Signal(object, object, object, str, object, object)
    slide_detail_ready = Signal(object, object, object, str)
    overlay_style_changed = Signal()

    def __init__(self, settings: QSettings | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.card_dialog: ModelCardDialog | None = None
        self.runtime_label = QLabel("Waiting to load the AI runtime…")
        self.runtime_label.setWordWrap(True)
        runtime_box = QGroupBox("Runtime")
        QVBoxLayout(runtime_box).addWidget(self.runtime_label)

        self.model_box = QComboBox()
        self.model_box.currentIndexChanged.connect(self._model_changed)
        card_button = QPushButton("Model card…")
        card_button.clicked.connect(self.show_card)
        add_button = QPushButton("Add model…")
        add_button.clicked.connect(self._ask_add_model)
        self.run_slice_button = QPushButton("This slice")
        self.run_slice_button.clicked.connect(lambda: self.run(every_slice=False))
        self.run_all_button = QPushButton("Every slice")
        self.run_all_button.clicked.connect(lambda: self.run(every_slice=True))
        self.run_volume_button = QPushButton("Volume")
        self.run_volume_button.clicked.connect(self.run_volume)
        self.run_slide_button = QPushButton("Slide")
        self.run_slide_button.setToolTip("Patches over the tissue (or the selected annotation's region)")
        self.run_slide_button.clicked.connect(self.run_slide)
        self.export_csv_button = QPushButton("Export CSV…")
        self.export_csv_button.clicked.connect(lambda: self._ask_export("csv"))
        self.export_geojson_button = QPushButton("Export GeoJSON…")
        self.export_geojson_button.clicked.connect(lambda: self._ask_export("geojson"))
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress_label = QLabel()
        self.progress_label.setWordWrap(True)
        #: Applied to failure messages before they are shown: hides file names under the anonymised display.
        self.rewrite: Callable[[str], str] | None = None
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(lambda: self.worker.cancel())
        self.precision_box = QComboBox()
        for precision in PRECISIONS:
            self.precision_box.addItem(precision, precision)
        #: The device models run on, once the runtime probe has found it (float16 needs CUDA).
        self.model_device: str | None = None
        self.ood_banner = QLabel()
        self.ood_banner.setObjectName("oodBanner")
        self.ood_banner.setStyleSheet(BANNER_STYLE)
        self.ood_banner.setWordWrap(True)
        self.ood_note = QLabel()
        self.ood_note.setObjectName("oodNote")
        self.ood_note.setStyleSheet(NOTE_STYLE)
        self.ood_note.setWordWrap(True)
        self.result_label = QLabel("No result yet.")
        self.result_label.setWordWrap(True)
        self.result_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.peak_button = QPushButton()
        self.peak_button.setToolTip("Show the slice where the chosen class is most probable")
        self.peak_button.clicked.connect(self._go_to_peak)
        self.back_button = QPushButton("Back to the slide mean")
        self.back_button.setToolTip("Show the whole slide's summary again instead of the clicked patch")
        self.back_button.clicked.connect(self.show_slide_summary)
        self.bars = pg.PlotWidget()
        self.bars.setFixedHeight(170)
        self.bars.setMouseEnabled(False, False)
        self.bars.setYRange(0, 1)
        self.bars.hideButtons()
        #: What the bars and the curve show, in words (their plots' titles, without the markup).
        self.bars_title = ""
        self.curve_title = ""
        self.curve = pg.PlotWidget()
        self.curve.setFixedHeight(190)
        self.curve.setLabel("bottom", "slice number")
        self.curve.setYRange(0, 1)
        self.curve.setMouseEnabled(False, False)
        self.curve.hideButtons()
        self.curve_legend_text = ""  # the title's second line: what the crosses on the curve mean
        self.curve.scene().sigMouseClicked.connect(self._curve_clicked)
        #: The flagged slices' marks on the curve (None when none are flagged) and the shown slice's line.
        self.curve_marks: pg.ScatterPlotItem | None = None
        self.slice_line: pg.InfiniteLine | None = None
        self.method_box = QComboBox()
        for key, label in SALIENCY_METHODS:
            self.method_box.addItem(label, key)
        self.class_box = QComboBox()
        self.class_box.setToolTip("The class saliency explains and the result leads with")
        self.class_box.currentIndexChanged.connect(self._class_changed)
        self.saliency_button = QPushButton("Show saliency on this slice")
        self.saliency_button.clicked.connect(self.run_saliency)
        self.saliency_caption = QLabel()
        self.saliency_caption.setWordWrap(True)
        default = OverlayStyle()
        self.colormap_box = QComboBox()
        for name in COLORMAP_NAMES:
            self.colormap_box.addItem(name)
        self.colormap_box.setCurrentText(default.colormap)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(5, 100)
        self.opacity_slider.setValue(round(default.opacity * 100))
        self.opacity_slider.setToolTip("Overlay opacity")
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.0, 0.95)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setValue(default.threshold)
        self.threshold_spin.setToolTip("Values below this are not drawn")
        self.colormap_box.currentTextChanged.connect(self.overlay_style_changed)
        self.opacity_slider.valueChanged.connect(self.overlay_style_changed)
        self.threshold_spin.valueChanged.connect(self.overlay_style_changed)

        model_box = QGroupBox("Model")
        model_layout = QVBoxLayout(model_box)
        model_layout.addWidget(self.model_box)
        buttons = QHBoxLayout()
        buttons.addWidget(card_button)
        buttons.addWidget(add_button)
        model_layout.addLayout(buttons)
        precision_row = QHBoxLayout()
        precision_row.addWidget(QLabel("Precision:"))
        precision_row.addWidget(self.precision_box, 1)
        model_layout.addLayout(precision_row)
        model_layout.addWidget(QLabel("Run on:"))
        runs = QGridLayout()
        for i, button in enumerate(
            (self.run_slice_button, self.run_all_button, self.run_volume_button, self.run_slide_button)
        ):
            runs.addWidget(button, i // 2, i % 2)
        model_layout.addLayout(runs)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        model_layout.addLayout(progress_row)
        model_layout.addWidget(self.progress_label)
        result_box = QGroupBox("Result")
        result_layout = QVBoxLayout(result_box)
        result_layout.addWidget(self.ood_banner)  # first: a flagged result must never read as a finding
        result_layout.addWidget(self.ood_note)
        result_layout.addWidget(self.result_label)
        result_layout.addWidget(self.peak_button)
        result_layout.addWidget(self.back_button)
        result_layout.addWidget(self.bars)
        result_layout.addWidget(self.curve)
        exports = QHBoxLayout()
        exports.addWidget(self.export_csv_button)
        exports.addWidget(self.export_geojson_button)
        result_layout.addLayout(exports)
        saliency_box = QGroupBox("Saliency")
        saliency_layout = QVBoxLayout(saliency_box)
        choice = QHBoxLayout()
        choice.addWidget(self.method_box)
        choice.addWidget(self.class_box)
        saliency_layout.addLayout(choice)
        saliency_layout.addWidget(self.saliency_button)
        saliency_layout.addWidget(self.saliency_caption)
        style = QGridLayout()
        style.addWidget(QLabel("Colours"), 0, 0)
        style.addWidget(self.colormap_box, 0, 1)
        style.addWidget(QLabel("Opacity"), 1, 0)
        style.addWidget(self.opacity_slider, 1, 1)
        style.addWidget(QLabel("Hide below"), 2, 0)
        style.addWidget(self.threshold_spin, 2, 1)
        saliency_layout.addLayout(style)
        content = QWidget()
        column = QVBoxLayout(content)
        for box in (runtime_box, model_box, result_box, saliency_box):
            column.addWidget(box)
        column.addStretch(1)
        scroll = QScrollArea()  # a short dock scrolls instead of squeezing the plots into each other
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        scroll.setMinimumWidth(PANEL_WIDTH)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(scroll)

        self._relay = _ProbeRelay(self)
        self._relay.done.connect(self._on_probe)
        self._pool = QThreadPool(self)
        self.probing = False
        self.ready = False
        self.worker = AiWorker(self)
        self.worker.progress.connect(self._on_progress)
        self.worker.finished_job.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_cancelled)
        self.packages: list[ModelPackage] = []
        stored = settings.value("ai/models", []) if settings is not None else []
        self.added_paths: list[str] = [stored] if isinstance(stored, str) else list(stored or [])
        self.volume: Volume | None = None
        self.slice_index = 0
        self.slide: Slide | None = None
        self.slide_region: Callable[[], tuple[float, float, float, float] | None] = lambda: None
        self.slide_result: object | None = None
        self.slide_shown: StoredResult | None = None  # the slide result with how to read it, for patch clicks
        self.slide_package: ModelPackage | None = None  # the model that made it, once known
        self.shown: object | None = None  # the image on screen: results of another are not drawn
        self.last_result: object | None = None
        self._curve_indices = np.zeros(0, dtype=int)
        #: The result shown (with the note that it is a kept one), the class it leads with, and the clicked
        #: patch (row, column) of a slide result, whose numbers replace the slide mean's in the bars.
        self.shown_result: StoredResult | None = None
        self._note = ""
        self.chosen = 0
        self.patch: tuple[int, int] | None = None
        self._peak_index: int | None = None
        self._flagged_slices = np.zeros(0, dtype=bool)  # per row of the shown slice result
        self._set_running(False)
        self._offer_precisions()
        self.clear_result()
        self.reload_models()

    # models -------------------------------------------------------------------------------------

    def reload_models(self) -> None:
        """The demo models and the ones added here; unreadable packages are listed in the tooltip."""
        paths = builtin_bundles() + [Path(p) for p in self.added_paths]
        self.packages, problems = [], []
        for path in paths:
            try:
                self.packages.append(read_package(path))
            except MedviewerError as exc:
                problems.append(str(exc))
        self.model_box.blockSignals(True)
        self.model_box.clear()
        for package in self.packages:
            self.model_box.addItem(f"{package.name} {package.version}")
        self.model_box.blockSignals(False)
        self.model_box.setToolTip("\n".join(problems))
        self._model_changed()

    def package(self) -> ModelPackage | None:
        index = self.model_box.currentIndex()
        return self.packages[index] if 0 <= index < len(self.packages) else None

    def show_card(self) -> None:
        package = self.package()
        if package is not None:
            self.card_dialog = ModelCardDialog(package, _hashes(package), parent=self)
            self.card_dialog.open()

    def add_model(
        self, path: Path, approve: bool, shown: tuple[ModelPackage, dict[Path, str]] | None = None
    ) -> ModelPackage:
        """Read a package and, when ``approve``, add its weights' hashes to the approved list.

        ``shown`` is the package and hashes the approval dialog showed: those are approved, with the metadata
        and card read then, and a weights file whose bytes changed while the dialog was open is refused rather
        than approved in their stead (a package read again here could be another)."""
        package, hashes = shown if shown is not None else (read_package(path), {})
        if approve:
            for weights in package.weights.values():
                registry.approve(weights, package, shown_sha256=hashes.get(weights))
        if str(path) not in self.added_paths:
            self.added_paths.append(str(path))
            if self.settings is not None:
                self.settings.setValue("ai/models", self.added_paths)
        self.reload_models()
        return package

    def _ask_add_model(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Add a model bundle folder")
        if not name:
            return
        try:
            package = read_package(Path(name))
        except MedviewerError as exc:
            QMessageBox.warning(self, "Not a model package", str(exc))
            return
        hashes = _hashes(package)
        dialog = ModelCardDialog(package, hashes, "Approve it to run on this computer?", parent=self)
        accepted = dialog.exec() == QDialog.DialogCode.Accepted
        try:
            self.add_model(Path(name), approve=accepted, shown=(package, hashes))
        except MedviewerError as exc:
            QMessageBox.warning(self, "Model not approved", str(exc))

    def _model_changed(self) -> None:
        """The chosen model's classes, and the buttons for what it can run; a job still running keeps its
        Cancel button (``_set_running`` disables every run button when there is no model)."""
        package = self.package()
        self.class_box.blockSignals(True)
        self.class_box.clear()
        if package is not None:
            self.class_box.addItems(list(package.spec.classes))
            self.class_box.setCurrentIndex(len(package.spec.classes) - 1)
        self.class_box.blockSignals(False)
        self._class_changed()
        self._set_running(self.worker.busy())

    # context from the window ----------------------------------------------------------------------

    def set_volume(self, volume: Volume | None, slice_index: int = 0) -> None:
        self.volume = volume
        self.slice_index = slice_index
        if volume is not None:
            self.shown = volume
            self._offer_model_for(("slice", "volume"))
        self._set_running(self.worker.busy())

    def set_shown(self, image: object | None) -> None:
        """The image on screen now (the window's tab changed): only its results are drawn."""
        self.shown = image

    def set_slice(self, index: int) -> None:
        """The slice shown in the viewer (0-based): a slice run's bars show its probabilities."""
        if index == self.slice_index:
            return
        self.slice_index = index
        self._set_running(self.worker.busy())  # the saliency button names the slice
        stored = self.shown_result
        if stored is not None and stored.kind == "slices" and len(stored.result.indices) > 1:
            self._draw_slice_bars()

    def set_slide(self, slide: Slide | None, region: Callable[[], tuple[float, float, float, float] | None]) -> None:
        """The shown slide, and where to ask for the selected annotation's region (None: all tissue)."""
        self.slide, self.slide_region = slide, region
        self.slide_result = self.slide_shown = self.slide_package = None
        if slide is not None:
            self.shown = slide
            self._offer_model_for(("slide_patch",))
        self._set_running(self.worker.busy())

    def _offer_model_for(self, targets: tuple[str, ...]) -> None:
        """Choose the first model that runs on the image just shown, unless the chosen one already does: a
        CT model left selected over a slide would leave every run button greyed out for no visible reason."""
        current = self.package()
        if current is not None and current.spec.target in targets:
            return
        for index, package in enumerate(self.packages):
            if package.spec.target in targets:
                self.model_box.setCurrentIndex(index)
                return

    # runs ---------------------------------------------------------------------------------------

    def run(self, every_slice: bool) -> AiJob | None:
        """Classify the shown slice, or every slice (a per-slice probability curve), in the background."""
        package, volume = self.package(), self.volume
        if package is None or volume is None:
            return None
        indices = list(range(volume.shape[0])) if every_slice else [self.slice_index]
        where = "every slice" if every_slice else f"slice {self.slice_index + 1}"
        precision = self.precision()
        job = AiJob(
            "slices",
            f"{package.name} on {where} ({precision})",
            lambda progress, cancelled: _run_slices(package, volume, indices, precision, progress, cancelled),
            {"package": package, "volume": volume, "precision": precision},
        )
        self._start(job)
        return job

    def run_volume(self) -> AiJob | None:
        """Classify the whole volume with a ``volume`` model, in the background."""
        package, volume = self.package(), self.volume
        if package is None or volume is None:
            return None
        precision = self.precision()
        job = AiJob(
            "volume",
            f"{package.name} on the volume ({precision})",
            lambda progress, cancelled: _run_volume(package, volume, precision, progress, cancelled),
            {"package": package, "volume": volume, "precision": precision},
        )
        self._start(job)
        return job

    def run_slide(self) -> AiJob | None:
        """Patches over the tissue (or the selected annotation's box) at the model's MPP, in the background."""
        package, slide = self.package(), self.slide
        if package is None or slide is None:
            return None
        region = self.slide_region()
        where = "the selected region" if region is not None else "the tissue"
        precision = self.precision()
        job = AiJob(
            "slide",
            f"{package.name} on {where} of {slide.path.name} ({precision})",
            lambda progress, cancelled: _run_slide(package, slide, region, precision, progress, cancelled),
            {"package": package, "slide": slide, "precision": precision},
        )
        self._start(job)
        return job

    def patch_clicked(self, x: float, y: float) -> AiJob | None:
        """Show the clicked patch's probabilities (bars and text) and lay its saliency over it."""
        result = self.slide_result
        if result is None or self.worker.busy():
            return None
        cell = result.patch_at(x, y)
        if cell is None or not np.isfinite(result.probabilities[cell]).all():
            return None
        shown = self.slide_shown
        row, column = cell
        if shown is self.shown_result:
            self.patch = cell
            self._render()
        package = self._model_of(shown)
        if package is None:
            self.saliency_caption.setText(
                f"The model that made this result ({result.info.model_name} {result.info.model_version}, SHA-256 "
                f"{result.info.model_hash[:12]}…) is not installed here, so its saliency cannot be computed."
            )
            return None
        method = self.method_box.currentData()
        class_index = max(self.class_box.currentIndex(), 0)
        slide, grid = self.slide, result.grid
        job = AiJob(
            "patch_saliency",
            f"{self.method_box.currentText()} of {package.name} on the patch at {cell_words(row, column)}",
            lambda progress, cancelled: _patch_saliency(package, slide, grid, cell, method, class_index, cancelled),
            {
                "package": package,
                "method": self.method_box.currentText(),
                "class": package.spec.classes[class_index],
                "box": grid.box(row, column),
                "slide": slide,
            },
        )
        self._start(job)
        return job

    def export_slide_result(self, kind: str, path: Path) -> None:
        from medviewer.ai.slide_run import write_csv, write_geojson

        (write_csv if kind == "csv" else write_geojson)(self.slide_result, path)

    def _ask_export(self, kind: str) -> None:
        if self.slide_result is None:
            return
        pattern = "CSV (*.csv)" if kind == "csv" else "QuPath GeoJSON (*.geojson)"
        name, _ = QFileDialog.getSaveFileName(self, "Export the slide result", "", pattern)
        if name:
            try:
                self.export_slide_result(kind, Path(name))
            except OSError as exc:
                self.progress_label.setText(f"{name}: could not be written ({exc.strerror})")

    def run_saliency(self) -> AiJob | None:
        package, volume = self.package(), self.volume
        if package is None or volume is None:
            return None
        method = self.method_box.currentData()
        class_index = max(self.class_box.currentIndex(), 0)
        if package.spec.target == "volume":
            index, where = None, "the volume"
        else:
            index, where = self.slice_index, f"slice {self.slice_index + 1}"
        work = partial(_saliency, package, volume, index, method, class_index)
        job = AiJob(
            "saliency",
            f"{self.method_box.currentText()} of {package.name} on {where}",
            work,
            {
                "package": package,
                "volume": volume,
                "method": self.method_box.currentText(),
                "class": package.spec.classes[class_index],
            },
        )
        self._start(job)
        return job

    def busy(self) -> bool:
        return self.probing or self.worker.busy()

    def overlay_style(self) -> OverlayStyle:
        return OverlayStyle(
            self.colormap_box.currentText(), self.opacity_slider.value() / 100.0, self.threshold_spin.value()
        )

    def _start(self, job: AiJob) -> None:
        self.progress.setValue(0)
        self.progress_label.setText(f"{job.description}…")
        self._set_running(True)
        self.worker.submit(job)

    def _set_running(self, running: bool) -> None:
        """Buttons for what the chosen model can do on what is shown, while nothing runs."""
        package = self.package()
        ready = package is not None and self.volume is not None and not running
        is_slice = package is not None and package.spec.target == "slice"
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)
        for button in (self.run_slice_button, self.run_all_button):
            button.setEnabled(ready and is_slice)
        is_volume = package is not None and package.spec.target == "volume"
        self.saliency_button.setEnabled(ready and (is_slice or is_volume))
        if is_volume:
            saliency = "Show saliency on the volume"
        elif is_slice and self.volume is not None:
            saliency = f"Show saliency on slice {slice_number(self.slice_index)}"
        elif package is not None and package.spec.target == "slide_patch":
            saliency = "Click a patch on the slide for its saliency"
        else:
            saliency = "Show saliency on this slice"
        self.saliency_button.setText(saliency)
        self.run_volume_button.setEnabled(ready and package.spec.target == "volume")
        self.run_slide_button.setEnabled(
            package is not None and self.slide is not None and not running and package.spec.target == "slide_patch"
        )
        for button in (self.export_csv_button, self.export_geojson_button):
            button.setEnabled(self.slide_result is not None and not running)

    def _on_progress(self, job: AiJob, fraction: float, words: str) -> None:
        self.progress.setValue(round(fraction * 1000))
        self.progress_label.setText(words)

    def _on_finished(self, job: AiJob, result: object) -> None:
        self._set_running(self.worker.busy())
        image = job.image
        if image is not self.shown:
            # Another image is shown now: drawing this result would lay it over the wrong one. It is still
            # a result of the image it ran on, so the window records it.
            self.progress_label.setText(f"Finished: {job.description} (not shown: another image is open now)")
            self.result_ready.emit(job, result)
            return
        self.progress_label.setText(f"Finished: {job.description}")
        if job.kind in ("slices", "volume", "slide"):
            self._show_result(of_run(job.kind, result, job.context["package"], image), job.context["package"])
        elif job.kind == "patch_saliency":
            saliency, info = result
            x, y, width, height = job.context["box"]
            rows, columns = saliency.shape
            caption = f"{job.context['method']} ({job.context['class']}) on the patch"
            self.saliency_caption.setText(
                f"Model attention ({job.context['method']} for '{job.context['class']}') inside the clicked patch: "
                "where the model looked, not where tumour is. "
                f"{_identity(info, job.context['package'].spec.diagnostic_use)}"
            )
            self.slide_detail_ready.emit(saliency, (x, y), (width / columns, height / rows), caption)
        else:
            heatmap, info = result
            caption = (
                f"Model attention ({job.context['method']} for '{job.context['class']}'): where the model looked "
                "for this class, not where a lesion is. "
                f"{_identity(info, job.context['package'].spec.diagnostic_use)}"
            )
            self.saliency_caption.setText(caption)
            self.heatmap_ready.emit(heatmap, f"{job.context['method']} ({job.context['class']})")
        self.last_result = result
        self.result_ready.emit(job, result)

    def _on_failed(self, job: AiJob, message: str) -> None:
        self._set_running(self.worker.busy())
        self.progress_label.setText(f"Failed: {self.rewrite(message) if self.rewrite else message}")

    def _on_cancelled(self, job: AiJob) -> None:
        self._set_running(self.worker.busy())
        self.progress_label.setText(f"Cancelled: {job.description}")

    def clear_result(self) -> None:
        """Forget the shown result and the last run's words: another image is shown now (a run still going
        keeps its progress line)."""
        self.result_label.setText("No result yet.")
        if not self.worker.busy():
            self.progress_label.clear()
        self.shown_result, self._note, self.patch, self._peak_index = None, "", None, None
        self._show_ood(None, shown=False)
        self.bars.clear()
        self._set_bars_title("")
        self.bars.hide()
        self._clear_curve()
        self.curve.hide()
        self.peak_button.hide()
        self.back_button.hide()
        self.saliency_caption.clear()
        self.last_result = None

    def show_stored(self, stored: StoredResult, created: str) -> str | None:
        """Show a result kept from an earlier run on the image shown now (``created``: when, ISO 8601 UTC), as
        a fresh one is shown and marked as stored. Returns why it is not shown, or None: the image shown must
        be of its kind and have the grid it was computed on (a series re-imported with other slices, or a
        slide replaced at the same path, would put the old numbers in the wrong places)."""
        image = self.slide if stored.kind == "slide" else self.volume
        if image is None or image is not self.shown:
            return "it belongs to another kind of image than the one shown"
        if shape_of(image) != stored.image_shape:
            return (
                f"it was computed on an image of {' x '.join(map(str, stored.image_shape))} and this one is "
                f"{' x '.join(map(str, shape_of(image)))}: run the model again"
            )
        self._show_result(stored, None, note=f"Stored result of {created[:16].replace('T', ' ')} UTC. ")
        self.last_result = stored.result
        return None

    def _show_result(self, stored: StoredResult, package: ModelPackage | None, note: str = "") -> None:
        """The warning or note on the training data, the summary, the bars and the per-slice curve or the slide
        heatmap of a result, with who computed it and how. ``package`` is the model that made it when known (a
        fresh run); a kept result's is looked up on a patch click."""
        self.shown_result, self._note, self.patch = stored, note, None
        if stored.kind == "slide":
            self.slide_result, self.slide_shown, self.slide_package = stored.result, stored, package
        self.chosen = ai_words.chosen_index(tuple(stored.result.classes), self.class_box.currentText() or None)
        self._render(heatmap=True)
        self._set_running(self.worker.busy())

    def show_slide_summary(self) -> None:
        """Back from a clicked patch to the whole slide: its mean in the bars, its summary alone in the text,
        and the patch's saliency taken away."""
        if self.patch is None:
            return
        self.patch = None
        self._render()
        self.saliency_caption.clear()
        self.slide_detail_ready.emit(None, (0.0, 0.0), (1.0, 1.0), "")

    def _class_changed(self) -> None:
        """Another class chosen for saliency: the result leads with it (its curve, its heatmap)."""
        stored = self.shown_result
        if stored is None:
            return
        chosen = ai_words.chosen_index(tuple(stored.result.classes), self.class_box.currentText() or None)
        if chosen != self.chosen:
            self.chosen = chosen
            self._render(heatmap=True)

    def _render(self, heatmap: bool = False) -> None:
        """Draw the shown result; ``heatmap``: send a slide result's heatmap to the slide view too (a patch
        click keeps the one drawn, and the saliency over it)."""
        stored = self.shown_result
        if stored is None:
            return
        result = stored.result
        ood = getattr(result, "ood", _NO_CHECK)
        identity = _identity(result.info, stored.diagnostic_use)
        extra: list[str]  # paragraphs after the summary: what is outside the training data, the clicked patch
        if stored.kind == "slices":
            self._show_ood(ood)
            lines, extra = self._render_slices(stored, ood)
        elif stored.kind == "volume":
            self._show_ood(ood)
            lines, extra = self._render_volume(stored), []
        else:
            self._show_ood(ood)
            lines, extra = self._render_slide(stored, ood, heatmap)
        note = [self._note.strip()] if self._note else []  # a kept result says so first, on a line of its own
        self.result_label.setText("\n".join(note + ["\n\n".join(["\n".join(lines), *extra, identity])]))

    def _show_ood(self, ood: object, shown: bool = True) -> None:
        """The warning banner for a flagged result, else the quieter line of what is known of the check."""
        if ood is _NO_CHECK:  # a result type the check does not cover
            words = ai_words.OodWords("", ai_words.not_checked(NOT_AVAILABLE))
        else:
            words = ai_words.ood_words(ood)  # type: ignore[arg-type]
        self.ood_banner.setText(f"⚠ {words.warning}" if words.warning else "")
        self.ood_banner.setVisible(shown and bool(words.warning))
        self.ood_note.setText(words.note)
        self.ood_note.setVisible(shown and bool(words.note))

    def _render_slices(self, stored: StoredResult, ood: object) -> tuple[list[str], list[str]]:
        result, activation = stored.result, stored.activation
        indices = tuple(int(i) for i in result.indices)
        summary = ai_words.summarise(indices, tuple(result.classes), result.probabilities, activation, self.chosen)
        flagged = ai_words.flagged_of(None if ood is _NO_CHECK else ood, (len(indices),))  # type: ignore[arg-type]
        lines = ai_words.slice_lines(summary)
        warning = ai_words.flagged_slice_words(indices, flagged, summary if len(indices) > 1 else None)
        extra = [warning] if warning else []
        self._flagged_slices = flagged
        self._draw_slice_bars()
        self._clear_curve()
        self.back_button.hide()
        if len(indices) == 1:
            self.curve.hide()
            self.peak_button.hide()
            self._peak_index = None
            return lines, extra
        self._peak_index = summary.explained_index
        self.peak_button.setText(ai_words.peak_words(summary))
        self.peak_button.show()
        self._draw_curve(
            indices, result.probabilities[:, self.chosen], flagged, result.classes[self.chosen], activation
        )
        return lines, extra

    def _draw_slice_bars(self) -> None:
        """The bars of a slice run: the slice shown in the viewer when the run covered it, else the slice where
        the chosen class peaks (a one-slice run: that slice)."""
        stored = self.shown_result
        if stored is None or stored.kind != "slices":
            return
        result = stored.result
        indices = [int(i) for i in result.indices]
        if self.slice_index in indices:
            row = indices.index(self.slice_index)
        else:
            row = int(np.argmax(result.probabilities[:, self.chosen]))
        flagged = self._flagged_slices if len(self._flagged_slices) == len(indices) else np.zeros(len(indices), bool)
        depth = stored.image_shape[0] if stored.image_shape else max(indices) + 1
        self._draw_bars(
            list(result.classes),
            result.probabilities[row],
            stored.activation,
            ai_words.slice_bars_title(indices[row], depth, stored.activation),
            flagged=bool(flagged[row]),
        )
        if self.slice_line is not None:
            self.slice_line.setValue(slice_number(indices[row]))

    def _render_volume(self, stored: StoredResult) -> list[str]:
        result = stored.result
        self._clear_curve()
        self.curve.hide()
        self.peak_button.hide()
        self.back_button.hide()
        self._draw_bars(
            list(result.classes), result.probabilities, stored.activation, ai_words.volume_bars_title(stored.activation)
        )
        return ai_words.volume_lines(tuple(result.classes), result.probabilities, self.chosen)

    def _render_slide(self, stored: StoredResult, ood: object, heatmap: bool) -> tuple[list[str], list[str]]:
        result, activation = stored.result, stored.activation
        classes = tuple(result.classes)
        grid = result.grid
        summary = summarise_slide(result.probabilities, grid.tissue, self.chosen, classes)
        flagged = ai_words.flagged_of(None if ood is _NO_CHECK else ood, (grid.rows, grid.columns))  # type: ignore[arg-type]
        self._clear_curve()
        self.curve.hide()
        self.peak_button.hide()
        lines = [ai_words.slide_bars_title(summary.patches) + ":", *summary.lines()]
        extra = []
        outside = int((flagged & grid.tissue).sum())
        if outside:
            extra.append(
                f"Outside the training data: {outside} of {int(grid.tissue.sum())} tissue patches (hatched on the "
                "slide)."
            )
        if self.patch is None:
            extra.append("Click a patch for its probabilities and saliency.")
            self.back_button.hide()
            self._draw_bars(list(classes), summary.mean, activation, ai_words.slide_bars_title(summary.patches))
        else:
            row, column = self.patch
            values = result.probabilities[row, column]
            extra.append(ai_words.patch_line(row, column, classes, values, self.chosen, bool(flagged[row, column])))
            self.back_button.show()
            self._draw_bars(
                list(classes), values, activation, ai_words.patch_bars_title(row, column), bool(flagged[row, column])
            )
        if heatmap:
            probability = ai_words.is_probability(activation)
            self.slide_heatmap_ready.emit(
                result.heatmap(self.chosen),
                grid.origin,
                grid.patch_size_level0,
                f"{ai_words.value_of(classes[self.chosen], activation)} per patch",
                1.0 if probability else None,
                flagged if flagged.any() else None,
            )
        return lines, extra

    def _model_of(self, stored: StoredResult) -> ModelPackage | None:
        """The installed package whose weights made a kept result (same SHA-256), for saliency on its patches;
        found once per result (hashing a large model takes a while) and None when no file matches."""
        if self.slide_package is not None:
            return self.slide_package
        info = stored.result.info
        for package in self.packages:
            if (package.name, package.version) != (info.model_name, info.model_version):
                continue
            for path in package.weights.values():
                try:
                    if registry.sha256_of(path) == info.model_hash:
                        self.slide_package = package
                        return package
                except OSError:  # a weights file gone since the package was listed
                    continue
        return None

    def _draw_bars(
        self, classes: list[str], values: np.ndarray, activation: str, title: str, flagged: bool = False
    ) -> None:
        """One bar per class with its number over it, under a title that says what they are; the bars of an
        input outside the training data are hatched grey, and the title says so."""
        self.bars.clear()
        values = np.asarray(values, dtype=np.float64)
        brush = QBrush(QColor(FLAGGED_COLOUR), Qt.BrushStyle.BDiagPattern) if flagged else QBrush(QColor(BAR_COLOUR))
        pen = pg.mkPen(FLAGGED_COLOUR if flagged else BAR_COLOUR)
        self.bars.addItem(pg.BarGraphItem(x=np.arange(len(classes)), height=values, width=0.6, brush=brush, pen=pen))
        probability = ai_words.is_probability(activation)
        for k, value in enumerate(values):
            label = pg.TextItem(f"{value:.2f}", color=LABEL_COLOUR, anchor=(0.5, 1.0))
            label.setPos(k, value if probability else max(value, 0.0))
            self.bars.addItem(label)
        self.bars.getAxis("bottom").setTicks([list(enumerate(classes))])
        self.bars.setLabel("left", "probability" if probability else "score")
        if probability:
            self.bars.setYRange(0, 1.15, padding=0)
        else:
            self.bars.enableAutoRange(axis="y")
        self.bars.setXRange(-0.6, len(classes) - 0.4, padding=0)
        self._set_bars_title(title, flagged)
        self.bars.show()

    def _set_bars_title(self, title: str, flagged: bool = False) -> None:
        self.bars_title = title + (f" ({ai_words.OUTSIDE})" if flagged and title else "")
        warning = f"<br><span style='color:{FLAGGED_COLOUR}'>{ai_words.OUTSIDE}</span>" if flagged else ""
        self.bars.setTitle(f"{title}{warning}" if title else None, size="9pt")

    def _clear_curve(self) -> None:
        self.curve.clear()
        self.curve_marks = None
        self.slice_line = None
        self.curve_title = self.curve_legend_text = ""
        self._curve_indices = np.zeros(0, dtype=int)

    def _draw_curve(
        self, indices: tuple[int, ...], values: np.ndarray, flagged: np.ndarray, name: str, activation: str
    ) -> None:
        """The chosen class per slice (x: slice numbers from 1), a dashed line at the slice the bars show, and
        red crosses on the slices outside the training data."""
        numbers = np.asarray(indices) + 1
        self.curve.plot(numbers, values, pen=pg.mkPen("#d9534f", width=2))
        self.slice_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#707070", style=Qt.PenStyle.DashLine))
        self.curve.addItem(self.slice_line)
        if flagged.any():
            self.curve_marks = pg.ScatterPlotItem(
                x=numbers[flagged],
                y=np.asarray(values)[flagged],
                symbol="x",
                size=10,
                pen=pg.mkPen(FLAGGED_COLOUR, width=1),
                brush=pg.mkBrush(FLAGGED_COLOUR),
            )
            self.curve.addItem(self.curve_marks)
        self.curve_title = ai_words.curve_title(name, activation)
        # The crosses' legend is the title's second line: inside the plot it would hide the curve's peaks.
        self.curve_legend_text = f"✕ {ai_words.OUTSIDE}" if flagged.any() else ""
        legend = f"<br><span style='color:{FLAGGED_COLOUR}'>{self.curve_legend_text}</span>" if flagged.any() else ""
        self.curve.setTitle(f"{self.curve_title}{legend}", size="9pt")
        self.curve.setLabel("left", ai_words.value_of(name, activation))
        if ai_words.is_probability(activation):
            self.curve.setYRange(0, 1.05, padding=0)
        else:
            self.curve.enableAutoRange(axis="y")
        self.curve.setXRange(float(numbers.min()), float(numbers.max()), padding=0.02)
        self._curve_indices = np.asarray(indices)
        self.curve.show()
        self._draw_slice_bars()

    def _go_to_peak(self) -> None:
        if self._peak_index is not None:
            self.slice_chosen.emit(self._peak_index)

    def _curve_clicked(self, event: object) -> None:
        indices = self._curve_indices
        if not len(indices):
            return
        number = self.curve.getPlotItem().vb.mapSceneToView(event.scenePos()).x()
        self.slice_chosen.emit(int(indices[np.argmin(np.abs(indices + 1 - number))]))

    # runtime probe ------------------------------------------------------------------------------

    def schedule_probe(self, delay_ms: int = 0) -> None:
        """Probe from the event loop after ``delay_ms``; counts as busy from now on."""
        if self.probing or self.ready:
            return
        self.probing = True
        QTimer.singleShot(delay_ms, self._start_probe)

    def _start_probe(self) -> None:
        self.runtime_label.setText("Loading the AI runtime in the background…")
        self._pool.start(_ProbeTask(self._relay))

    def shutdown(self) -> None:
        """Cancel model jobs and let a running probe finish: an import cut off by exit crashes the process."""
        self.worker.shutdown()
        self._pool.waitForDone()

    def _on_probe(self, text: str, finished_at: float, devices: list[str] | None = None) -> None:
        self.runtime_label.setText(text)
        self.model_device = devices[0] if devices else None  # models run on the fastest (choose_device)
        self._offer_precisions()
        self.probing = False
        self.ready = True
        self.runtime_ready.emit(finished_at)

    # precision ------------------------------------------------------------------------------------

    def _offer_precisions(self) -> None:
        """float16 only where models run on CUDA (elsewhere it would run in float32 anyway, and say so)."""
        cuda = self.model_device == "cuda"
        item = cast(QStandardItemModel, self.precision_box.model()).item(PRECISIONS.index("float16"))
        item.setEnabled(cuda)
        if not cuda and self.precision_box.currentData() == "float16":
            self.precision_box.setCurrentIndex(PRECISIONS.index("float32"))
        if cuda:
            why = "float16 is faster on the GPU; its probabilities can differ from float32's in the third decimal"
        elif self.model_device is None:
            why = "float16 needs a CUDA GPU; the devices are known once the AI runtime has loaded"
        else:
            why = f"float16 needs a CUDA GPU; models run on the {self.model_device.upper()} here, in float32"
        item.setToolTip(why)
        self.precision_box.setToolTip(f"The numeric precision models run at. {why}.")

    def precision(self) -> Precision:
        """The precision the next run asks for: float16 only when chosen and models run on CUDA."""
        chosen = self.precision_box.currentData()
        return "float16" if chosen == "float16" and self.model_device == "cuda" else "float32"


def _hashes(package: ModelPackage) -> dict[Path, str]:
    return {path: registry.sha256_of(path) for path in package.weights.values()}


def _identity(info: object, diagnostic_use: bool) -> str:
    """Who answered, on what, how long: every result carries it."""
    words = (
        f"{info.model_name} {info.model_version} · SHA-256 {info.model_hash[:12]}… · {info.device}, "
        f"{info.precision} · {info.duration_s:.2f} s"
    )
    notes = f" ({'; '.join(info.notes)})" if info.notes else ""
    return words + notes + ("" if diagnostic_use else f" · {NOT_DIAGNOSTIC}")


_LOADED: dict[Path, object] = {}  # loaded modules by weights path; used on the worker thread only


def _loaded(package: ModelPackage) -> object:
    from medviewer.ai.devices import choose_device
    from medviewer.ai.package import load_module

    key = package.source
    if key not in _LOADED:
        _LOADED[key] = load_module(package, device=choose_device())
    return _LOADED[key]


def _run_slices(
    package: ModelPackage, volume: Volume, indices: list[int], precision: Precision, progress, cancelled
) -> object:
    from medviewer.ai.inference import run_slices

    progress(0.0, f"Loading {package.name}…")
    return run_slices(_loaded(package), volume, indices, progress=progress, cancelled=cancelled, precision=precision)


def _run_volume(package: ModelPackage, volume: Volume, precision: Precision, progress, cancelled) -> object:
    from medviewer.ai.inference import run_volume

    progress(0.0, f"Loading {package.name}…")
    return run_volume(_loaded(package), volume, progress=progress, cancelled=cancelled, precision=precision)


def _run_slide(package: ModelPackage, slide: Slide, region, precision: Precision, progress, cancelled) -> object:
    from medviewer.ai.slide_run import patch_grid, run_slide

    progress(0.0, f"Loading {package.name}…")
    loaded = _loaded(package)
    progress(0.0, "Finding tissue…")
    grid = patch_grid(slide, package.spec, region=region)
    return run_slide(loaded, slide, grid, progress=progress, cancelled=cancelled, precision=precision)


def _patch_saliency(
    package: ModelPackage,
    slide: Slide,
    grid: object,
    cell: tuple[int, int],
    method: str,
    class_index: int,
    cancelled: Callable[[], bool],
) -> tuple[np.ndarray, object]:
    from medviewer.ai.saliency import SaliencyRun
    from medviewer.ai.slide_saliency import saliency_on_patch

    run = SaliencyRun(_loaded(package))
    started = time.perf_counter()
    saliency = saliency_on_patch(run, slide, grid, cell, method, class_index, cancelled)
    return saliency, _info(package, run, started)


def _info(package: ModelPackage, run: SaliencyRun, started: float) -> object:
    """A saliency map's identity: where it was finished (the CPU after CUDA ran out of memory) and why."""
    from medviewer.ai.inference import RunInfo

    return RunInfo(
        model_name=package.name,
        model_version=package.version,
        model_hash=run.loaded.sha256,
        device=run.device,
        precision="float32",
        duration_s=time.perf_counter() - started,
        batch_size=1,
        notes=tuple(run.notes),
    )


def _saliency(
    package: ModelPackage,
    volume: Volume,
    index: int | None,
    method: str,
    class_index: int,
    progress: Callable[[float, str], None],
    cancelled: Callable[[], bool],
) -> tuple[Volume, object]:
    """The saliency of slice ``index`` (a slice model) or of the whole volume (a volume model, ``index`` None)
    in world space, for the volume view's heatmap."""
    from medviewer.ai.saliency import SaliencyRun, saliency_on_volume

    progress(0.0, f"Loading {package.name}…")
    run = SaliencyRun(_loaded(package))
    started = time.perf_counter()
    progress(0.2, "Computing saliency…")
    heatmap = saliency_on_volume(run, volume, index, method, class_index, cancelled)
    return heatmap, _info(package, run, started)
