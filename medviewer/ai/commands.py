"""``medviewer models add`` and ``medviewer models list``: approving models from a terminal.

Approval is a person's decision about code that will run on their machine, so ``add`` shows the card and
the SHA-256 of every weights file and asks before it writes anything; ``--yes`` is for scripts that have
checked the hashes themselves. Nothing here imports torch: the package is read and hashed as plain files.
``list`` names each model ``name@version``, the form ``--model`` of ``medviewer infer`` and ``evaluate`` takes
(``medviewer.ai.model_lookup``), and says where a user's approval was made from when that is known.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from medviewer.ai import registry
from medviewer.ai.package import IntensityScale, IntensityWindow, ModelPackage, ModelSpec, read_package
from medviewer.core.errors import MedviewerError

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


def _ask(question: str) -> bool:
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:  # no terminal to answer: the default, no
        return False


def _add(path: Path, assume_yes: bool) -> int:
    package = read_package(path)
    hashes = {file: registry.sha256_of(file) for file in package.weights.values()}
    print(card_summary(package, hashes))
    if all(registry.is_approved(file, package) for file in hashes):
        for file, digest in hashes.items():  # records where it lies if the approval did not (see approve)
            registry.approve(file, package, shown_sha256=digest)
        print(f"{package.name} {package.version} is already approved")
        return 0
    if not (assume_yes or _ask("Approve this model? [y/N] ")):
        print(f"medviewer models: {package.name} {package.version} was not approved", file=sys.stderr)
        return 1
    for file, digest in hashes.items():
        registry.approve(file, package, shown_sha256=digest)
    print(f"approved {package.name} {package.version} ({len(hashes)} file{'s' if len(hashes) > 1 else ''})")
    return 0


def _list(as_json: bool) -> int:
    entries = registry.entries()
    if as_json:
        print(json.dumps([asdict(entry) for entry in entries], indent=2))
        return 0
    for entry in entries:
        origin = "built in" if entry.builtin else f"approved {entry.approved_at}"
        where = f"  from {entry.source}" if entry.source else ""
        label = printable(f"{entry.name}@{entry.version}  {entry.file_name}")
        print(f"{label}  {entry.sha256}  ({origin}){printable(where)}")
    if not entries:
        print("no approved models; add one with 'medviewer models add PATH'")
    return 0


def models_main(argv: list[str]) -> int:
    """``models add PATH [--yes]`` (exit 1 when not approved) and ``models list [--json]``."""
    parser = argparse.ArgumentParser(prog="medviewer models", description="Approve AI models and list them.")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="show a model's card and hashes and approve it")
    add.add_argument("path", type=Path, metavar="PATH", help="a bundle folder, or a .ts or .pt2 file")
    add.add_argument("--yes", action="store_true", help="approve without asking")
    show = commands.add_parser("list", help="list approved models")
    show.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    try:
        return _add(args.path, args.yes) if args.command == "add" else _list(args.json)
    except MedviewerError as exc:
        print(f"medviewer models: {exc}", file=sys.stderr)
        return 1
