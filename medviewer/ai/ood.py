"""The out-of-distribution guard: is this slice or patch like what the model was trained on?

A run on an image the model was not made for must never look like a finding. A bundle may carry what its
model was trained on, the ``training`` part of the ``medviewer`` block of its metadata (also embedded as
metadata.json in the .ts/.pt2 files); each item a run scores (a slice for ``slice`` models, a patch for
``slide_patch`` models) is then checked three ways:

- **features**: the Mahalanobis distance (Lee et al., "A Simple Unified Framework for Detecting
  Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018) of the item's pooled
  ``forward_features`` output (``pool_features``: each channel's spatial mean and standard deviation, 2C
  values) from the training features' mean, under their shrinkage covariance. Above ``threshold`` (the 99th
  percentile of the distances of held-out in-distribution items, not of the training ones) it is flagged.
- **intensity**: the 1st, 50th and 99th percentiles of the item's model input (after preprocessing), per
  channel, against the range those percentiles took over the training items, widened on each side by
  ``margin`` (default ``INTENSITY_MARGIN``) times the span of all the ranges together.
- **image facts**: modality, body part (DICOM BodyPartExamined) and in-plane pixel spacing of a volume, the
  micrometres per pixel of a slide, against the training data's. A mismatch flags every item of the image;
  a fact the image does not record is not a mismatch (it is left unchecked and nothing is said).

The ``training`` block (every part may be left out or null, except ``features``, without which the guard
cannot check; ``modality`` and ``body_part`` are a string or a list of them; ranges are [low, high], or one
number for a single value)::

    "training": {
      "modality": ["CT"], "body_part": ["CHEST"], "spacing_mm": [0.7, 2.8], "mpp": null,
      "intensity_percentiles": {"p1": [[lo, hi]], "p50": [[lo, hi]], "p99": [[lo, hi]], "margin": 0.05},
      "features": {"method": "forward_features", "pooling": "mean_std", "dimensions": 64,
                   "mean": [...64], "covariance": [[...64] x 64], "shrinkage": 0.0009,
                   "threshold": 13.8, "threshold_percentile": 99, "training_items": 6000,
                   "held_out_items": 2000}
    }

``intensity_percentiles`` holds one [low, high] per input channel for each percentile (or one [low, high]
for all channels). ``covariance`` is the covariance already shrunk (Ledoit and Wolf's estimate of the
shrinkage towards a multiple of the identity, recorded in ``shrinkage``), so the guard only inverts it.
``method`` is the module's method that gives the features (default: the ``explain`` block's); the head is
the ``explain`` block's ``head``.

The run gets the features for free: where the guard can check, ``inference._Run`` calls
``forward_head(forward_features(x))`` instead of ``forward(x)`` (the explain contract says they are the
same), so the cost is the pooling and a few percentiles per item.

Nothing about a bad reference stops a run: a reference whose dimensions differ from the model's features,
whose covariance is singular or not finite, whose threshold is missing or not a number, a torch.export
program (which keeps only ``forward``): the model runs, and the report says ``checked=False`` and why
("the guard could not check: ..."). A model without a ``training`` block gets ``NOT_AVAILABLE``. An item
whose features are not finite is flagged (its distance is infinite).

No torch at import: ``medviewer.ai.stored_results`` and the window import this module without loading it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from medviewer.ai.package import LoadedModel
    from medviewer.core.volume import Volume
    from medviewer.io.slide import Slide

NOT_AVAILABLE = "no check of the input against the training data is available"
#: ``why_not`` of a run asked to leave the guard out (``run_slices(..., guard=False)``, for measuring its cost).
NOT_RUN = "the guard was turned off for this run"
COULD_NOT = "the guard could not check: "
#: Per item and channel, these percentiles of the model input are compared with the training ranges.
PERCENTILES = (1.0, 50.0, 99.0)
PERCENTILE_KEYS = ("p1", "p50", "p99")
#: Widening of the training ranges of the percentiles on each side, as a fraction of their whole span.
INTENSITY_MARGIN = 0.05
#: Pixel spacing and MPP within this fraction beyond the training range still count as inside it.
SPACING_TOLERANCE = 0.05
MPP_TOLERANCE = 0.1
THRESHOLD_PERCENTILE = 99.0
#: A covariance whose smallest eigenvalue is below this fraction of its largest cannot be inverted usefully.
SINGULAR_RATIO = 1e-12


# The report -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # arrays do not compare to one bool
class OodReport:
    """The guard's verdict on one run: a score and flags per item (slices: (n,); slide patches: (rows,
    columns)), NaN scores where an item was not scored (off tissue, unread, or nothing checked)."""

    checked: bool
    why_not: str
    scores: np.ndarray
    threshold: float | None
    feature_flagged: np.ndarray
    intensity_flagged: np.ndarray
    image_reasons: tuple[str, ...]

    @property
    def flagged(self) -> np.ndarray:
        """Per item: outside what the model was trained on by its features, its intensities or the image's
        facts; only where the item was scored, and nowhere when nothing was checked."""
        if not self.checked:
            return np.zeros(self.scores.shape, dtype=bool)
        scored = ~np.isnan(self.scores)
        return scored & (self.feature_flagged | self.intensity_flagged | bool(self.image_reasons))

    @property
    def item_word(self) -> str:
        return "patches" if self.scores.ndim == 2 else "slices"

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts: items scored, flagged (and by which check), the largest finite score."""
        scored = ~np.isnan(self.scores)
        items = int(scored.sum()) if self.checked else 0
        flagged = int(self.flagged.sum())
        finite = self.scores[np.isfinite(self.scores)]
        return {
            "checked": self.checked,
            "why_not": self.why_not,
            "threshold": self.threshold,
            "items": items,
            "flagged": flagged,
            "flagged_fraction": flagged / items if items else None,
            "feature_flagged": int((self.feature_flagged & scored).sum()) if self.checked else 0,
            "intensity_flagged": int((self.intensity_flagged & scored).sum()) if self.checked else 0,
            "image_reasons": list(self.image_reasons),
            "max_score": float(finite.max()) if finite.size else None,
        }

    def banner(self) -> str:
        """What to show above the results: "" when checked and nothing is flagged; the count and the reasons
        when something is; why not when nothing could be checked."""
        if not self.checked:
            return self.why_not
        summary = self.summary()
        if not summary["flagged"]:
            return ""
        word = self.item_word
        reasons = list(self.image_reasons)
        if summary["feature_flagged"]:
            reasons.append(f"features unlike the training data's on {summary['feature_flagged']} {word}")
        if summary["intensity_flagged"]:
            reasons.append(f"intensities outside the training range on {summary['intensity_flagged']} {word}")
        return (
            f"Outside what this model was trained on: {summary['flagged']} of {summary['items']} {word} "
            f"({'; '.join(reasons)})"
        )


