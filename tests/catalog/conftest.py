"""Catalog fixtures: a writable copy of pydicom's DICOMDIR tree and small generated folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.dicom_copies import write_files
from tests.support.paths import pydicom_file


@pytest.fixture
def dicomdir_tree(tmp_path: Path) -> Path:
    """A copy of pydicom's dicomdirtests (DICOMDIR plus 31 images of 2 patients), free to modify."""
    source = pydicom_file("dicomdirtests/DICOMDIR").parent
    target = tmp_path / "dicomdirtests"
    shutil.copytree(source / "77654033", target / "77654033")
    shutil.copytree(source / "98892001", target / "98892001")
    shutil.copytree(source / "98892003", target / "98892003")
    shutil.copy(source / "DICOMDIR", target / "DICOMDIR")
    return target / "DICOMDIR"


@pytest.fixture
def generated(tmp_path: Path):
    """A function writing ``count`` distinct small DICOM files under ``tmp_path / name``."""

    def make(name: str, count: int, first: int = 0) -> Path:
        write_files(tmp_path / name, count, first)
        return tmp_path / name

    return make
