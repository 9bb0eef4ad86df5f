"""Running a model on an image: load it through the registry, run, explain, keep the result, record it.

Every run, from the window or from ``medviewer infer``, goes through one of the functions here and ends the
same way (``record_run``): an ``inference`` event on the audit trail with the model's hash and the
out-of-distribution guard's verdict, and for a series or slide the result kept on disk and listed in the
catalog under the image. The result types say which run it was, so whoever shows one needs no strings.

torch is imported only inside the functions (through ``medviewer.ai``): the window starts without it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medviewer.actions.jobs import CancelCheck, Job, JobKind, Progress, never_cancelled, no_progress, plain_job
from medviewer.actions.trail import ImageIdentity, Problems, record_event
from medviewer.ai.package import ModelPackage
from medviewer.ai.saliency_methods import method_label
from medviewer.ai.stored_results import StoredResult, of_run, save_result
from medviewer.ai.summary import cell_words, slice_number
from medviewer.catalog.browse import record_ai_result
from medviewer.catalog.schema import connect
from medviewer.core.errors import MedviewerError
from medviewer.core.logs import log_unexpected, safe_path
from medviewer.core.resample import resample_to
from medviewer.core.volume import Volume
from medviewer.io.slide import Slide

if TYPE_CHECKING:
    from medviewer.ai.inference import Precision, RunInfo, SliceResult, VolumeResult
    from medviewer.ai.ood import OodReport
    from medviewer.ai.package import LoadedModel
    from medviewer.ai.saliency import SaliencyRun
    from medviewer.ai.slide_run import PatchGrid, SlideResult

log = logging.getLogger(__name__)

#: A region of a slide in level-0 pixels: x, y, width, height.
Region = tuple[float, float, float, float]


class LoadedModels:
    """Models loaded once and kept, by the file they were read from: the second run of a model does not wait
    for torch to read its weights again. Loading goes through ``load_module``, which checks the registry's
    approval of the weights' SHA-256 every time a model is loaded."""

    def __init__(self, device: str | None = None) -> None:
        self.device = device
        self._loaded: dict[Path, LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, package: ModelPackage) -> LoadedModel:
        from medviewer.ai.devices import choose_device
        from medviewer.ai.inference import set_torch_threads
        from medviewer.ai.package import load_module

        with self._lock:
            if package.source not in self._loaded:
                set_torch_threads()  # all cores but one: torch's default starves the window's thread
                self._loaded[package.source] = load_module(package, device=choose_device(self.device))
            return self._loaded[package.source]


@dataclass(frozen=True)
class Recorded:
    """What a run left behind besides its numbers."""

    #: The kept result's file in the results folder, when it was kept (series and slides, with a catalog).
    result_file: Path | None
    #: Whether the catalog lists the run under its image.
    catalogued: bool
    problems: Problems


@dataclass(frozen=True, eq=False)
class ModelRun:
    """A finished run: which model, on which image, described how, and what was recorded of it."""

    package: ModelPackage
    identity: ImageIdentity
    description: str
    recorded: Recorded


@dataclass(frozen=True, eq=False)
class SliceRun(ModelRun):
    """A slice model on some or all slices of a volume."""

    result: SliceResult
    stored: StoredResult


@dataclass(frozen=True, eq=False)
class VolumeRun(ModelRun):
    """A volume model on a whole volume."""

    result: VolumeResult
    stored: StoredResult


@dataclass(frozen=True, eq=False)
class SlideRun(ModelRun):
    """A slide_patch model over the tissue (or a region) of a slide."""

    result: SlideResult
    stored: StoredResult


@dataclass(frozen=True, eq=False)
class VolumeSaliency(ModelRun):
    """Where a model looked on a volume: already resampled onto the volume it explains, so showing it costs
    the window no resampling."""

    heatmap: Volume
    info: RunInfo
    #: The method as people read it ("Grad-CAM") and as scripts name it ("gradcam").
    method: str
    method_name: str
    class_name: str


@dataclass(frozen=True, eq=False)
class PatchSaliency(ModelRun):
    """Where a slide_patch model looked inside one patch: (H, W) values 0..1 over ``box`` (level-0 x, y,
    width, height)."""

    values: np.ndarray
    box: Region
    info: RunInfo
    method: str
    class_name: str


