"""Where a model looked: Grad-CAM, occlusion sensitivity and integrated gradients for one class.

Hooks do not work on TorchScript modules, so Grad-CAM uses the package's explain contract instead: the
model exports ``forward_features(x)`` and ``forward_head(f)`` with ``forward == head(features(x))``, and the
gradient of the class score is taken with respect to the features by ``torch.autograd.grad``. A torch.export
program keeps only ``forward``, so Grad-CAM needs the TorchScript weights. Occlusion and integrated
gradients use only the model's input and output and work for every model.

Gradients need autograd, so saliency never runs under ``inference_mode``; each function switches it off
for its own work, even when called from a worker that runs everything else under it. Every map is float32
with the input's spatial shape, 0 where there is no evidence for the class and 1 at the strongest; a map
with no evidence anywhere is all 0. It shows what the model attended to, not where a lesion is.

Running out of GPU memory is not the model failing (``inference.is_out_of_memory`` tells it apart): occlusion
and integrated gradients halve their batch of perturbed inputs and retry, and where even one input does not
fit (Grad-CAM's single pass, occlusion's unoccluded input, a batch already at one) the same approved file is
reloaded on the CPU and the work goes on there, as inference does. Each function takes a ``LoadedModel`` or a
``SaliencyRun``; pass a ``SaliencyRun`` to learn what happened (its ``notes``, and ``loaded.device``, where the
map was finished) and to carry the smaller batches and the CPU on to further maps, as a slide's many patches
do (``slide_saliency``). The map is the same either way.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from medviewer.ai.inference import Cancelled, activate, is_out_of_memory, model_file
from medviewer.ai.package import LoadedModel, load_module
from medviewer.ai.saliency_methods import METHOD_NAMES
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Occluded copies per forward pass.
OCCLUSION_BATCH = 32
#: Path points per forward and backward pass of integrated gradients.
IG_BATCH = 16


class SaliencyError(MedviewerError):
    """This saliency method cannot be computed for this model; the message says why and what would work."""


class SaliencyRun:
    """The model a saliency computation uses and what changed while it ran: the batch sizes that fit on the
    device (halved when CUDA ran out of memory) and the module, reloaded on the CPU when even one input did
    not fit. ``notes`` says each change in words, as ``RunInfo.notes`` does for a run. One run can serve many
    maps of the same model, which then start from what already fits."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.notes: list[str] = []
        self.batch = {"occlusion": OCCLUSION_BATCH, "integrated gradients": IG_BATCH}
        self._first_batch = dict(self.batch)

    @property
    def device(self) -> str:
        """Where the model is now: where the last map was finished."""
        return self.loaded.device

    def attempt(self, work: Callable[[LoadedModel], T]) -> T | None:
        """``work(loaded)`` (never None), or None when CUDA ran out of memory doing it; other errors
        propagate. The failed attempt's tensors are freed and CUDA's cache emptied before returning."""
        import torch

        try:
            return work(self.loaded)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
        # outside the except block, so the traceback no longer holds the failed attempt's tensors
        torch.cuda.empty_cache()
        return None

    def smaller(self, method: str) -> int:
        """After running out of memory on a batch of ``method``: half the batch, or at one the CPU. Returns
        the new size."""
        size = self.batch[method]
        if size > 1:
            self.batch[method] = size // 2
            self.notes.append(f"CUDA ran out of memory; {method} batch {size} -> {size // 2}")
        else:
            self.to_cpu(method)
        return self.batch[method]

    def to_cpu(self, method: str) -> None:
        """Reload the same approved file on the CPU after CUDA ran out of memory on one input (as
        ``inference.RunningModel.to_cpu`` does); the batches go back to their first sizes, as the GPU's memory no
        longer bounds them."""
        if self.loaded.device == "cpu":
            raise SaliencyError(model_file(self.loaded), f"{method} ran out of memory even on one input on the CPU")
        log.warning("CUDA ran out of memory on one input; %s of %s moves to the CPU", method, self.loaded.package.name)
        self.notes.append(f"CUDA ran out of memory on one input; {method} fell back to CPU from {self.loaded.device}")
        import torch

        # Loaded outside inference mode (a worker may run under it): weights made there are inference tensors,
        # which autograd refuses to save for the backward pass.
        with torch.inference_mode(False):
            self.loaded = load_module(self.loaded.package, prefer=self.loaded.format, device="cpu")
        self.batch = dict(self._first_batch)