def unchecked(why_not: str, shape: tuple[int, ...]) -> OodReport:
    """A report that checked nothing, saying why."""
    nothing = np.zeros(shape, dtype=bool)
    return OodReport(False, why_not, _frozen(np.full(shape, np.nan, np.float32)), None, nothing, nothing.copy(), ())


# Image facts ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFacts:
    """What an image says about itself that the training data can be compared with; None where it does not."""

    modality: str | None = None
    body_part: str | None = None
    spacing_mm: tuple[float, ...] | None = None  # in-plane (x, y)
    mpp: float | None = None


def volume_facts(volume: Volume) -> ImageFacts:
    """Modality, body part and in-plane spacing of a volume (spacing only where it is a real pixel size)."""
    spacing = (float(volume.spacing[0]), float(volume.spacing[1])) if volume.spacing_known else None
    return ImageFacts(
        modality=(volume.modality or "").strip().upper() or None,
        body_part=_body_part(volume),
        spacing_mm=spacing,
    )


def slide_facts(slide: Slide) -> ImageFacts:
    mpp = slide.mpp
    return ImageFacts(mpp=float(mpp) if mpp is not None and mpp > 0 else None)


def _body_part(volume: Volume) -> str | None:
    """BodyPartExamined as the DICOM reader recorded it; unknown for NIfTI and for files that do not say."""
    value = (volume.metadata or {}).get("body_part")
    return value.strip().upper() or None if isinstance(value, str) else None


