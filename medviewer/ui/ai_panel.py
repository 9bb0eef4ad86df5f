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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
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

from medviewer.actions.jobs import MODEL_KINDS, Job
from medviewer.actions.model_runs import (
    ClassifierRun,
    LoadedModels,
    ModelRun,
    PatchSaliency,
    RunSetup,
    Runtime,
    VolumeSaliency,
    approve_job,
    patch_saliency_job,
    runtime_job,
    slices_job,
    slide_job,
    volume_job,
    volume_saliency_job,
)
from medviewer.actions.trail import ImageIdentity, identity_of
from medviewer.ai import registry
from medviewer.ai.available import builtin_bundles
from medviewer.ai.inference import SliceResult, VolumeResult
from medviewer.ai.ood import NOT_AVAILABLE
from medviewer.ai.package import ModelPackage, read_package
from medviewer.ai.saliency_methods import SALIENCY_METHODS
from medviewer.ai.slide_run import SlideResult
from medviewer.ai.stored_results import StoredResult, shape_of
from medviewer.ai.summary import slice_number, summarise_slide
from medviewer.core.colormaps import COLORMAP_NAMES
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.io.slide import Slide
from medviewer.ui import ai_words
from medviewer.ui.job_runner import JobRunner
from medviewer.ui.model_card_dialog import ModelCardDialog
from medviewer.ui.slide_overlays import SlideDetail, SlideHeatmap

if TYPE_CHECKING:
    from pyqtgraph.GraphicsScene.mouseEvents import MouseClickEvent

    from medviewer.ai.inference import Precision, RunInfo

log = logging.getLogger(__name__)
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