def saliency_run(model: LoadedModel | SaliencyRun) -> SaliencyRun:
    """``model`` itself if it is a run, else a new run of it."""
    return model if isinstance(model, SaliencyRun) else SaliencyRun(model)


def grad_cam(
    model: LoadedModel | SaliencyRun, x: np.ndarray, class_index: int, cancelled: Callable[[], bool] | None = None
) -> np.ndarray:
    """Grad-CAM of ``class_index`` for one input ``x`` (1, C, *spatial), upsampled to the input's size.

    One forward and one backward pass: too short to cancel midway, so ``cancelled`` is only asked first. When
    CUDA runs out of memory on it there is no batch to halve, so it is done again on the CPU."""
    run = saliency_run(model)
    _check_input(run.loaded, x, class_index)
    _stop_if(cancelled)
    _explain_methods(run.loaded)  # a model that cannot have Grad-CAM says so before any work
    while (cam := run.attempt(lambda loaded: _grad_cam_once(loaded, x, class_index))) is None:
        run.to_cpu("Grad-CAM")
    return cam


def _grad_cam_once(loaded: LoadedModel, x: np.ndarray, class_index: int) -> np.ndarray:
    import torch
    import torch.nn.functional as functional

    features_name, features_fn, head_fn = _explain_methods(loaded)
    with torch.inference_mode(False):
        with torch.no_grad():
            features = features_fn(_tensor(loaded, x))
        if not isinstance(features, torch.Tensor) or features.ndim != x.ndim:
            raise SaliencyError(
                model_file(loaded),
                f"{features_name}(x) must return features shaped (1, K, *spatial) for Grad-CAM, "
                f"not {_describe(features)}",
            )
        features = features.detach().float().requires_grad_(True)
        with torch.enable_grad():
            logits = head_fn(features)
            (grads,) = torch.autograd.grad(_class_score(loaded, logits, class_index), features)
    spatial = tuple(range(2, features.ndim))
    weights = grads.mean(dim=spatial, keepdim=True)
    cam = torch.relu((weights * features.detach()).sum(dim=1, keepdim=True))
    mode = "bilinear" if len(spatial) == 2 else "trilinear"
    cam = functional.interpolate(cam, size=x.shape[2:], mode=mode, align_corners=False)
    return _normalised(cam[0, 0].cpu().numpy())


