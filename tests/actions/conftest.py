"""A tiny approved slice model for driving the actions as the window and the command line do."""

from __future__ import annotations

from pathlib import Path

import pytest

from medviewer.ai import registry
from medviewer.ai.package import ModelPackage, read_package
from tests.support.tiny_bundle import Exported, export_tiny, write_bundle


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return export_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def approved(tmp_path: Path, exported: Exported) -> ModelPackage:
    """The tiny bundle, approved in this test's own MEDVIEWER_HOME."""
    package = read_package(write_bundle(tmp_path / "tiny", exported))
    for weights in package.weights.values():
        registry.approve(weights, package)
    return package
