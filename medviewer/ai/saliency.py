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
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.ai.inference import Cancelled, activate, model_file
from medviewer.ai.package import LoadedModel
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume

if TYPE_CHECKING:
    import torch

#: Occluded copies per forward pass.
OCCLUSION_BATCH = 32
#: Path points per forward and backward pass of integrated gradients.
IG_BATCH = 16


class SaliencyError(MedviewerError):
    """This saliency method cannot be computed for this model; the message says why and what would work."""


def grad_cam(
    loaded: LoadedModel, x: np.ndarray, class_index: int, cancelled: Callable[[], bool] | None = None
) -> np.ndarray:
    """Grad-CAM of ``class_index`` for one input ``x`` (1, C, *spatial), upsampled to the input's size.

    One forward and one backward pass: too short to cancel midway, so ``cancelled`` is only asked first."""
    import torch
    import torch.nn.functional as functional

    _check_input(loaded, x, class_index)
    _stop_if(cancelled)
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
    loaded: LoadedModel,
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
    hundreds of passes, so ``cancelled`` is asked before each and stops with ``inference.Cancelled``."""
    import torch

    _check_input(loaded, x, class_index)
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
    with torch.inference_mode(False), torch.no_grad():
        base = _probabilities(loaded, _tensor(loaded, x))[0, class_index]
        for first in range(0, len(patches), OCCLUSION_BATCH):
            _stop_if(cancelled)
            group = patches[first : first + OCCLUSION_BATCH]
            batch = np.repeat(x, len(group), axis=0)
            for copy, patch in zip(batch, group, strict=True):
                copy[(slice(None), *patch)] = np.broadcast_to(fill, copy[(slice(None), *patch)].shape)
            occluded = _probabilities(loaded, _tensor(loaded, batch))[:, class_index]
            for patch, value in zip(group, (base - occluded).tolist(), strict=True):
                drop[patch] += value
                covered[patch] += 1
    return _normalised(np.clip(drop / covered, 0, None))


def integrated_gradients(
    loaded: LoadedModel,
    x: np.ndarray,
    class_index: int,
    cancelled: Callable[[], bool] | None = None,
    steps: int = 32,
) -> np.ndarray:
    """Integrated gradients of the class score from a zero baseline, summed over channels as magnitudes.

    The score is the model's output before its activation, as for Grad-CAM, because a saturated softmax
    has almost no gradient. The path integral is a midpoint sum over ``steps`` points; ``cancelled`` is
    asked before each batch of them."""
    import torch

    _check_input(loaded, x, class_index)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    with torch.inference_mode(False):  # every tensor made inside: inference tensors cannot join autograd
        target = _tensor(loaded, x)
        total = torch.zeros_like(target)
        alphas = (torch.arange(steps, dtype=torch.float32, device=target.device) + 0.5) / steps
        for first in range(0, steps, IG_BATCH):
            _stop_if(cancelled)
            alpha = alphas[first : first + IG_BATCH].reshape(-1, *([1] * (x.ndim - 1)))
            path = (alpha * target).requires_grad_(True)  # baseline zeros: baseline + alpha * (x - baseline)
            with torch.enable_grad():
                scores = _class_score(loaded, loaded.module(path), class_index)
                (grads,) = torch.autograd.grad(scores, path)
            total += grads.sum(dim=0, keepdim=True)
        attribution = (target * total / steps).abs().sum(dim=1)[0]
    return _normalised(attribution.detach().cpu().numpy())


METHODS: dict[str, Callable[..., np.ndarray]] = {
    "gradcam": grad_cam,
    "occlusion": occlusion,
    "ig": integrated_gradients,
}


def saliency_on_volume(
    loaded: LoadedModel,
    volume: Volume,
    index: int | None,
    method: str,
    class_index: int,
    cancelled: Callable[[], bool] | None = None,
) -> Volume:
    """``method``'s map of the class in world space: over slice ``index`` for a slice model (a one-slice
    volume at that slice's position), over the whole volume for a volume model (``index`` None). Made from
    exactly the input the model scored (``slice_batch``, ``volume_input``) and laid back by the inverse of
    its preprocessing, so it lines up with the voxels it explains."""
    from medviewer.ai.preprocess import input_to_slice, input_to_volume, slice_batch, volume_input

    spec = loaded.package.spec
    explain = METHODS[method]
    if index is None:
        saliency = explain(loaded, volume_input(volume, spec), class_index, cancelled=cancelled)
        return Volume(input_to_volume(saliency, volume, spec), volume.spacing, volume.origin, volume.direction)
    saliency = explain(loaded, slice_batch(volume, [index], spec), class_index, cancelled=cancelled)
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
