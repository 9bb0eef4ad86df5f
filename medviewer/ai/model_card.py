"""A model's card and facts in plain text, for the approval dialog and ``medviewer models add`` alike.

A person approves code that will run on their machine from what this shows: the card as its author wrote
it (made printable, so a crafted card cannot drive the terminal), what the model runs on, and the SHA-256 of
every weights file.
"""

from __future__ import annotations

from pathlib import Path

from medviewer.ai.package import IntensityScale, IntensityWindow, ModelPackage, ModelSpec

NOT_FOR_DIAGNOSIS = "NOT FOR DIAGNOSTIC USE: the card does not say this model is cleared for diagnosis."


def _input_words(spec: ModelSpec) -> str:
    parts = [f"{spec.channels} channel{'s' if spec.channels > 1 else ''}", " x ".join(map(str, spec.shape))]
    if spec.spacing_mm:
        parts.append("spacing " + " x ".join(f"{v:g}" for v in spec.spacing_mm) + " mm")
    if spec.mpp:
        parts.append(f"{spec.mpp:g} um/pixel")
    if isinstance(spec.intensity, IntensityWindow):
        parts.append(f"window {spec.intensity.low:g} to {spec.intensity.high:g}")
    elif isinstance(spec.intensity, IntensityScale):
        parts.append(
            f"scaled by 1/{spec.intensity.max_value:g}, mean {list(spec.intensity.mean)}, "
            f"std {list(spec.intensity.std)}"
        )
    return ", ".join(parts)


RUNS_CODE = (
    "Loading a TorchScript (.ts) or torch.export (.pt2) file runs code from it on this computer: approve only a "
    "model from a source you trust."
)


def printable(text: str) -> str:
    """``text`` as one line of a terminal, its control characters written out (ESC as \\x1b, a newline as
    \\n): a card or metadata must not move the cursor, recolour the screen or print a line that looks like
    medviewer's own (a forged "SHA-256 ..." line)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def card_lines(card: str) -> list[str]:
    """The card's own lines (split at its line feeds, CRLF as one), each escaped with ``printable``: a
    carriage return, vertical tab or Unicode line separator inside a line stays visible in it rather than
    starting a line the card's author chose where to draw."""
    return [printable(line) for line in card.replace("\r\n", "\n").rstrip().split("\n")]


def card_summary(package: ModelPackage, hashes: dict[Path, str]) -> str:
    """The model card summary a person reads before approving on the command line: facts, then the card,
    each of its lines indented under "model card:" and escaped."""
    lines = [card_facts(package, hashes), RUNS_CODE]
    if package.card:
        lines += ["", "model card:", *("  | " + line for line in card_lines(package.card))]
    return "\n".join(lines)


def card_facts(package: ModelPackage, hashes: dict[Path, str]) -> str:
    """What the package's metadata says and which weights it holds, by hash: the part of the card that is
    checked rather than written (the window shows the written card rendered beside it)."""
    spec = package.spec
    lines = [
        f"model         {printable(package.name)} {printable(package.version)}"
        + (f" (the metadata has no name: named from its {package.name_from})" if package.name_from else ""),
        f"target        {printable(spec.target)}",
        f"classes       {printable(', '.join(spec.classes))} (activation: {spec.activation})",
        f"input         {_input_words(spec)}",
        f"intended use  {printable(package.intended_use) or 'not stated in the metadata'}",
    ]
    if package.description:
        lines.append(f"description   {printable(package.description)}")
    if not spec.diagnostic_use:
        lines.append(NOT_FOR_DIAGNOSIS)
    for weights_format, file in package.weights.items():
        lines.append(f"{weights_format:<13} {printable(str(file))}\n              SHA-256 {hashes[file]}")
    return "\n".join(lines)
