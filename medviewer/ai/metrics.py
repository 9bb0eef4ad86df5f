"""Classification metrics for ``medviewer evaluate``, in plain numpy so no further library is needed.

A person deciding whether to trust a model wants more than accuracy: per-class precision and recall,
the ROC AUC (threshold-free), the confusion matrix, and calibration (expected calibration error and a
reliability plot), since a model that says 0.99 should be right 99 times in 100.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_BINS = 10


@dataclass(frozen=True)
class ClassMetrics:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Evaluation:
    classes: tuple[str, ...]
    count: int
    accuracy: float
    per_class: dict[str, ClassMetrics]
    #: One-vs-rest ROC AUC per class (None where the labels hold only one side).
    roc_auc: dict[str, float | None]
    #: confusion[i][j]: cases of true class i predicted as class j.
    confusion: list[list[int]]
    expected_calibration_error: float
    #: Per confidence bin: (mean confidence, accuracy, count), for the reliability plot.
    reliability: list[tuple[float, float, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "count": self.count,
            "accuracy": self.accuracy,
            "precision": {k: v.precision for k, v in self.per_class.items()},
            "recall": {k: v.recall for k, v in self.per_class.items()},
            "f1": {k: v.f1 for k, v in self.per_class.items()},
            "support": {k: v.support for k, v in self.per_class.items()},
            "roc_auc": self.roc_auc,
            "confusion_matrix": self.confusion,
            "expected_calibration_error": self.expected_calibration_error,
            "reliability": [{"confidence": c, "accuracy": a, "count": n} for c, a, n in self.reliability],
        }


def evaluate_probabilities(probabilities: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> Evaluation:
    """``probabilities`` (n, k) and integer ``labels`` (n,) into every figure ``Evaluation`` holds."""
    probabilities = np.asarray(probabilities, dtype=float)
    labels = np.asarray(labels, dtype=int)
    predicted = probabilities.argmax(axis=1)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=int)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for i, name in enumerate(classes):
        true_positive = confusion[i, i]
        precision = true_positive / confusion[:, i].sum() if confusion[:, i].sum() else 0.0
        recall = true_positive / confusion[i].sum() if confusion[i].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = ClassMetrics(float(precision), float(recall), float(f1), int(confusion[i].sum()))
    roc_auc = {name: roc_auc_score(labels == i, probabilities[:, i]) for i, name in enumerate(classes)}
    ece, bins = calibration(probabilities.max(axis=1), predicted == labels)
    return Evaluation(
        classes=classes,
        count=len(labels),
        accuracy=float((predicted == labels).mean()) if len(labels) else 0.0,
        per_class=per_class,
        roc_auc=roc_auc,
        confusion=confusion.tolist(),
        expected_calibration_error=ece,
        reliability=bins,
    )


def roc_auc_score(positive: np.ndarray, score: np.ndarray) -> float | None:
    """The probability that a random positive outscores a random negative (ties count half): the
    Mann-Whitney form of the area under the ROC curve."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=float)
    sorted_scores = np.asarray(score)[order]
    # average ranks over ties
    start = 0
    for end in range(1, len(sorted_scores) + 1):
        if end == len(sorted_scores) or sorted_scores[end] != sorted_scores[start]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibration(confidence: np.ndarray, correct: np.ndarray) -> tuple[float, list[tuple[float, float, int]]]:
    """Expected calibration error over equal-width confidence bins, and each bin's figures."""
    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, CALIBRATION_BINS - 1)
    ece, bins = 0.0, []
    for b in range(CALIBRATION_BINS):
        members = which == b
        count = int(members.sum())
        if count == 0:
            continue
        mean_confidence = float(confidence[members].mean())
        accuracy = float(correct[members].mean())
        ece += count / len(confidence) * abs(mean_confidence - accuracy)
        bins.append((mean_confidence, accuracy, count))
    return float(ece), bins


def write_reliability_plot(evaluation: Evaluation, path: Path, size: int = 480) -> None:
    """Accuracy against confidence per bin, with the diagonal of perfect calibration, as a PNG."""
    from PIL import Image, ImageDraw

    margin = 48
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    span = size - 2 * margin

    def point(confidence: float, accuracy: float) -> tuple[float, float]:
        return margin + confidence * span, size - margin - accuracy * span

    draw.rectangle([margin, margin, size - margin, size - margin], outline="black")
    draw.line([point(0, 0), point(1, 1)], fill=(150, 150, 150), width=1)
    width = span / CALIBRATION_BINS
    for confidence, accuracy, _count in evaluation.reliability:
        left = margin + int(min(confidence, 0.999) * CALIBRATION_BINS) * width
        draw.rectangle([left + 2, point(0, accuracy)[1], left + width - 2, size - margin], fill=(74, 144, 217))
    for tick in (0.0, 0.5, 1.0):
        x, y = point(tick, tick)
        draw.text((x - 8, size - margin + 6), f"{tick:.1f}", fill="black")
        draw.text((margin - 30, y - 6), f"{tick:.1f}", fill="black")
    draw.text((margin, size - 20), "confidence (top class probability)", fill="black")
    draw.text((margin, 12), f"accuracy per bin; ECE {evaluation.expected_calibration_error:.3f}", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "PNG")
