"""Real DICOM series for the reader tests, unpacked once per session where they are stored gzipped."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pydicom.data
import pytest

from medviewer.core.volume import Volume
from tests.conftest import real_file


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


def assert_same_in_world(ours: Volume, reference: Volume) -> np.ndarray:
    """Every reference voxel centre is one of our voxel centres; returns our values there, in reference order.

    The two may store their axes in different orders and directions, so voxels are matched through
    their LPS positions, never through array indices.
    """
    index = np.indices(reference.shape).reshape(3, -1).T
    ours_index = ours.world_to_index(reference.index_to_world(index))
    rounded = np.rint(ours_index).astype(int)
    assert np.abs(ours_index - rounded).max() < 0.01, "voxel centres do not coincide"
    assert (rounded >= 0).all() and (rounded < np.array(ours.shape)).all(), "reference voxels outside our volume"
    assert np.prod(ours.shape) == np.prod(reference.shape)
    return ours.array[rounded[:, 0], rounded[:, 1], rounded[:, 2]].reshape(reference.shape)