ClassifierRun = SliceRun | VolumeRun | SlideRun


# The runs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class RunSetup:
    """What every run of a model on an image shares: the models loaded so far, the model, how the catalog and
    the trail name the image, the precision, and the catalog the run is listed in (None: not listed)."""

    models: LoadedModels
    package: ModelPackage
    identity: ImageIdentity
    precision: Precision = "float32"
    catalog: Path | None = None

    def loaded(self, progress: Progress) -> LoadedModel:
        progress(0.0, f"Loading {self.package.name}…")
        return self.models.get(self.package)

    def record(self, description: str, info: RunInfo, ood: OodReport | None, stored: StoredResult | None) -> Recorded:
        return record_run(self.package, self.identity, description, info, ood, stored, self.catalog)


def classify_slices(
    setup: RunSetup,
    volume: Volume,
    indices: list[int],
    progress: Progress = no_progress,
    cancelled: CancelCheck = never_cancelled,
) -> SliceRun:
    """A slice model on ``indices`` (0-based), with the out-of-distribution guard's report on each slice."""
    from medviewer.ai.inference import run_slices

    description = _slices_words(setup, volume, indices)
    loaded = setup.loaded(progress)
    result = run_slices(loaded, volume, indices, progress=progress, cancelled=cancelled, precision=setup.precision)
    stored = of_run("slices", result, setup.package, volume)
    recorded = setup.record(description, result.info, result.ood, stored)
    return SliceRun(setup.package, setup.identity, description, recorded, result, stored)


def classify_volume(
    setup: RunSetup, volume: Volume, progress: Progress = no_progress, cancelled: CancelCheck = never_cancelled
) -> VolumeRun:
    from medviewer.ai.inference import run_volume

    description = _volume_words(setup)
    loaded = setup.loaded(progress)
    result = run_volume(loaded, volume, progress=progress, cancelled=cancelled, precision=setup.precision)
    stored = of_run("volume", result, setup.package, volume)
    recorded = setup.record(description, result.info, None, stored)
    return VolumeRun(setup.package, setup.identity, description, recorded, result, stored)


def classify_slide(
    setup: RunSetup,
    slide: Slide,
    region: Region | None = None,
    grid: PatchGrid | None = None,
    progress: Progress = no_progress,
    cancelled: CancelCheck = never_cancelled,
) -> SlideRun:
    """A slide_patch model over the tissue of ``region`` (the whole slide when None), or over ``grid`` when
    the caller has made it already (to refuse a slide without tissue before loading the model)."""
    from medviewer.ai.slide_run import patch_grid, run_slide

    description = _slide_words(setup, slide, region)
    loaded = setup.loaded(progress)
    if grid is None:
        progress(0.0, "Finding tissue…")
        grid = patch_grid(slide, setup.package.spec, region=region)
    result = run_slide(loaded, slide, grid, progress=progress, cancelled=cancelled, precision=setup.precision)
    stored = of_run("slide", result, setup.package, slide)
    recorded = setup.record(description, result.info, result.ood, stored)
    return SlideRun(setup.package, setup.identity, description, recorded, result, stored)


def explain_volume(
    setup: RunSetup,
    volume: Volume,
    index: int | None,
    method: str,
    class_index: int,
    progress: Progress = no_progress,
    cancelled: CancelCheck = never_cancelled,
) -> VolumeSaliency:
    """The saliency of slice ``index`` (a slice model) or of the whole volume (a volume model, ``index`` None),
    on the volume's own voxels (NaN away from the explained slice). Saliency runs in float32 whatever the
    setup's precision."""
    from medviewer.ai.saliency import SaliencyRun, saliency_on_volume

    description = _saliency_words(setup, method, index)
    run = SaliencyRun(setup.loaded(progress))
    started = time.perf_counter()
    progress(0.2, "Computing saliency…")
    explained = saliency_on_volume(run, volume, index, method, class_index, cancelled)
    progress(0.9, "Laying the map over the volume…")
    values = resample_to(explained, volume, order=1, fill=np.nan).astype(np.float32)
    heatmap = Volume(values, volume.spacing, volume.origin, volume.direction)
    info = _saliency_info(setup.package, run, started)
    recorded = setup.record(description, info, None, None)
    class_name = setup.package.spec.classes[class_index]
    return VolumeSaliency(
        setup.package, setup.identity, description, recorded, heatmap, info, method_label(method), method, class_name
    )