class AiPanel(QWidget):
    """``heatmap_ready(volume, caption)`` for the volume view (on the volume's own grid); ``run_finished(run)``
    when a run has ended and been recorded (a ``ModelRun``: the window refreshes what lists it);
    ``slice_chosen(index)`` (0-based) when a point of the per-slice curve is clicked or the slice where the
    chosen class peaks is asked for; ``slide_heatmap_ready(SlideHeatmap)`` and ``slide_detail_ready(SlideDetail
    or None)`` for the slide view.

    The runs themselves are ``medviewer.actions.model_runs`` jobs, given to the window's job runner."""

    runtime_ready = Signal(float)  # epoch seconds when torch finished importing
    heatmap_ready = Signal(Volume, str)
    run_finished = Signal(object)  # ModelRun
    slice_chosen = Signal(int)
    slide_heatmap_ready = Signal(object)  # SlideHeatmap
    slide_detail_ready = Signal(object)  # SlideDetail, or None to take the detail away
    overlay_style_changed = Signal()

    def __init__(
        self, settings: QSettings | None = None, parent: QWidget | None = None, jobs: JobRunner | None = None
    ) -> None:
        super().__init__(parent)
        self.jobs = jobs if jobs is not None else JobRunner(self)
        self.models = LoadedModels()  # loaded on the model lane's thread, kept for the next run
        #: The catalog file runs are listed in, or None (no catalog, or a damaged one): set by the window.
        self.catalog: Path | None = None
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
        self.cancel_button.clicked.connect(self.cancel)
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

        self.probing = False
        self.ready = False
        self.packages: list[ModelPackage] = []
        # A list of paths, or one path (QSettings gives a one-item list back so); its stubs say only ``object``.
        stored = cast("str | list[str] | None", settings.value("ai/models", []) if settings is not None else [])
        self.added_paths: list[str] = [stored] if isinstance(stored, str) else list(stored or [])
        self.volume: Volume | None = None
        self.slice_index = 0
        self.slide: Slide | None = None
        #: How the catalog and the audit trail name the volume and the slide shown.
        self.volume_identity: ImageIdentity | None = None
        self.slide_identity: ImageIdentity | None = None
        self.slide_region: Callable[[], tuple[float, float, float, float] | None] = lambda: None
        self.slide_result: SlideResult | None = None
        self.slide_shown: StoredResult | None = None  # the slide result with how to read it, for patch clicks
        self.slide_package: ModelPackage | None = None  # the model that made it, once known
        self.shown: Volume | Slide | None = None  # the image on screen: results of another are not drawn
        self.last_run: ModelRun | None = None
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
        """Read a package and list it here; when ``approve``, first add its weights' hashes to the approved list
        (a job: the registry and the audit trail are written), and list it once that is done.

        ``shown`` is the package and hashes the approval dialog showed: those are approved, with the metadata
        and card read then, and a weights file whose bytes changed while the dialog was open is refused rather
        than approved in their stead (a package read again here could be another)."""
        package, hashes = shown if shown is not None else (read_package(path), {})
        if not approve:
            self._list_model(path)
            return package
        self.jobs.submit(
            approve_job(package, hashes),
            lambda _approved: self._list_model(path),
            self._approval_refused,
        )
        return package

    def _approval_refused(self, message: str) -> None:
        QMessageBox.warning(self, "Model not approved", message)

    def _list_model(self, path: Path) -> None:
        if str(path) not in self.added_paths:
            self.added_paths.append(str(path))
            if self.settings is not None:
                self.settings.setValue("ai/models", self.added_paths)
        self.reload_models()

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
        self.add_model(Path(name), approve=accepted, shown=(package, hashes))

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
        self._set_running(self.model_busy())

    # context from the window ----------------------------------------------------------------------

    def set_volume(self, volume: Volume | None, slice_index: int = 0, identity: ImageIdentity | None = None) -> None:
        """The volume shown, and how the catalog names it (the window knows the path it came from; without
        one, the volume is named by its series UID or its description)."""
        self.volume, self.volume_identity = volume, identity
        self.slice_index = slice_index
        if volume is not None:
            self.shown = volume
            self._offer_model_for(("slice", "volume"))
        self._set_running(self.model_busy())

    def set_shown(self, image: Volume | Slide | None) -> None:
        """The image on screen now (the window's tab changed): only its results are drawn."""
        self.shown = image

    def set_slice(self, index: int) -> None:
        """The slice shown in the viewer (0-based): a slice run's bars show its probabilities."""
        if index == self.slice_index:
            return
        self.slice_index = index
        self._set_running(self.model_busy())  # the saliency button names the slice
        stored = self.shown_result
        if stored is not None and isinstance(stored.result, SliceResult) and len(stored.result.indices) > 1:
            self._draw_slice_bars()

    def set_slide(
        self,
        slide: Slide | None,
        region: Callable[[], tuple[float, float, float, float] | None],
        identity: ImageIdentity | None = None,
    ) -> None:
        """The shown slide, where to ask for the selected annotation's region (None: all tissue), and how the
        catalog names it."""
        self.slide, self.slide_region, self.slide_identity = slide, region, identity
        self.slide_result = self.slide_shown = self.slide_package = None
        if slide is not None:
            self.shown = slide
            self._offer_model_for(("slide_patch",))
        self._set_running(self.model_busy())

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

    def _named(self) -> tuple[Volume, ImageIdentity] | None:
        """The volume shown and its name in the catalog and the trail (by its series UID, or its description
        when the panel is used without a window that knows its path)."""
        volume = self.volume
        if volume is None:
            return None
        return volume, self.volume_identity or identity_of(volume, Path(volume.description or "volume"))

    def _named_slide(self) -> tuple[Slide, ImageIdentity] | None:
        slide = self.slide
        if slide is None:
            return None
        return slide, self.slide_identity or identity_of(slide, slide.path)

    def _setup(self, package: ModelPackage, identity: ImageIdentity) -> RunSetup:
        """A run of ``package`` on the image ``identity`` names, at the chosen precision, listed in the catalog."""
        return RunSetup(self.models, package, identity, self.precision(), self.catalog)

    def run(self, every_slice: bool) -> Job[ModelRun] | None:
        """Classify the shown slice, or every slice (a per-slice probability curve), in the background."""
        package, named = self.package(), self._named()
        if package is None or named is None:
            return None
        volume, identity = named
        indices = list(range(volume.shape[0])) if every_slice else [self.slice_index]
        return self._start(slices_job(self._setup(package, identity), volume, indices))

    def run_volume(self) -> Job[ModelRun] | None:
        """Classify the whole volume with a ``volume`` model, in the background."""
        package, named = self.package(), self._named()
        if package is None or named is None:
            return None
        volume, identity = named
        return self._start(volume_job(self._setup(package, identity), volume))

    def run_slide(self) -> Job[ModelRun] | None:
        """Patches over the tissue (or the selected annotation's box) at the model's MPP, in the background."""
        package, named = self.package(), self._named_slide()
        if package is None or named is None:
            return None
        slide, identity = named
        region = self.slide_region()
        return self._start(slide_job(self._setup(package, identity), slide, region))

    def patch_clicked(self, x: float, y: float) -> Job[ModelRun] | None:
        """Show the clicked patch's probabilities (bars and text) and lay its saliency over it."""
        result = self.slide_result
        if result is None or self.model_busy():
            return None
        cell = result.patch_at(x, y)
        if cell is None or not np.isfinite(result.probabilities[cell]).all():
            return None
        shown = self.slide_shown
        if shown is self.shown_result:
            self.patch = cell
            self._render()
        package = self._model_of(shown) if shown is not None else None
        if package is None:
            self.saliency_caption.setText(
                f"The model that made this result ({result.info.model_name} {result.info.model_version}, SHA-256 "
                f"{result.info.model_hash[:12]}…) is not installed here, so its saliency cannot be computed."
            )
            return None
        named = self._named_slide()
        if named is None:
            return None
        slide, identity = named
        method, class_index = self.method_box.currentData(), max(self.class_box.currentIndex(), 0)
        job = patch_saliency_job(self._setup(package, identity), slide, result.grid, cell, method, class_index)
        return self._start(job)

    def export_slide_result(self, kind: str, path: Path) -> None:
        from medviewer.ai.slide_run import write_csv, write_geojson

        assert self.slide_result is not None, "export is offered only while a slide result is shown"
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

    def run_saliency(self) -> Job[ModelRun] | None:
        package, named = self.package(), self._named()
        if package is None or named is None:
            return None
        volume, identity = named
        method, class_index = self.method_box.currentData(), max(self.class_box.currentIndex(), 0)
        index = None if package.spec.target == "volume" else self.slice_index
        return self._start(volume_saliency_job(self._setup(package, identity), volume, index, method, class_index))

    def busy(self) -> bool:
        return self.probing or self.model_busy()

    def model_busy(self) -> bool:
        return self.jobs.busy(*MODEL_KINDS)

    def cancel(self) -> None:
        self.jobs.cancel(*MODEL_KINDS)

    def overlay_style(self) -> OverlayStyle:
        return OverlayStyle(
            self.colormap_box.currentText(), self.opacity_slider.value() / 100.0, self.threshold_spin.value()
        )

    def _start(self, job: Job[ModelRun]) -> Job[ModelRun]:
        self.progress.setValue(0)
        self.progress_label.setText(f"{job.description}…")
        self.jobs.submit(
            job,
            on_done=lambda run: self._on_finished(job, run),
            on_failed=self._on_failed,
            on_progress=self._on_progress,
            on_cancelled=lambda: self._on_cancelled(job),
        )
        self._set_running(True)
        return job

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
        self.run_volume_button.setEnabled(ready and is_volume)
        self.run_slide_button.setEnabled(
            package is not None and self.slide is not None and not running and package.spec.target == "slide_patch"
        )
        for button in (self.export_csv_button, self.export_geojson_button):
            button.setEnabled(self.slide_result is not None and not running)

    def _on_progress(self, fraction: float, words: str) -> None:
        self.progress.setValue(round(fraction * 1000))
        self.progress_label.setText(words)

    def _on_finished(self, job: Job[ModelRun], run: ModelRun) -> None:
        """Show a run that has ended (it is recorded already), unless another image is shown now: drawing it
        would lay it over the wrong one."""
        self._set_running(self.model_busy())
        if job.image is not self.shown:
            self.progress_label.setText(f"Finished: {job.description} (not shown: another image is open now)")
            self.run_finished.emit(run)
            return
        self.progress_label.setText(f"Finished: {job.description}")
        if isinstance(run, ClassifierRun):
            self._show_result(run.stored, run.package)
        elif isinstance(run, PatchSaliency):
            x, y, width, height = run.box
            rows, columns = run.values.shape
            caption = f"{run.method} ({run.class_name}) on the patch"
            self.saliency_caption.setText(
                f"Model attention ({run.method} for '{run.class_name}') inside the clicked patch: "
                "where the model looked, not where tumour is. "
                f"{_identity(run.info, run.package.spec.diagnostic_use)}"
            )
            self.slide_detail_ready.emit(SlideDetail(run.values, (x, y), (width / columns, height / rows), caption))
        elif isinstance(run, VolumeSaliency):
            self.saliency_caption.setText(
                f"Model attention ({run.method} for '{run.class_name}'): where the model looked "
                "for this class, not where a lesion is. "
                f"{_identity(run.info, run.package.spec.diagnostic_use)}"
            )
            self.heatmap_ready.emit(run.heatmap, f"{run.method} ({run.class_name})")
        self.last_run = run
        self.run_finished.emit(run)

    def _on_failed(self, message: str) -> None:
        self._set_running(self.model_busy())
        self.progress_label.setText(f"Failed: {self.rewrite(message) if self.rewrite else message}")

    def _on_cancelled(self, job: Job[ModelRun]) -> None:
        self._set_running(self.model_busy())
        self.progress_label.setText(f"Cancelled: {job.description}")

    def clear_result(self) -> None:
        """Forget the shown result and the last run's words: another image is shown now (a run still going
        keeps its progress line)."""
        self.result_label.setText("No result yet.")
        if not self.model_busy():
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
        self.last_run = None

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
        return None

    def _show_result(self, stored: StoredResult, package: ModelPackage | None, note: str = "") -> None:
        """The warning or note on the training data, the summary, the bars and the per-slice curve or the slide
        heatmap of a result, with who computed it and how. ``package`` is the model that made it when known (a
        fresh run); a kept result's is looked up on a patch click."""
        self.shown_result, self._note, self.patch = stored, note, None
        if isinstance(stored.result, SlideResult):
            self.slide_result, self.slide_shown, self.slide_package = stored.result, stored, package
        self.chosen = ai_words.chosen_index(tuple(stored.result.classes), self.class_box.currentText() or None)
        self._render(heatmap=True)
        self._set_running(self.model_busy())

    def show_slide_summary(self) -> None:
        """Back from a clicked patch to the whole slide: its mean in the bars, its summary alone in the text,
        and the patch's saliency taken away."""
        if self.patch is None:
            return
        self.patch = None
        self._render()
        self.saliency_caption.clear()
        self.slide_detail_ready.emit(None)

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
        if isinstance(result, SliceResult):
            self._show_ood(ood)
            lines, extra = self._render_slices(stored, result, ood)
        elif isinstance(result, VolumeResult):
            self._show_ood(ood)
            lines, extra = self._render_volume(stored, result), []
        else:
            self._show_ood(ood)
            lines, extra = self._render_slide(stored, result, ood, heatmap)
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

    def _render_slices(self, stored: StoredResult, result: SliceResult, ood: object) -> tuple[list[str], list[str]]:
        activation = stored.activation
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
        if stored is None or not isinstance(stored.result, SliceResult):
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

    def _render_volume(self, stored: StoredResult, result: VolumeResult) -> list[str]:
        self._clear_curve()
        self.curve.hide()
        self.peak_button.hide()
        self.back_button.hide()
        self._draw_bars(
            list(result.classes), result.probabilities, stored.activation, ai_words.volume_bars_title(stored.activation)
        )
        return ai_words.volume_lines(tuple(result.classes), result.probabilities, self.chosen)

    def _render_slide(
        self, stored: StoredResult, result: SlideResult, ood: object, heatmap: bool
    ) -> tuple[list[str], list[str]]:
        activation = stored.activation
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
                SlideHeatmap(
                    result.heatmap(self.chosen),
                    grid.origin,
                    grid.patch_size_level0,
                    f"{ai_words.value_of(classes[self.chosen], activation)} per patch",
                    1.0 if probability else None,
                    flagged if flagged.any() else None,
                )
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

    def _curve_clicked(self, event: MouseClickEvent) -> None:
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
        self.jobs.submit(runtime_job(), on_done=self._on_probe)

    def shutdown(self) -> None:
        """Cancel model jobs and let a running probe finish: an import cut off by exit crashes the process."""
        self.jobs.shutdown()

    def _on_probe(self, runtime: Runtime) -> None:
        self.runtime_label.setText(runtime.text)
        self.model_device = runtime.devices[0] if runtime.devices else None  # models run on the fastest
        self._offer_precisions()
        self.probing = False
        self.ready = True
        self.runtime_ready.emit(runtime.finished_at)

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


def _identity(info: RunInfo, diagnostic_use: bool) -> str:
    """Who answered, on what, how long: every result carries it."""
    words = (
        f"{info.model_name} {info.model_version} · SHA-256 {info.model_hash[:12]}… · {info.device}, "
        f"{info.precision} · {info.duration_s:.2f} s"
    )
    notes = f" ({'; '.join(info.notes)})" if info.notes else ""
    return words + notes + ("" if diagnostic_use else f" · {NOT_DIAGNOSTIC}")
