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
- **intensity**: the Mahalanobis distance of the 1st, 50th and 99th percentiles of the item's model input
  (after preprocessing), per channel (3C values), from those of the training items, flagged above its own
  held-out 99th percentile. A Gaussian rather than a box of per-channel ranges, because what sets real
  images apart is often how the channels go together (the colour balance of a stain), not any one channel
  leaving its range: on the demo tumour model the box missed a fifth of a real TCGA slide's patches.
- **image facts**: modality, body part (DICOM BodyPartExamined) and in-plane pixel spacing of a volume, the
  micrometres per pixel of a slide, against the training data's. A mismatch flags every item of the image;
  a fact the image does not record is not a mismatch (it is left unchecked and nothing is said).

The ``training`` block (every part may be left out or null, except ``features``, without which the guard
cannot check; ``modality`` and ``body_part`` are a string or a list of them; ranges are [low, high], or one
number for a single value)::

    "training": {
      "modality": ["CT"], "body_part": ["CHEST"], "spacing_mm": [0.7, 2.8], "mpp": null,
      "intensity_percentiles": {"percentiles": [1, 50, 99], "dimensions": 3, "mean": [...3],
                                "covariance": [[...3] x 3], "shrinkage": 0.001, "threshold": 4.2, ...},
      "features": {"method": "forward_features", "pooling": "mean_std", "dimensions": 64,
                   "mean": [...64], "covariance": [[...64] x 64], "shrinkage": 0.0009,
                   "threshold": 13.8, "threshold_percentile": 99, "training_items": 6000,
                   "held_out_items": 2000}
    }

Both Gaussians have the same fields. ``intensity_percentiles`` has 3C dimensions, ordered percentile by
percentile: the 1st percentile of each channel, then the 50th, then the 99th. ``covariance`` is the
covariance already shrunk (Ledoit and Wolf's estimate of the shrinkage towards a multiple of the identity,
recorded in ``shrinkage``), so the guard only inverts it; ``threshold`` is the THRESHOLD_PERCENTILE-th
percentile of held-out in-distribution items' distances.
``method`` is the module's method that gives the features (default: the ``explain`` block's); the head is
the ``explain`` block's ``head``.

The run gets the features for free: where the guard can check, ``inference.RunningModel`` calls
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
from numpy.typing import NDArray

if TYPE_CHECKING:
    import torch

    from medviewer.ai.package import LoadedModel
    from medviewer.core.volume import Volume
    from medviewer.io.slide import Slide

