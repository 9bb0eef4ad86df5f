"""What an AI result says in the window, in words: the summary text, each chart's title, and what is known of
whether the input is like the model's training data. No Qt here, so every sentence can be tested alone.

The words are the command line's (``medviewer.ai.summary``, for slice runs and slides alike), so a number
read in the window and in a terminal means the same thing. A chart's title says what its bars are: one
named slice, the whole volume, the slide mean over its tissue patches, or one patch.
Slice numbers a person reads are 1-based; patch rows and columns are those of the exported CSV and of the
command line (the grid's own row and column, counted from 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from medviewer.ai.ood import NOT_AVAILABLE
from medviewer.ai.summary import (
    PROBABILITY_ACTIVATIONS,
    SliceSummary,
    cell_words,
    slice_number,
    summarise_slices,
)

#: Said of a result kept before the out-of-distribution check existed.
NOT_KNOWN = (
    "Not known whether this input is like the model's training data: the result was kept before the "
    "check existed. Run the model again to check."
)
#: The legend entry of the marks on the per-slice curve and of the hatching on the slide.
OUTSIDE = "outside training data"


def not_checked(why_not: str) -> str:
    """The quiet line of a result whose input was not checked against the training data."""
    if why_not.strip().lower() == NOT_AVAILABLE:
        return (
            "Not checked against the training data: the model does not describe what it was trained on, so "
            "nothing tells whether this input is like it."
        )
    return f"Not checked against the training data: {why_not.rstrip('.')}."


class OodLike(Protocol):
    """What the window reads of ``medviewer.ai.ood.OodReport``."""

    checked: bool
    why_not: str

    @property
    def flagged(self) -> np.ndarray: ...

    def banner(self) -> str: ...

    def note(self) -> str: ...


def chosen_index(classes: tuple[str, ...], name: str | None) -> int:
    """The class the result leads with: ``name`` (the panel's class for saliency) when the result has it, else
    the model's last (positive) class."""
    return classes.index(name) if name in classes else len(classes) - 1


def is_probability(activation: str) -> bool:
    return activation in PROBABILITY_ACTIVATIONS


def value_of(name: str, activation: str) -> str:
    """ "p(lesion)" for probabilities, "lesion score" for raw scores."""
    return f"p({name})" if is_probability(activation) else f"{name} score"


def _values(activation: str) -> str:
    return "Probabilities" if is_probability(activation) else "Scores"


def flagged_of(ood: OodLike | None, shape: tuple[int, ...]) -> np.ndarray:
    """Which items (slices, or slide patches by row and column) the check flagged; none when not checked."""
    if ood is None or not ood.checked:
        return np.zeros(shape, dtype=bool)
    flagged = np.asarray(ood.flagged, dtype=bool)
    return flagged if flagged.shape == shape else np.zeros(shape, dtype=bool)


# The out-of-distribution check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class OodWords:
    """``warning``: the banner a flagged result carries above everything else ("" when nothing is flagged);
    ``note``: the quieter line when there is no warning (not checked, not known, or checked and clean)."""

    warning: str
    note: str


def ood_words(ood: OodLike | None) -> OodWords:
    """What the window says of the check: the banner when the result is outside the training data, else the
    quieter note of what the check found or why it did not run."""
    if ood is None:
        return OodWords("", NOT_KNOWN)
    banner = ood.banner()
    if not ood.checked:
        return OodWords("", not_checked(ood.why_not))
    return OodWords(banner, "") if banner else OodWords("", ood.note())


# Slice runs ----------------------------------------------------------------------------------------------


def summarise(
    indices: tuple[int, ...], classes: tuple[str, ...], probabilities: np.ndarray, activation: str, chosen: int
) -> SliceSummary:
    return summarise_slices(tuple(int(i) for i in indices), tuple(classes), probabilities, activation, chosen)


def slice_lines(summary: SliceSummary) -> list[str]:
    """One line per class, the chosen class first, as the command line prints them."""
    first = summary.chosen_class
    return [summary.line(first)] + [summary.line(c) for c in summary.classes if c is not first]


def slice_bars_title(index: int, slices_in_volume: int, activation: str) -> str:
    """ "Probabilities on slice 61 of 120" for the 0-based ``index``."""
    return f"{_values(activation)} on slice {slice_number(index)} of {slices_in_volume}"


def curve_title(name: str, activation: str) -> str:
    return f"{value_of(name, activation)} per slice"


def peak_words(summary: SliceSummary) -> str:
    """The go-to button: the slice where the chosen class peaks."""
    return (
        f"Go to slice {slice_number(summary.explained_index)}, "
        f"highest {value_of(summary.chosen_class.name, summary.activation)}"
    )


def number_ranges(numbers: list[int]) -> str:
    """ "59-61, 101-110, 118" for sorted slice numbers."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ", ".join(f"{a}" if a == b else f"{a}–{b}" for a, b in runs)


def flagged_slice_words(indices: tuple[int, ...], flagged: np.ndarray, summary: SliceSummary | None) -> str:
    """The slices the check flagged, and whether the chosen class's peak is one of them."""
    numbers = sorted(slice_number(int(i)) for i, f in zip(indices, flagged, strict=True) if f)
    if not numbers:
        return ""
    words = f"Outside the training data: {len(numbers)} of {len(indices)} slices ({number_ranges(numbers)})."
    if summary is not None and slice_number(summary.explained_index) in numbers:
        words += (
            f" The highest {value_of(summary.chosen_class.name, summary.activation)} is on one of them: do not "
            "read it as a finding."
        )
    return words


# Volume runs ---------------------------------------------------------------------------------------------


VOLUME_TITLE = "{values} for the whole volume"


def volume_lines(classes: tuple[str, ...], values: np.ndarray, chosen: int) -> list[str]:
    order = [chosen] + [k for k in range(len(classes)) if k != chosen]
    return [f"{classes[k]}: {float(values[k]):.4f} for the whole volume" for k in order]


def volume_bars_title(activation: str) -> str:
    return VOLUME_TITLE.format(values=_values(activation))


# Slide runs ----------------------------------------------------------------------------------------------


def slide_bars_title(patches: int) -> str:
    return f"Slide mean over {patches} tissue patches"


def patch_bars_title(row: int, column: int) -> str:
    return f"This patch ({cell_words(row, column)})"


def patch_line(row: int, column: int, classes: tuple[str, ...], values: np.ndarray, chosen: int, flagged: bool) -> str:
    order = [chosen] + [k for k in range(len(classes)) if k != chosen]
    numbers = ", ".join(f"{classes[k]} {float(values[k]):.4f}" for k in order)
    words = f"This patch ({cell_words(row, column)}): {numbers}."
    if flagged:
        words += " It is outside what the model was trained on: do not read it as a finding."
    return words