def occlusion(
    model: LoadedModel | SaliencyRun,
    x: np.ndarray,
    class_index: int,
    cancelled: Callable[[], bool] | None = None,
    window: int | None = None,
    stride: int | None = None,
) -> np.ndarray:
    """How much the class probability drops when a ``window``-wide patch is filled with the input's mean.

    Each pixel gets the mean drop over the patches that covered it; a rise (the patch argued against the
    class) counts as no evidence. ``window`` defaults to an eighth of the input's smallest side and
    ``stride`` to half the window, so every pixel is covered by several patches. A 3-D input takes
    hundreds of passes, so ``cancelled`` is asked before each and stops with ``inference.Cancelled``.
    Occluded copies go through the model ``run.batch["occlusion"]`` at a time (``OCCLUSION_BATCH``), fewer
    after CUDA ran out of memory."""
    import torch

    run = saliency_run(model)
    _check_input(run.loaded, x, class_index)
    spatial = x.shape[2:]
    window = window if window is not None else max(1, min(spatial) // 8)
    stride = stride if stride is not None else max(1, window // 2)
    if not 1 <= window <= min(spatial) or stride < 1:
        raise ValueError(f"window {window} and stride {stride} do not fit an input of {list(spatial)}")
    starts = [_starts(size, window, stride) for size in spatial]
    patches = [tuple(slice(s, s + window) for s in corner) for corner in itertools.product(*starts)]
    fill = x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)[0]  # (C, 1, ...): each channel's mean
    drop = np.zeros(spatial, dtype=np.float64)
    covered = np.zeros(spatial, dtype=np.float64)

    def scores(inputs: np.ndarray) -> Callable[[LoadedModel], np.ndarray]:
        return lambda loaded: _probabilities(loaded, _tensor(loaded, inputs))[:, class_index]

    with torch.inference_mode(False), torch.no_grad():
        while (unoccluded := run.attempt(scores(x))) is None:
            run.to_cpu("occlusion")
        base = float(unoccluded[0])
        first = 0
        while first < len(patches):
            _stop_if(cancelled)
            group = patches[first : first + run.batch["occlusion"]]
            batch = np.repeat(x, len(group), axis=0)
            for copy, patch in zip(batch, group, strict=True):
                copy[(slice(None), *patch)] = np.broadcast_to(fill, copy[(slice(None), *patch)].shape)
            if (occluded := run.attempt(scores(batch))) is None:
                run.smaller("occlusion")
                continue
            for patch, value in zip(group, (base - occluded).tolist(), strict=True):
                drop[patch] += value
                covered[patch] += 1
            first += len(group)
    return _normalised(np.clip(drop / covered, 0, None))


def integrated_gradients(
    model: LoadedModel | SaliencyRun,
    x: np.ndarray,
    class_index: int,
    cancelled: Callable[[], bool] | None = None,
    steps: int = 32,
) -> np.ndarray:
    """Integrated gradients of the class score from a zero baseline, summed over channels as magnitudes.

    The score is the model's output before its activation, as for Grad-CAM, because a saturated softmax
    has almost no gradient. The path integral is a midpoint sum over ``steps`` points, which go through the
    model ``run.batch["integrated gradients"]`` at a time (``IG_BATCH``, fewer after CUDA ran out of memory);
    ``cancelled`` is asked before each batch of them. The sum is kept on the CPU, so it survives a move there."""
    run = saliency_run(model)
    _check_input(run.loaded, x, class_index)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    alphas = (np.arange(steps, dtype=np.float32) + np.float32(0.5)) / np.float32(steps)
    total = np.zeros(x.shape[1:], dtype=np.float64)
    first = 0
    while first < steps:
        _stop_if(cancelled)
        chunk = alphas[first : first + run.batch["integrated gradients"]]
        if (grads := run.attempt(partial(_path_gradients, x=x, alphas=chunk, class_index=class_index))) is None:
            run.smaller("integrated gradients")
            continue
        total += grads
        first += len(chunk)
    attribution = np.abs(x[0].astype(np.float64) * total / steps).sum(axis=0)
    return _normalised(attribution)


def _path_gradients(loaded: LoadedModel, x: np.ndarray, alphas: np.ndarray, class_index: int) -> np.ndarray:
    """The class score's gradient at ``alpha * x`` for each alpha, summed over them: (C, *spatial), float64."""
    import torch

    with torch.inference_mode(False):  # every tensor made inside: inference tensors cannot join autograd
        target = _tensor(loaded, x)
        alpha = torch.as_tensor(alphas, device=target.device).reshape(-1, *([1] * (x.ndim - 1)))
        path = (alpha * target).requires_grad_(True)  # baseline zeros: baseline + alpha * (x - baseline)
        with torch.enable_grad():
            scores = _class_score(loaded, loaded.module(path), class_index)
            (grads,) = torch.autograd.grad(scores, path)
        return grads.sum(dim=0).detach().cpu().numpy().astype(np.float64)


_FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "gradcam": grad_cam,
    "occlusion": occlusion,
    "ig": integrated_gradients,
}
#: The functions by the names ``saliency_methods`` offers, in its order (an import fails if the two disagree).
METHODS: dict[str, Callable[..., np.ndarray]] = {name: _FUNCTIONS[name] for name in METHOD_NAMES}


def saliency_on_volume(
    model: LoadedModel | SaliencyRun,
    volume: Volume,
    index: int | None,
    method: str,
    class_index: int,
    cancelled: Callable[[], bool] | None = None,
) -> Volume:
    """``method``'s map of the class in world space: over slice ``index`` for a slice model (a one-slice
    volume at that slice's position), over the whole volume for a volume model (``index`` None). Made from
    exactly the input the model scored (``slice_batch``, ``volume_input``) and laid back by the inverse of
    its preprocessing, so it lines up with the voxels it explains. Pass a ``SaliencyRun`` to read its notes."""
    from medviewer.ai.preprocess import input_to_slice, input_to_volume, slice_batch, volume_input

    spec = saliency_run(model).loaded.package.spec
    explain = METHODS[method]
    if index is None:
        saliency = explain(model, volume_input(volume, spec), class_index, cancelled=cancelled)
        return Volume(input_to_volume(saliency, volume, spec), volume.spacing, volume.origin, volume.direction)
    saliency = explain(model, slice_batch(volume, [index], spec), class_index, cancelled=cancelled)
    on_slice = input_to_slice(saliency, volume, index, spec)[None]
    return Volume(on_slice, volume.spacing, tuple(volume.index_to_world(np.array([index, 0, 0]))), volume.direction)


