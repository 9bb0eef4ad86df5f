"""Where the tests find the repository and their real files: the project's tests/data, and the test files
pydicom and nibabel ship. Each lookup fails loudly when a file is missing, so a broken install reads as such
instead of as a reader bug."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import pydicom.data

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"

#: dcm2niix's reference conversion of the XA30 T1w series (``xa30i_dir``), as a file of tests/data.
XA30I_REF = "dcm_qa_xa30i/Ref/5001_anat-T1w_acq-tfl.nii.gz"


def real_file(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        raise FileNotFoundError(f"test data {path} is missing; see tests/data/README.md")
    return path


def pydicom_file(name: str) -> Path:
    """A file from pydicom's bundled test data; fails loudly if this pydicom does not ship it."""
    found = pydicom.data.get_testdata_file(name)
    if found is None:
        raise FileNotFoundError(f"pydicom's test file {name} is missing")
    return Path(found)


def nibabel_file(name: str) -> Path:
    """A file from nibabel's bundled test data; fails loudly if this nibabel does not ship it."""
    path = Path(nib.__file__).parent / "tests" / "data" / name
    if not path.exists():
        raise FileNotFoundError(f"nibabel's test file {path} is missing")
    return path


def gunzip_folder(source: Path, target: Path, count: int) -> Path:
    """The ``count`` .dcm.gz files of ``source`` unpacked into ``target`` (tests/data keeps series gzipped)."""
    files = sorted(source.glob("*.dcm.gz"))
    if len(files) != count:
        raise FileNotFoundError(f"{source} holds {len(files)} .dcm.gz files, expected {count}")
    target.mkdir(parents=True)
    for path in files:
        with gzip.open(path) as packed, open(target / path.name.removesuffix(".gz"), "wb") as unpacked:
            shutil.copyfileobj(packed, unpacked)
    return target