NOT_AVAILABLE = "no check of the input against the training data is available"
#: ``why_not`` of a run asked to leave the guard out (``run_slices(..., guard=False)``, for measuring its cost).
NOT_RUN = "the guard was turned off for this run"
COULD_NOT = "the guard could not check: "
#: Per item and channel, these percentiles of the model input are compared with the training items'.
PERCENTILES = (1.0, 50.0, 99.0)
#: Pixel spacing and MPP within this fraction beyond the training range still count as inside it.
SPACING_TOLERANCE = 0.05
MPP_TOLERANCE = 0.1
THRESHOLD_PERCENTILE = 99.0
#: Each check flags about 1 % of held-out in-distribution items by design, so a few flags on an image like the
#: training data are chance. Up to this fraction of its items, with no image-level reason, the flagged items
#: are marked but the image is not called outside what the model was trained on.
SCATTERED_FRACTION = 0.05
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
    feature_flagged: NDArray[np.bool_]
    intensity_flagged: NDArray[np.bool_]
    image_reasons: tuple[str, ...]

    @property
    def flagged(self) -> np.ndarray:
        """Per item: outside what the model was trained on by its features, its intensities or the image's
        facts; only where the item was scored, and nowhere when nothing was checked."""
        if not self.checked:
            return np.zeros(self.scores.shape, dtype=bool)
        scored: NDArray[np.bool_] = ~np.isnan(self.scores)
        return scored & (self.feature_flagged | self.intensity_flagged | bool(self.image_reasons))

    @property
    def level(self) -> str:
        """ "not checked"; "inside" (nothing flagged); "scattered" (a few items flagged, no more than chance
        gives on data like the training data: SCATTERED_FRACTION); "outside" (more, or the image's facts)."""
        if not self.checked:
            return "not checked"
        flagged = int(self.flagged.sum())
        if not flagged:
            return "inside"
        scored = int((~np.isnan(self.scores)).sum())
        return "scattered" if not self.image_reasons and flagged <= SCATTERED_FRACTION * scored else "outside"

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
            "level": self.level,
        }

    def banner(self) -> str:
        """The warning above the results when the image is outside what the model was trained on: the count
        and the reasons; why not when nothing could be checked; "" otherwise (``note`` says how it went)."""
        if not self.checked:
            return self.why_not
        if self.level != "outside":
            return ""
        summary = self.summary()
        return (
            f"Outside what this model was trained on: {summary['flagged']} of {summary['items']} {self.item_word} "
            f"({self._reasons(summary)})"
        )

    def note(self) -> str:
        """The quieter line of a check that found the image inside what the model was trained on, with the
        few items that stand out by chance, if any; "" when there is a banner instead."""
        if self.level not in ("inside", "scattered"):
            return ""
        summary, word = self.summary(), self.item_word
        if self.level == "inside":
            return f"Checked against the training data: none of the {summary['items']} {word} is outside it."
        return (
            f"Checked against the training data: {summary['flagged']} of {summary['items']} {word} stand out "
            f"({self._reasons(summary)}), as a few do by chance on data like it; they are marked."
        )

    def _reasons(self, summary: dict[str, Any]) -> str:
        word = self.item_word
        reasons = list(self.image_reasons)
        if summary["feature_flagged"]:
            reasons.append(f"features unlike the training data's on {summary['feature_flagged']} {word}")
        if summary["intensity_flagged"]:
            reasons.append(f"intensities unlike the training data's on {summary['intensity_flagged']} {word}")
        return "; ".join(reasons)


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
class Gaussian:
    """One stored Gaussian of training items and the distance above which an item is unlike them."""

    mean: np.ndarray
    whitening: np.ndarray  # W with W @ covariance @ W.T == I: distance is |W (f - mean)|
    threshold: float

    @property
    def dimensions(self) -> int:
        return len(self.mean)

    def distances(self, values: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of (N, dimensions) ``values``; infinite where a value is not
        finite (a NaN input is never inside)."""
        centred = values - self.mean
        with np.errstate(invalid="ignore", over="ignore"):
            whitened = centred @ self.whitening.T
            result: np.ndarray = np.sqrt(np.einsum("ij,ij->i", whitened, whitened))  # numpy types einsum as Any
        result[~np.isfinite(values).all(axis=1) | ~np.isfinite(result)] = np.inf
        return result

    def outside(self, values: np.ndarray) -> np.ndarray:
        return self.distances(values) > self.threshold


@dataclass(frozen=True, eq=False)
class Reference:
    """A usable training block: the facts and the two Gaussians (features, input percentiles), ready to score."""

    modality: tuple[str, ...] | None
    body_part: tuple[str, ...] | None
    spacing_mm: tuple[float, float] | None
    mpp: tuple[float, float] | None
    method: str | None
    features: Gaussian
    intensity: Gaussian | None


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
    method = features.get("method")
    if method is not None and (not isinstance(method, str) or not method.strip()):
        raise ReferenceError(f"medviewer.training.features.method is {_short(method)}, not a method name")
    return Reference(
        modality=_words(block, "modality"),
        body_part=_words(block, "body_part"),
        spacing_mm=_range(block, "spacing_mm"),
        mpp=_range(block, "mpp"),
        method=method,
        features=_gaussian(features, "medviewer.training.features"),
        intensity=_intensity(block.get("intensity_percentiles"), channels),
    )


def _gaussian(block: dict[str, Any], field: str) -> Gaussian:
    mean = _array(block.get("mean"), f"{field}.mean", 1)
    covariance = _array(block.get("covariance"), f"{field}.covariance", 2)
    dimensions = block.get("dimensions", len(mean))
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
    threshold = block.get("threshold")
    if threshold is None:
        raise ReferenceError(f"{field}.threshold is missing")
    if not _is_number(threshold) or not math.isfinite(threshold) or threshold <= 0:
        raise ReferenceError(f"{field}.threshold is {_short(threshold)}, not a positive number")
    lower = np.linalg.cholesky(covariance)
    return Gaussian(mean, np.linalg.solve(lower, np.eye(len(mean))), float(threshold))


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


def _intensity(value: Any, channels: int) -> Gaussian | None:
    field = "medviewer.training.intensity_percentiles"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ReferenceError(f"{field} is {_short(value)}, not an object")
    stated = value.get("percentiles", list(PERCENTILES))
    if not isinstance(stated, list) or not all(_is_number(v) for v in stated) or tuple(stated) != PERCENTILES:
        raise ReferenceError(f"{field}.percentiles is {_short(stated)}; the guard measures {list(PERCENTILES)}")
    gaussian = _gaussian(value, field)
    if gaussian.dimensions != len(PERCENTILES) * channels:
        raise ReferenceError(
            f"{field} has {gaussian.dimensions} dimensions but the model's {channels} channel(s) give "
            f"{len(PERCENTILES) * channels} percentiles"
        )
    return gaussian


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
    result: NDArray[np.float64] = (below + (above - below) * weight).astype(np.float64)
    result[np.broadcast_to(np.isnan(flat[..., -1])[:, None, :], result.shape)] = np.nan  # NaN sorts last
    return result


def intensity_outside(reference: Reference, percentiles: np.ndarray) -> np.ndarray:
    """Per item of (N, percentiles, channels): unlike the training items' input percentiles (never, when the
    reference has none); NaN counts as outside."""
    if reference.intensity is None:
        return np.zeros(len(percentiles), dtype=bool)
    return reference.intensity.outside(percentiles.reshape(len(percentiles), -1))


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
        if pooled.shape != (len(x), self.reference.features.dimensions):
            self.disable(
                f"the model's {self.methods[0]} output pools to {pooled.shape[1]} values per item but its training "
                f"reference has {self.reference.features.dimensions} dimensions"
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
        pooled = np.concatenate(self._pooled) if self._pooled else np.zeros((0, self.reference.features.dimensions))
        percentiles = np.concatenate(self._percentiles) if self._percentiles else np.zeros((0, 3, 1))
        positions = np.arange(count) if positions is None else np.asarray(positions, dtype=np.int64)
        keep = np.ones(len(positions), dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
        if len(pooled) != len(positions):
            return unchecked(COULD_NOT + f"{len(pooled)} items' features for {len(positions)} items run", shape)
        scores = np.full(count, np.nan, dtype=np.float32)
        feature = np.zeros(count, dtype=bool)
        intensity = np.zeros(count, dtype=bool)
        where = positions[keep]
        item_scores = self.reference.features.distances(pooled[keep])
        scores[where] = item_scores
        feature[where] = item_scores > self.reference.features.threshold
        intensity[where] = intensity_outside(self.reference, percentiles[keep])
        return OodReport(
            checked=True,
            why_not="",
            scores=_frozen(scores.reshape(shape)),
            threshold=self.reference.features.threshold,
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


def gaussian_block(training: np.ndarray, held_out: np.ndarray, digits: int = 8) -> dict[str, Any]:
    """A stored Gaussian of (N, D) training items: their mean and shrunk covariance (rounded to ``digits``
    significant digits, as stored), and the threshold: the THRESHOLD_PERCENTILE-th percentile of the
    held-out items' distances under that stored Gaussian, so that rounding cannot move it."""
    mean, covariance, shrinkage = ledoit_wolf(training)
    block: dict[str, Any] = {
        "dimensions": int(training.shape[1]),
        "mean": [_significant(v, digits) for v in mean],
        "covariance": [[_significant(v, digits) for v in row] for row in (covariance + covariance.T) / 2],
        "shrinkage": _significant(shrinkage, 4),
        "threshold": 1.0,
        "threshold_percentile": THRESHOLD_PERCENTILE,
        "training_items": int(len(training)),
        "held_out_items": int(len(held_out)),
    }
    held = _gaussian(block, "held-out items").distances(np.asarray(held_out, dtype=np.float64))
    block["threshold"] = _significant(float(np.percentile(held, THRESHOLD_PERCENTILE)), 6)
    return block


def feature_block(training: np.ndarray, held_out: np.ndarray, method: str = "forward_features") -> dict[str, Any]:
    """The ``features`` part of a training block from (N, 2C) pooled features (``pool_features``)."""
    return {"method": method, "pooling": "mean_std", **gaussian_block(training, held_out)}


def intensity_block(training: np.ndarray, held_out: np.ndarray) -> dict[str, Any]:
    """The ``intensity_percentiles`` part from (N, percentiles, channels) item percentiles
    (``item_percentiles``) of training and held-out items."""
    training_flat, held_out_flat = (np.asarray(items).reshape(len(items), -1) for items in (training, held_out))
    return {"percentiles": list(PERCENTILES), **gaussian_block(training_flat, held_out_flat)}


def _significant(value: float, digits: int) -> float:
    return float(f"{float(value):.{digits}g}")


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