# The reference --------------------------------------------------------------------------------------------


class ReferenceError(ValueError):  # noqa: N818 - what it is, in the words of the messages
    """The training block cannot be used; the message says which field and why."""


@dataclass(frozen=True, eq=False)
class Reference:
    """A usable training block: the facts, the intensity ranges and the feature Gaussian, ready to score."""

    modality: tuple[str, ...] | None
    body_part: tuple[str, ...] | None
    spacing_mm: tuple[float, float] | None
    mpp: tuple[float, float] | None
    intensity: np.ndarray | None  # (percentiles, channels, 2): low and high, already widened by the margin
    method: str | None
    dimensions: int
    mean: np.ndarray
    whitening: np.ndarray  # W with W @ covariance @ W.T == I: distance is |W (f - mean)|
    threshold: float


def training_block(metadata: dict[str, Any]) -> Any:
    medviewer = metadata.get("medviewer") if isinstance(metadata, dict) else None
    return medviewer.get("training") if isinstance(medviewer, dict) else None


def read_reference(metadata: dict[str, Any], channels: int) -> Reference | None:
    """The model's reference, None when its metadata has no training block; raises ReferenceError naming
    the field when the block cannot be used."""
    block = training_block(metadata)
    if block is None:
        return None
    if not isinstance(block, dict):
        raise ReferenceError(f"medviewer.training is {_short(block)}, not an object")
    features = block.get("features")
    if features is None:
        raise ReferenceError("medviewer.training has no features part (mean, covariance and threshold)")
    if not isinstance(features, dict):
        raise ReferenceError(f"medviewer.training.features is {_short(features)}, not an object")
    mean, whitening = _gaussian(features)
    threshold = features.get("threshold")
    if threshold is None:
        raise ReferenceError("medviewer.training.features.threshold is missing")
    if not _is_number(threshold) or not math.isfinite(threshold) or threshold <= 0:
        raise ReferenceError(f"medviewer.training.features.threshold is {_short(threshold)}, not a positive number")
    method = features.get("method")
    if method is not None and (not isinstance(method, str) or not method.strip()):
        raise ReferenceError(f"medviewer.training.features.method is {_short(method)}, not a method name")
    return Reference(
        modality=_words(block, "modality"),
        body_part=_words(block, "body_part"),
        spacing_mm=_range(block, "spacing_mm"),
        mpp=_range(block, "mpp"),
        intensity=_intensity(block.get("intensity_percentiles"), channels),
        method=method,
        dimensions=len(mean),
        mean=mean,
        whitening=whitening,
        threshold=float(threshold),
    )


