"""Shared fixtures: an isolated MEDVIEWER_HOME per test, demo data made once, real test files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The suite runs headless everywhere (CI has no display); a developer may override it.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent


@pytest.fixture(autouse=True)
def medviewer_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes settings, logs and caches under its own folder, never the user's."""
    home = tmp_path / "medviewer-home"
    monkeypatch.setenv("MEDVIEWER_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full demo set (seed 0), generated once per test session."""
    from medviewer.demo.generate import generate_demo_data

    out = tmp_path_factory.mktemp("demo")
    generate_demo_data(out, seed=0)
    return out


@pytest.fixture(scope="session")
def ground_truth(demo_dir: Path) -> dict:
    import json

    return json.loads((demo_dir / "ground_truth.json").read_text())


def real_file(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        raise FileNotFoundError(f"test data {path} is missing; see tests/data/README.md")
    return path


def run_medviewer(*args: str, home: Path, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real entry point in a child process, offscreen, with its own MEDVIEWER_HOME."""
    child_env = {**os.environ, "MEDVIEWER_HOME": str(home), "QT_QPA_PLATFORM": "offscreen", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "medviewer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env,
        cwd=REPO,
    )
