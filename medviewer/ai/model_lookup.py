"""``--model NAME[@VERSION]``: an approved model found by the name ``medviewer models list`` shows.

A path that exists is used as it is. Otherwise the text is an approved model's ``name`` or
``name@version``, matched against the approved models whose package can be found: the built-in bundles
(``available.builtin_bundles``, which the shipped approvals name) and the packages users approved, at the
``source`` their approval recorded (``registry.approve``). Without a version the newest approved version
is taken.

Finding a package is not trusting it: the path returned is read and loaded as any other, and
``package.load_module`` still refuses a file whose SHA-256 is no longer approved (changed after its
approval), with the same message as for a path given by hand. Nothing here hashes a file or imports torch.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

from medviewer.ai import registry
from medviewer.ai.available import builtin_bundles
from medviewer.ai.inference import PRECISIONS
from medviewer.ai.package import ModelPackage, read_package
from medviewer.core.errors import MedviewerError


class ModelNotFoundError(MedviewerError):
    """No approved model of that name (and version) can be found; the message lists those that can."""


@dataclass(frozen=True)
class Approved:
    """An approved model whose package was found: ``name@version`` and the package's path."""

    name: str
    version: str
    path: Path

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def resolve_model(text: str | Path) -> Path:
    """``text`` as a model package path: itself when it exists, else the package of the approved model named
    ``name`` or ``name@version`` (without a version, the newest; see ``version_key``).

    Raises ModelNotFoundError listing the approved ``name@version``s that can be found when none matches,
    or when one name@version is approved from two different packages (give the path then)."""
    path = Path(text)
    if path.exists():
        return path
    text = str(text).strip()
    found = approved_models()
    name, at, version = text.rpartition("@")
    if not at or any(model.name == text for model in found):  # a name may hold an @ itself
        name, version = text, ""
    same_name = [model for model in found if model.name == name]
    matches = [model for model in same_name if model.version == version] if version else same_name
    if not matches:
        raise ModelNotFoundError(text, _not_found(name, version, same_name, found))
    newest = max(version_key(model.version) for model in matches)
    chosen = {model.path for model in matches if version_key(model.version) == newest}
    if len(chosen) > 1:
        label = next(model.label for model in matches if version_key(model.version) == newest)
        places = ", ".join(str(p) for p in sorted(chosen))
        raise ModelNotFoundError(text, f"{label} is approved from more than one package ({places}); give its path")
    return chosen.pop()


def approved_models() -> list[Approved]:
    """The approved models whose package can be found, each name@version and package once, in the order
    ``medviewer models list`` lists their approvals. A built-in bundle counts when an approval names its
    name and version; a user's approval when its recorded source still holds a package of that name and
    version. Packages that cannot be read are left out (``resolve_model`` says which were approved)."""
    entries = registry.entries()
    named = {(entry.name, entry.version) for entry in entries}
    found: dict[tuple[str, str, Path], Approved] = {}
    for bundle in builtin_bundles():
        bundle = bundle.resolve()
        package = _read(bundle)
        if package is not None and (package.name, package.version) in named:
            found.setdefault((package.name, package.version, bundle), Approved(package.name, package.version, bundle))
    for entry in entries:
        if entry.source is None:
            continue
        source = Path(entry.source).resolve()
        if (entry.name, entry.version, source) in found:
            continue
        package = _read(source)
        if package is not None and (package.name, package.version) == (entry.name, entry.version):
            found[(entry.name, entry.version, source)] = Approved(entry.name, entry.version, source)
    return list(found.values())


def version_key(version: str) -> tuple[object, ...]:
    """A sort key for versions, newest largest.

    ``packaging.version.Version`` (PEP 440: 1.10.0 after 1.9.0, 2.0.0rc1 before 2.0.0) where the version is
    one; packaging is installed with every medviewer (nibabel, scikit-image and highdicom require it), though
    medviewer's own dependency list does not name it yet. A version PEP 440 cannot read sorts below every one
    it can, and among such versions by their numbers as a tuple (``"nightly-12"`` as (12,)), then as text."""
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, tuple(int(number) for number in re.findall(r"\d+", version)), version)


def _read(path: Path) -> ModelPackage | None:
    if not path.exists():
        return None
    try:
        return read_package(path)
    except MedviewerError:
        return None


def _not_found(name: str, version: str, same_name: list[Approved], found: list[Approved]) -> str:
    """Why nothing matched, with what would: the versions of that name, or every approved model found."""
    if same_name:
        versions = ", ".join(model.label for model in sorted(same_name, key=lambda m: version_key(m.version)))
        return f"no such file or folder, and {name} is approved only as {versions}"
    labels = sorted({model.label for model in found})
    known = f"approved models: {', '.join(labels)}" if labels else "no approved model's package can be found"
    lost = sorted(
        {
            f"{entry.name}@{entry.version}"
            for entry in registry.entries()
            if not entry.builtin and f"{entry.name}@{entry.version}" not in labels and entry.name == name
        }
    )
    words = f"no such file or folder, and no approved model is named {name}"
    if version:
        words += f"@{version}"
    if lost:
        words += (
            f" whose package can be found ({', '.join(lost)} was approved, but its package is not where it was "
            "approved from, or the approval predates medviewer recording where; 'medviewer models add PATH' "
            "records it)"
        )
    return f"{words}; {known}"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--precision`` as every command that runs a model takes them, so ``infer`` and
    ``evaluate`` accept the same names and say the same."""
    parser.add_argument(
        "--model",
        required=True,
        metavar="MODEL",
        help="model bundle folder, .ts or .pt2 file, or an approved model's name or name@version "
        "(as 'medviewer models list' shows it)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="float16 runs only on CUDA (elsewhere the run is float32 and says so); default float32",
    )
