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

from medviewer.actions.model_runs import approve_model
from medviewer.ai import registry
from medviewer.ai.model_card import card_summary, printable
from medviewer.ai.package import read_package
from medviewer.core.errors import MedviewerError


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
        approve_model(package, hashes)  # records where it lies if the approval did not (see registry.approve)
        print(f"{package.name} {package.version} is already approved")
        return 0
    if not (assume_yes or _ask("Approve this model? [y/N] ")):
        print(f"medviewer models: {package.name} {package.version} was not approved", file=sys.stderr)
        return 1
    approve_model(package, hashes)
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
