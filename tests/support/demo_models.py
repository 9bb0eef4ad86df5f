"""What the tests of the shipped demo models share: their training scripts as modules (for the network
classes), and the checks that a bundle ships as the project promises."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from medviewer.ai import registry
from medviewer.ai.package import ModelPackage, read_package
from tests.support.paths import REPO

MODELS = REPO / "models"


def training_script(folder: str) -> ModuleType:
    """models/<folder>/train.py as a module (its main() is not run), for the network's class."""
    name = f"{folder}_train"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, MODELS / folder / "train.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file executes
        spec.loader.exec_module(module)
    return sys.modules[name]


def assert_shipped_as_promised(package: ModelPackage, name: str, bundle: Path) -> None:
    """Both weights files approved out of the box under this model's name, listed with their hashes in the
    card, each carrying the bundle's metadata; small; a card that says what the model is and is not."""
    assert (package.name, package.version) == (name, "1.2.0")
    assert set(package.weights) == {"torchscript", "export"}
    assert package.spec.explain is not None and package.spec.diagnostic_use is False
    assert "not for diagnostic use" in package.intended_use
    assert "synthetic phantoms" in package.card and "Held-out accuracy" in package.card
    builtin = {entry.sha256: entry for entry in registry.entries() if entry.builtin}
    for file in package.weights.values():
        digest = registry.sha256_of(file)
        assert digest in builtin, f"{file.name} (SHA-256 {digest}) is not in resources/approved_models.json"
        assert (builtin[digest].name, builtin[digest].file_name) == (name, file.name)
        assert digest in package.card, "the model card lists the files' hashes"
        assert read_package(file).spec == package.spec  # each file carries the metadata, as ckpt_export writes it
    assert sum(file.stat().st_size for file in package.weights.values()) < 2 * 1024 * 1024
    assert json.loads((bundle / "configs" / "metadata.json").read_text())["name"] == name