def _stop_if(cancelled: Callable[[], bool] | None) -> None:
    if cancelled is not None and cancelled():
        raise Cancelled


def _check_input(loaded: LoadedModel, x: np.ndarray, class_index: int) -> None:
    """One input shaped as the model takes it, and a class the model has."""
    spec = loaded.package.spec
    expected = (1, spec.channels, *spec.shape)
    if x.shape != expected:
        raise ValueError(f"saliency explains one input shaped {list(expected)}, not {list(x.shape)}")
    if not 0 <= class_index < len(spec.classes):
        raise ValueError(f"class_index {class_index} is not one of the model's {len(spec.classes)} classes")


def _explain_methods(loaded: LoadedModel) -> tuple[str, Callable[..., Any], Callable[..., Any]]:
    """The features method's name, and the features and head methods of the explain contract; or why
    Grad-CAM cannot run."""
    explain, file = loaded.package.spec.explain, model_file(loaded)
    if explain is None:
        raise SaliencyError(
            file,
            "Grad-CAM needs an explain contract (medviewer.explain with the features and head methods) in the "
            "model's metadata; occlusion and integrated gradients work without one",
        )
    if loaded.format == "export":
        raise SaliencyError(
            file,
            "Grad-CAM needs the TorchScript weights (model.ts): a torch.export program keeps only forward, not "
            f"{explain.features} and {explain.head}; occlusion and integrated gradients work on it",
        )
    methods = [getattr(loaded.module, name, None) for name in (explain.features, explain.head)]
    missing = [name for name, method in zip((explain.features, explain.head), methods, strict=True) if method is None]
    if missing:
        raise SaliencyError(
            file,
            f"the model has no {' or '.join(missing)} method though its explain contract names it; TorchScript "
            "keeps a method only if it is marked @torch.jit.export or called from forward",
        )
    return explain.features, methods[0], methods[1]  # type: ignore[return-value]


def _tensor(loaded: LoadedModel, x: np.ndarray) -> torch.Tensor:
    import torch

    return torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=loaded.device)


def _checked(loaded: LoadedModel, logits: Any) -> torch.Tensor:
    """The model's output, if it is one score per class as its metadata says."""
    import torch

    classes = loaded.package.spec.classes
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[1] != len(classes):
        raise SaliencyError(
            model_file(loaded),
            f"the model returned {_describe(logits)}; its metadata names {len(classes)} classes "
            f"({', '.join(classes)}), so it must return scores shaped (batch, {len(classes)})",
        )
    return logits


def _class_score(loaded: LoadedModel, logits: Any, class_index: int) -> torch.Tensor:
    """The class's pre-activation score summed over the batch: one scalar for autograd."""
    return _checked(loaded, logits)[:, class_index].float().sum()


def _probabilities(loaded: LoadedModel, x: torch.Tensor) -> np.ndarray:
    """The model's activated outputs, as in inference, so occlusion measures a drop in what is shown."""
    scores = activate(_checked(loaded, loaded.module(x)), loaded.package.spec.activation)
    return scores.cpu().numpy().astype(np.float64)


def _starts(size: int, window: int, stride: int) -> list[int]:
    """Patch starts every ``stride`` pixels, plus one flush with the far edge so no pixel is left uncovered."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"shape {list(shape)}" if shape is not None else f"a {type(value).__name__}"


def _normalised(values: np.ndarray) -> np.ndarray:
    """Non-negative evidence scaled so its maximum is 1; all 0 when there is none."""
    values = np.nan_to_num(values.astype(np.float32), nan=0.0)
    peak = float(values.max())
    return values / peak if peak > 0 else np.zeros_like(values)