def explain_patch(
    setup: RunSetup,
    slide: Slide,
    grid: PatchGrid,
    cell: tuple[int, int],
    method: str,
    class_index: int,
    cancelled: CancelCheck = never_cancelled,
) -> PatchSaliency:
    from medviewer.ai.saliency import SaliencyRun
    from medviewer.ai.slide_saliency import saliency_on_patch

    description = _patch_words(setup, cell, method)
    run = SaliencyRun(setup.loaded(no_progress))
    started = time.perf_counter()
    values = saliency_on_patch(run, slide, grid, cell, method, class_index, cancelled)
    info = _saliency_info(setup.package, run, started)
    recorded = setup.record(description, info, None, None)
    class_name = setup.package.spec.classes[class_index]
    return PatchSaliency(
        setup.package,
        setup.identity,
        description,
        recorded,
        values,
        grid.box(*cell),
        info,
        method_label(method),
        class_name,
    )


# Jobs for a runner: the same runs, described before they start ------------------------------------------


def slices_job(setup: RunSetup, volume: Volume, indices: list[int]) -> Job[SliceRun]:
    return Job(
        JobKind.CLASSIFY_SLICES,
        _slices_words(setup, volume, indices),
        lambda progress, cancelled: classify_slices(setup, volume, indices, progress, cancelled),
        volume,
    )


def volume_job(setup: RunSetup, volume: Volume) -> Job[VolumeRun]:
    return Job(
        JobKind.CLASSIFY_VOLUME,
        _volume_words(setup),
        lambda progress, cancelled: classify_volume(setup, volume, progress, cancelled),
        volume,
    )


def slide_job(setup: RunSetup, slide: Slide, region: Region | None) -> Job[SlideRun]:
    return Job(
        JobKind.CLASSIFY_SLIDE,
        _slide_words(setup, slide, region),
        lambda progress, cancelled: classify_slide(setup, slide, region, None, progress, cancelled),
        slide,
    )


def volume_saliency_job(
    setup: RunSetup, volume: Volume, index: int | None, method: str, class_index: int
) -> Job[VolumeSaliency]:
    return Job(
        JobKind.EXPLAIN_VOLUME,
        _saliency_words(setup, method, index),
        lambda progress, cancelled: explain_volume(setup, volume, index, method, class_index, progress, cancelled),
        volume,
    )


def patch_saliency_job(
    setup: RunSetup, slide: Slide, grid: PatchGrid, cell: tuple[int, int], method: str, class_index: int
) -> Job[PatchSaliency]:
    return Job(
        JobKind.EXPLAIN_PATCH,
        _patch_words(setup, cell, method),
        lambda _progress, cancelled: explain_patch(setup, slide, grid, cell, method, class_index, cancelled),
        slide,
    )


@dataclass(frozen=True)
class Runtime:
    """What the AI runtime is here, in words, and the devices models can run on, fastest first."""

    text: str
    devices: tuple[str, ...]
    #: When torch had finished importing (epoch seconds): the window's start-up figure.
    finished_at: float


def probe_runtime() -> Runtime:
    """Import torch and list the devices; a broken torch install is said in words, never raised: images can
    still be viewed without it."""
    try:
        from medviewer.ai.devices import available_devices
        from medviewer.ai.runtime import describe_runtime

        text, devices = describe_runtime(), tuple(available_devices())
    except Exception as exc:
        log_unexpected(log, "AI runtime unavailable")
        text, devices = f"The AI runtime could not be loaded ({type(exc).__name__}); images can still be viewed.", ()
    return Runtime(text, devices, time.time())


def runtime_job() -> Job[Runtime]:
    return plain_job(JobKind.PROBE_RUNTIME, "Loading the AI runtime", lambda: probe_runtime())


def approve_model(package: ModelPackage, shown: dict[Path, str]) -> ModelPackage:
    """Approve every weights file of ``package`` for this computer (the registry and the audit trail record
    it); ``shown`` maps each file to the SHA-256 a person was shown, and a file whose bytes changed since is
    refused (``ModelChangedError``) rather than approved in its stead."""
    from medviewer.ai import registry

    for weights in package.weights.values():
        registry.approve(weights, package, shown_sha256=shown.get(weights))
    return package