def _gaussian(features: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    field = "medviewer.training.features"
    mean = _array(features.get("mean"), f"{field}.mean", 1)
    covariance = _array(features.get("covariance"), f"{field}.covariance", 2)
    dimensions = features.get("dimensions", len(mean))
    if not _is_number(dimensions) or dimensions != len(mean):
        raise ReferenceError(f"{field}.dimensions is {_short(dimensions)} but its mean has {len(mean)} values")
    if covariance.shape != (len(mean), len(mean)):
        raise ReferenceError(
            f"{field}.covariance is {covariance.shape[0]} x {covariance.shape[1]} but the mean has {len(mean)} values"
        )
    if not np.allclose(covariance, covariance.T, rtol=1e-6, atol=1e-12 * max(1.0, float(np.abs(covariance).max()))):
        raise ReferenceError(f"{field}.covariance is not symmetric")
    eigenvalues = np.linalg.eigvalsh(covariance)
    if eigenvalues[-1] <= 0 or eigenvalues[0] <= SINGULAR_RATIO * eigenvalues[-1]:
        raise ReferenceError(
            f"{field}.covariance is singular (eigenvalues from {eigenvalues[0]:.3g} to {eigenvalues[-1]:.3g}), "
            "so no distance can be measured under it"
        )
    lower = np.linalg.cholesky(covariance)
    whitening = np.linalg.solve(lower, np.eye(len(mean)))
    return mean, whitening


def _array(value: Any, field: str, ndim: int) -> np.ndarray:
    if value is None:
        raise ReferenceError(f"{field} is missing")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ReferenceError(f"{field} is not {'a list' if ndim == 1 else 'a square table'} of numbers") from exc
    if array.ndim != ndim or array.size == 0:
        raise ReferenceError(f"{field} is not {'a list' if ndim == 1 else 'a square table'} of numbers")
    if not np.isfinite(array).all():
        raise ReferenceError(f"{field} holds values that are not finite")
    return array


def _words(block: dict[str, Any], key: str) -> tuple[str, ...] | None:
    value = block.get(key)
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise ReferenceError(f"medviewer.training.{key} is {_short(value)}, not a name or a list of names")
    return tuple(v.strip().upper() for v in values)


def _range(block: dict[str, Any], key: str) -> tuple[float, float] | None:
    value = block.get(key)
    if value is None:
        return None
    values = [value] if _is_number(value) else value
    if (
        not isinstance(values, list)
        or len(values) not in (1, 2)
        or not all(_is_number(v) and math.isfinite(v) and v > 0 for v in values)
        or values[0] > values[-1]
    ):
        raise ReferenceError(f"medviewer.training.{key} is {_short(value)}, not a positive [low, high]")
    return float(values[0]), float(values[-1])


def _intensity(value: Any, channels: int) -> np.ndarray | None:
    field = "medviewer.training.intensity_percentiles"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ReferenceError(f"{field} is {_short(value)}, not an object")
    ranges = []
    for key in PERCENTILE_KEYS:
        if key not in value:
            raise ReferenceError(f"{field}.{key} is missing")
        try:
            array = np.asarray(value[key], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ReferenceError(f"{field}.{key} is not [low, high] or one [low, high] per channel") from exc
        if array.shape == (2,):
            array = np.repeat(array[None], channels, axis=0)
        if array.shape != (channels, 2) or not np.isfinite(array).all() or (array[:, 0] > array[:, 1]).any():
            raise ReferenceError(
                f"{field}.{key} is not [low, high] or one [low, high] per channel of the model's {channels}"
            )
        ranges.append(array)
    stacked = np.stack(ranges)  # (percentiles, channels, 2)
    margin = value.get("margin", INTENSITY_MARGIN)
    if not _is_number(margin) or not 0 <= margin < 1:
        raise ReferenceError(f"{field}.margin is {_short(margin)}, not a fraction from 0 to 1")
    widen = margin * float(stacked[..., 1].max() - stacked[..., 0].min())
    return stacked + np.array([-widen, widen])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def image_reasons(reference: Reference, facts: ImageFacts) -> tuple[str, ...]:
    """Image-level mismatches in words; facts the image does not record are not mismatches."""
    reasons = []
    if reference.modality and facts.modality and facts.modality not in reference.modality:
        reasons.append(f"modality {facts.modality}; the model was trained on {' or '.join(reference.modality)}")
    if reference.body_part and facts.body_part and facts.body_part not in reference.body_part:
        reasons.append(f"body part {facts.body_part}; trained on {' or '.join(reference.body_part)}")
    spacing, trained_spacing = facts.spacing_mm, reference.spacing_mm
    if trained_spacing and spacing and not _inside(spacing, trained_spacing, SPACING_TOLERANCE):
        shown = " x ".join(_number(v) for v in sorted(set(spacing), key=spacing.index))
        reasons.append(f"pixel spacing {shown} mm; trained on {_span(trained_spacing, 'mm')}")
    if reference.mpp and facts.mpp and not _inside((facts.mpp,), reference.mpp, MPP_TOLERANCE):
        reasons.append(f"slide at {_number(facts.mpp)} µm per pixel; trained on {_span(reference.mpp, 'µm')}")
    return tuple(reasons)


def _inside(values: Sequence[float], bounds: tuple[float, float], tolerance: float) -> bool:
    low, high = bounds[0] * (1 - tolerance), bounds[1] * (1 + tolerance)
    return all(low <= v <= high for v in values)


def _number(value: float) -> str:
    return f"{round(value, 2):g}" if value >= 0.1 else f"{value:.2g}"


def _span(bounds: tuple[float, float], unit: str) -> str:
    low, high = bounds
    return f"{_number(low)} {unit}" if math.isclose(low, high) else f"{_number(low)} to {_number(high)} {unit}"


# Per item -------------------------------------------------------------------------------------------------


def pool_features(features: torch.Tensor) -> np.ndarray:
    """(N, 2C) float64: each channel's spatial mean, then each channel's spatial standard deviation (over
    the population, not a sample), of a (N, C, ...) feature tensor; a (N, C) tensor has deviations 0.
    Computed in float32 on the tensor's device whatever the autocast precision, then moved to the CPU."""
    import torch

    # float32 in, float32 out: autocast lowers only matrix products and convolutions, not these reductions.
    # Two passes (mean, then the mean square about it): as exact as torch.std and several times faster on CPU.
    flat = features.detach().float().reshape(features.shape[0], features.shape[1], -1)
    mean = flat.mean(dim=2, keepdim=True)
    deviation = (flat - mean).square().mean(dim=2).sqrt()
    return torch.cat([mean[..., 0], deviation], dim=1).cpu().numpy().astype(np.float64)


def item_percentiles(x: np.ndarray) -> np.ndarray:
    """(N, percentiles, channels): PERCENTILES of each item's model input (N, C, *spatial), per channel, as
    ``np.percentile`` gives them (linear interpolation), NaN where an item's channel holds a NaN.

    Sorted whole rather than through ``np.percentile``, whose partitioning costs as much as a third of the
    demo models' own time on a batch; numpy's vectorised sort takes a few percent of it."""
    flat = np.sort(np.asarray(x, dtype=np.float32).reshape(x.shape[0], x.shape[1], -1), axis=2)
    position = np.asarray(PERCENTILES) / 100 * (flat.shape[2] - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, flat.shape[2] - 1)
    weight = (position - low).astype(np.float32)[:, None]
    below, above = flat[..., low].transpose(0, 2, 1), flat[..., high].transpose(0, 2, 1)  # (N, percentiles, C)
    result = (below + (above - below) * weight).astype(np.float64)
    result[np.broadcast_to(np.isnan(flat[..., -1])[:, None, :], result.shape)] = np.nan  # NaN sorts last
    return result


def distances(reference: Reference, pooled: np.ndarray) -> np.ndarray:
    """Mahalanobis distance of each pooled feature vector; infinite where the features are not finite."""
    centred = pooled - reference.mean
    with np.errstate(invalid="ignore", over="ignore"):
        whitened = centred @ reference.whitening.T
        result = np.sqrt(np.einsum("ij,ij->i", whitened, whitened))
    result[~np.isfinite(pooled).all(axis=1) | ~np.isfinite(result)] = np.inf
    return result


def intensity_outside(reference: Reference, percentiles: np.ndarray) -> np.ndarray:
    """Per item: any of its percentiles outside the (widened) training range; NaN counts as outside."""
    if reference.intensity is None:
        return np.zeros(len(percentiles), dtype=bool)
    low, high = reference.intensity[..., 0], reference.intensity[..., 1]
    inside = (percentiles >= low) & (percentiles <= high)
    return np.asarray(~inside.all(axis=(1, 2)), dtype=bool)


# The guard of one run -------------------------------------------------------------------------------------


class Guard:
    """Collects one run's pooled features and input percentiles, pass by pass in item order, and makes the
    report. ``active`` is False when nothing can be checked (``why_not`` says why); the run then calls the
    module's plain ``forward``."""

    def __init__(self, reference: Reference | None, why_not: str, facts: ImageFacts, methods: tuple[str, str]) -> None:
        self.reference = reference
        self.why_not = why_not
        self.facts = facts
        self.methods = methods
        self._pooled: list[np.ndarray] = []
        self._percentiles: list[np.ndarray] = []

    @property
    def active(self) -> bool:
        return self.reference is not None and not self.why_not

    def disable(self, reason: str) -> None:
        """Stop checking: the reference cannot be used with this model; the run goes on without the guard."""
        if not self.why_not:
            self.why_not = COULD_NOT + reason
        self._pooled.clear()
        self._percentiles.clear()

    def add(self, pooled: np.ndarray, x: np.ndarray) -> None:
        """One successful forward pass: its items' pooled features and the inputs they came from."""
        if not self.active:
            return
        assert self.reference is not None
        if pooled.shape != (len(x), self.reference.dimensions):
            self.disable(
                f"the model's {self.methods[0]} output pools to {pooled.shape[1]} values per item but its training "
                f"reference has {self.reference.dimensions} dimensions"
            )
            return
        self._pooled.append(pooled)
        self._percentiles.append(item_percentiles(x))

    def report(
        self, shape: tuple[int, ...], positions: np.ndarray | None = None, keep: np.ndarray | None = None
    ) -> OodReport:
        """The report over items of ``shape``: the collected items lie at ``positions`` (flat indices in
        collection order; default all, in order), and only those where ``keep`` is true are scored."""
        if not self.active:
            return unchecked(self.why_not or NOT_AVAILABLE, shape)
        assert self.reference is not None
        count = int(np.prod(shape))
        pooled = np.concatenate(self._pooled) if self._pooled else np.zeros((0, self.reference.dimensions))
        percentiles = np.concatenate(self._percentiles) if self._percentiles else np.zeros((0, 3, 1))
        positions = np.arange(count) if positions is None else np.asarray(positions, dtype=np.int64)
        keep = np.ones(len(positions), dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
        if len(pooled) != len(positions):
            return unchecked(COULD_NOT + f"{len(pooled)} items' features for {len(positions)} items run", shape)
        scores = np.full(count, np.nan, dtype=np.float32)
        feature = np.zeros(count, dtype=bool)
        intensity = np.zeros(count, dtype=bool)
        where = positions[keep]
        item_scores = distances(self.reference, pooled[keep])
        scores[where] = item_scores
        feature[where] = item_scores > self.reference.threshold
        intensity[where] = intensity_outside(self.reference, percentiles[keep])
        return OodReport(
            checked=True,
            why_not="",
            scores=_frozen(scores.reshape(shape)),
            threshold=self.reference.threshold,
            feature_flagged=_frozen(feature.reshape(shape)),
            intensity_flagged=_frozen(intensity.reshape(shape)),
            image_reasons=image_reasons(self.reference, self.facts),
        )


def guard_for(loaded: LoadedModel, facts: ImageFacts, enabled: bool = True) -> Guard:
    """The guard of one run of ``loaded`` on an image with ``facts``; inactive, saying why, when the model has
    no reference, its reference cannot be used, or the module cannot give its features."""
    spec = loaded.package.spec
    explain = spec.explain
    methods = (explain.features, explain.head) if explain is not None else ("forward_features", "forward_head")
    if not enabled:
        return Guard(None, NOT_RUN, facts, methods)
    try:
        reference = read_reference(loaded.package.metadata, spec.channels)
    except ReferenceError as exc:
        return Guard(None, COULD_NOT + str(exc), facts, methods)
    except Exception as exc:  # noqa: BLE001 - a reference must never stop a run, whatever is wrong with it
        return Guard(
            None, COULD_NOT + f"its training reference cannot be read ({type(exc).__name__}: {exc})", facts, methods
        )
    if reference is None:
        return Guard(None, NOT_AVAILABLE, facts, methods)
    if explain is None:
        return Guard(
            None, COULD_NOT + "the metadata names no features and head methods (medviewer.explain)", facts, methods
        )
    methods = (reference.method or explain.features, explain.head)
    missing = [name for name in methods if not callable(getattr(loaded.module, name, None))]
    if missing:
        names = " or ".join(missing)
        reason = (
            f"the torch.export program has no {names} (it keeps only forward; the TorchScript file has them)"
            if loaded.format == "export"
            else f"the module has no {names}"
        )
        return Guard(None, COULD_NOT + reason, facts, methods)
    return Guard(reference, "", facts, methods)


# Making a reference (the training scripts) ----------------------------------------------------------------


def ledoit_wolf(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, shrunk covariance and shrinkage of (N, D) features: Ledoit and Wolf's (2004) estimate of the
    weight on ``trace(S) / D * I`` that minimises the expected error of the shrunk covariance."""
    x = np.asarray(features, dtype=np.float64)
    count, dimensions = x.shape
    mean = x.mean(axis=0)
    centred = x - mean
    sample = centred.T @ centred / count
    target = np.trace(sample) / dimensions
    distance = float(((sample - target * np.eye(dimensions)) ** 2).sum())
    squares = centred**2
    spread = float((squares.T @ squares).sum() / count - (sample**2).sum()) / count
    shrinkage = 0.0 if distance == 0 else min(max(spread, 0.0), distance) / distance
    covariance = (1 - shrinkage) * sample + shrinkage * target * np.eye(dimensions)
    return mean, covariance, shrinkage


def feature_block(
    training: np.ndarray, held_out: np.ndarray, method: str = "forward_features", digits: int = 8
) -> dict[str, Any]:
    """The ``features`` part of a training block: mean and shrunk covariance of the pooled training features
    (rounded to ``digits`` significant digits, as stored), and the threshold: the THRESHOLD_PERCENTILE-th
    percentile of the held-out items' distances under that stored reference."""
    mean, covariance, shrinkage = ledoit_wolf(training)
    stored_mean = [_significant(v, digits) for v in mean]
    stored_cov = [[_significant(v, digits) for v in row] for row in (covariance + covariance.T) / 2]
    block: dict[str, Any] = {
        "method": method,
        "pooling": "mean_std",
        "dimensions": int(training.shape[1]),
        "mean": stored_mean,
        "covariance": stored_cov,
        "shrinkage": _significant(shrinkage, 4),
        "threshold": None,
        "threshold_percentile": THRESHOLD_PERCENTILE,
        "training_items": int(len(training)),
        "held_out_items": int(len(held_out)),
    }
    reference = read_reference({"medviewer": {"training": {"features": {**block, "threshold": 1.0}}}}, 1)
    assert reference is not None
    threshold = float(np.percentile(distances(reference, np.asarray(held_out, dtype=np.float64)), THRESHOLD_PERCENTILE))
    block["threshold"] = _significant(threshold, 6)
    return block


def intensity_block(percentiles: np.ndarray, margin: float = INTENSITY_MARGIN) -> dict[str, Any]:
    """``intensity_percentiles`` from (N, percentiles, channels) training item percentiles: per channel, the
    lowest and highest each percentile took."""
    low, high = percentiles.min(axis=0), percentiles.max(axis=0)
    block: dict[str, Any] = {
        key: [[_significant(low[i, c], 6), _significant(high[i, c], 6)] for c in range(percentiles.shape[2])]
        for i, key in enumerate(PERCENTILE_KEYS)
    }
    block["margin"] = margin
    return block


def _significant(value: float, digits: int) -> float:
    return float(f"{float(value):.{digits}g}")


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
