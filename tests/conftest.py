"""Shared fixtures: an isolated MEDVIEWER_HOME per test, demo data made once, real test files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.paths import gunzip_folder, pydicom_file, real_file

# The suite runs headless everywhere (CI has no display); a developer may override it.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: trains, loads or runs the demo models, or takes over 5 s on a 2-core machine; "
        'deselect with -m "not slow" for a quick run',
    )


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
    return json.loads((demo_dir / "ground_truth.json").read_text())


@pytest.fixture(scope="session")
def ge_tilt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GE HiSpeed head CT: 28 slices, 18.5 degree gantry tilt, steps of 4, 1.08 and 7 mm."""
    return gunzip_folder(real_file("dcm_qa_ct_ge"), tmp_path_factory.mktemp("ge") / "GE", 28)


@pytest.fixture(scope="session")
def xa30i_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Siemens XA30 sagittal T1w MR, 96 slices of 128x128."""
    return gunzip_folder(real_file("dcm_qa_xa30i/In"), tmp_path_factory.mktemp("xa30i") / "T1w", 96)


@pytest.fixture(scope="session")
def ct2_dir() -> Path:
    """pydicom's real 4-slice CT series with one 202.5 mm step and three of 1.25 mm."""
    folder = pydicom_file("dicomdirtests/77654033/CT2/17106").parent
    assert len(list(folder.iterdir())) == 4
    return folder
