"""Shared fixtures: an isolated MEDVIEWER_HOME per test, demo data made once, real test files."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom.data
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


def pydicom_file(name: str) -> Path:
    """A file from pydicom's bundled test data; fails loudly if this pydicom does not ship it."""
    found = pydicom.data.get_testdata_file(name)
    if found is None:
        raise FileNotFoundError(f"pydicom's test file {name} is missing")
    return Path(found)


def _gunzip_folder(source: Path, target: Path, count: int) -> Path:
    files = sorted(source.glob("*.dcm.gz"))
    if len(files) != count:
        raise FileNotFoundError(f"{source} holds {len(files)} .dcm.gz files, expected {count}")
    target.mkdir(parents=True)
    for path in files:
        with gzip.open(path) as packed, open(target / path.name.removesuffix(".gz"), "wb") as unpacked:
            shutil.copyfileobj(packed, unpacked)
    return target


@pytest.fixture(scope="session")
def ge_tilt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GE HiSpeed head CT: 28 slices, 18.5 degree gantry tilt, steps of 4, 1.08 and 7 mm."""
    return _gunzip_folder(real_file("dcm_qa_ct_ge"), tmp_path_factory.mktemp("ge") / "GE", 28)


@pytest.fixture(scope="session")
def xa30i_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Siemens XA30 sagittal T1w MR, 96 slices of 128x128."""
    return _gunzip_folder(real_file("dcm_qa_xa30i/In"), tmp_path_factory.mktemp("xa30i") / "T1w", 96)


@pytest.fixture(scope="session")
def ct2_dir() -> Path:
    """pydicom's real 4-slice CT series with one 202.5 mm step and three of 1.25 mm."""
    folder = pydicom_file("dicomdirtests/77654033/CT2/17106").parent
    assert len(list(folder.iterdir())) == 4
    return folder