def approve_job(package: ModelPackage, shown: dict[Path, str]) -> Job[ModelPackage]:
    return plain_job(JobKind.SAVE, f"Approving {package.name}", lambda: approve_model(package, shown))


# Recording -----------------------------------------------------------------------------------------------


def record_run(
    package: ModelPackage,
    identity: ImageIdentity,
    description: str,
    info: RunInfo,
    ood: OodReport | None,
    stored: StoredResult | None,
    catalog: Path | None,
) -> Recorded:
    """The audit trail's ``inference`` event (the model by its hash, the guard's verdict in counts), then for
    a classifier's run on a series or slide the result file and the catalog's row naming it."""
    details: dict[str, object] = {
        "model": info.model_name,
        "version": info.model_version,
        "model_hash": info.model_hash,
        "device": info.device,
        "precision": info.precision,
    }
    if ood is not None:  # the guard's verdict, in counts: what a later review of the run must be able to see
        verdict = ood.summary()
        details["ood"] = {key: verdict[key] for key in ("checked", "items", "flagged", "image_reasons")}
    problems = record_event("inference", identity.audit_subject, details)
    if stored is None or catalog is None or not identity.in_catalog:
        return Recorded(None, False, problems)
    kept: Path | None
    try:
        kept = save_result(stored)
    except OSError as exc:  # the catalog line is still worth having
        log.warning("AI result not kept: %s", exc.strerror)
        kept = None
        problems += Problems((f"The AI result could not be kept on disk ({exc.strerror}); the catalog lists the run",))
    try:
        connection = connect(catalog, verify=False)  # verified when the window or command opened it
        try:
            record_ai_result(
                connection,
                identity.key,
                info.model_name,
                info.model_version,
                info.model_hash,
                catalog_summary(stored, description, ood),
                result_file=kept.name if kept is not None else "",
            )
        finally:
            connection.close()
    except (MedviewerError, OSError) as exc:
        log.warning("AI result not catalogued in %s", safe_path(catalog))
        return Recorded(kept, False, problems + Problems((f"The run is not listed in the catalog: {exc}",)))
    return Recorded(kept, True, problems)


def catalog_summary(stored: StoredResult, description: str, ood: OodReport | None) -> str:
    """The catalog's one line on a run: for a slice model, the slice where the last class is most likely."""
    from medviewer.ai.inference import SliceResult

    summary = description
    result = stored.result
    if isinstance(result, SliceResult):
        row = int(result.probabilities[:, -1].argmax())
        name, probability = result.classes[-1], result.probabilities[row, -1]
        summary = f"p({name}) {probability:.2f} on slice {slice_number(result.indices[row])} · {description}"
    if ood is not None and ood.checked and bool(ood.flagged.any()):
        summary += " · input outside the model's training data"
    return summary


# Words ---------------------------------------------------------------------------------------------------


def _slices_words(setup: RunSetup, volume: Volume, indices: list[int]) -> str:
    if len(indices) == volume.shape[0] and len(indices) > 1:
        where = "every slice"
    elif len(indices) == 1:
        where = f"slice {slice_number(indices[0])}"
    else:
        where = f"{len(indices)} slices"
    return f"{setup.package.name} on {where} ({setup.precision})"


def _volume_words(setup: RunSetup) -> str:
    return f"{setup.package.name} on the volume ({setup.precision})"


def _slide_words(setup: RunSetup, slide: Slide, region: Region | None) -> str:
    where = "the selected region" if region is not None else "the tissue"
    return f"{setup.package.name} on {where} of {slide.path.name} ({setup.precision})"


def _saliency_words(setup: RunSetup, method: str, index: int | None) -> str:
    where = "the volume" if index is None else f"slice {slice_number(index)}"
    return f"{method_label(method)} of {setup.package.name} on {where}"


def _patch_words(setup: RunSetup, cell: tuple[int, int], method: str) -> str:
    return f"{method_label(method)} of {setup.package.name} on the patch at {cell_words(*cell)}"


def _saliency_info(package: ModelPackage, run: SaliencyRun, started: float) -> RunInfo:
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
