"""What a slice model's run over many slices says, summarised one way for the window and the command line.

A run over 120 slices is 240 numbers. Showing the probabilities of the single most confident slice of any
class (what the first version did) reads "normal 0.9993, lesion 0.0007" on a CT with ten lesion slices: a
reader of the headline concludes "no lesion". So each class is summarised on its own, by its highest
probability and the slice it is on, its mean over the slices, and how many slices it is above 0.5; and the
slice a saliency map explains is the one where the chosen class (by default the model's last, positive
class) is most probable, not the most confident slice of whatever class.

Slice numbers a person reads are 1-based (slice 1 is the first slice of the series, as every viewer counts);
the JSON keeps the 0-based array index beside each as ``index``.

A slide run is summarised per class over the tissue patches that were read (``summarise_slide``): the mean,
the highest and its patch (row and column of the grid, counted from 0 as in the CSV and GeoJSON exports),
and how many patches it is the top class of.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.core.errors import MedviewerError

#: Outputs that are probabilities, so "above 0.5" means "more likely than not" (sigmoid per class, or softmax
#: over two classes) or at least says the class leads; raw scores ("none") have no such line.
PROBABILITY_ACTIVATIONS = ("softmax", "sigmoid")


def slice_number(index: int) -> int:
    """The 1-based number a person reads for the 0-based slice ``index``."""
    return index + 1


def class_index(classes: tuple[str, ...], name: str | None, model: str | Path) -> int:
    """The class a summary leads with and saliency explains: ``name``, or the model's last (positive) class.

    An unknown name is refused before anything runs, naming the classes the model has."""
    if name is None:
        return len(classes) - 1
    if name not in classes:
        raise MedviewerError(model, f"the model has no class {name!r}; its classes are {', '.join(classes)}")
    return classes.index(name)


@dataclass(frozen=True)
class ClassSummary:
    """One class over the slices run: ``highest_index`` is the 0-based slice index of its highest probability;
    ``above_half`` counts slices where it exceeds 0.5 (None when the outputs are raw scores)."""

    name: str
    highest: float
    highest_index: int
    mean: float
    above_half: int | None


@dataclass(frozen=True)
class SliceSummary:
    """Per class summaries of a slice run, and the slice that saliency explains (0-based ``explained_index``),
    where ``classes[chosen]`` is most probable."""

    classes: tuple[ClassSummary, ...]
    slices: int
    chosen: int
    explained_index: int
    activation: str

    @property
    def chosen_class(self) -> ClassSummary:
        return self.classes[self.chosen]

    def line(self, summary: ClassSummary) -> str:
        """One class in words: "lesion: highest 0.98 on slice 61, mean 0.09, above 0.5 on 10 of 120 slices"."""
        if self.slices == 1:
            return f"{summary.name}: {summary.highest:.4f} on slice {slice_number(summary.highest_index)}"
        words = (
            f"{summary.name}: highest {summary.highest:.4f} on slice {slice_number(summary.highest_index)}, "
            f"mean {summary.mean:.4f}"
        )
        if summary.above_half is not None:
            words += f", above 0.5 on {summary.above_half} of {self.slices} slices"
        return words

    def headline(self) -> str:
        """The chosen class first, as a clinician would read the result: where it peaks, and on how many slices."""
        return self.line(self.chosen_class)

    def as_json(self) -> dict[str, Any]:
        return {
            "slices": self.slices,
            "activation": self.activation,
            "class": self.chosen_class.name,
            "slice": slice_number(self.explained_index),
            "index": self.explained_index,
            "classes": {
                summary.name: {
                    "max": summary.highest,
                    "max_slice": slice_number(summary.highest_index),
                    "max_index": summary.highest_index,
                    "mean": summary.mean,
                    "slices_above_0_5": summary.above_half,
                }
                for summary in self.classes
            },
        }


def summarise_slices(
    indices: tuple[int, ...], classes: tuple[str, ...], probabilities: np.ndarray, activation: str, chosen: int
) -> SliceSummary:
    """Summaries of ``probabilities[i, k]`` (class ``classes[k]`` on slice ``indices[i]``) for each class."""
    values = np.asarray(probabilities, dtype=np.float64)
    if values.ndim != 2 or values.shape != (len(indices), len(classes)) or not len(indices):
        raise ValueError(f"expected probabilities of shape ({len(indices)}, {len(classes)}), got {values.shape}")
    is_probability = activation in PROBABILITY_ACTIVATIONS
    summaries = tuple(
        ClassSummary(
            name=name,
            highest=float(values[:, k].max()),
            highest_index=int(indices[int(np.argmax(values[:, k]))]),
            mean=float(values[:, k].mean()),
            above_half=int((values[:, k] > 0.5).sum()) if is_probability else None,
        )
        for k, name in enumerate(classes)
    )
    return SliceSummary(summaries, len(indices), chosen, summaries[chosen].highest_index, activation)


@dataclass(frozen=True)
class SlideSummary:
    """Per class over the tissue patches that were read: the mean, the highest and its patch, and how many
    patches it is the top class of. A slide has no single probability, so none is invented."""

    classes: tuple[str, ...]
    patches: int  # tissue patches read (a damaged tile leaves its patch out)
    mean: np.ndarray
    highest: np.ndarray
    highest_cell: tuple[tuple[int, int], ...]
    top: np.ndarray
    chosen: int

    def lines(self) -> list[str]:
        order = [self.chosen] + [k for k in range(len(self.classes)) if k != self.chosen]
        return [
            f"{self.classes[k]}: slide mean {self.mean[k]:.4f}, max {self.highest[k]:.4f} "
            f"({cell_words(*self.highest_cell[k])}), top class in {int(self.top[k])} of {self.patches} "
            "tissue patches"
            for k in order
        ]


def summarise_slide(
    probabilities: np.ndarray, tissue: np.ndarray, chosen: int, classes: tuple[str, ...]
) -> SlideSummary:
    """``probabilities[row, column, k]`` over the ``tissue`` cells whose patch was read (NaN: unread)."""
    values = np.asarray(probabilities, dtype=np.float64)
    on_tissue = values[np.asarray(tissue, dtype=bool)]
    read = on_tissue[~np.isnan(on_tissue).any(axis=1)]
    if not len(read):
        nan = np.full(len(classes), np.nan)
        return SlideSummary(classes, 0, nan, nan, ((0, 0),) * len(classes), np.zeros(len(classes), int), chosen)
    cells = []
    for k in range(len(classes)):
        heat = np.where(np.isnan(values[..., k]), -np.inf, values[..., k])
        row, column = np.unravel_index(int(np.argmax(heat)), heat.shape)
        cells.append((int(row), int(column)))
    top = np.bincount(np.argmax(read, axis=1), minlength=len(classes))
    return SlideSummary(classes, len(read), read.mean(axis=0), read.max(axis=0), tuple(cells), top, chosen)


def cell_words(row: int, column: int) -> str:
    return f"row {row}, column {column}"
