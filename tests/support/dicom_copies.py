"""Many distinct small DICOM files, made fast: pydicom's MR_small.dcm with new UIDs substituted in its bytes.

The catalog tests and the catalog import benchmark need folders of real, distinct files in numbers (up to
10,000) that pydicom's writer would take too long to produce one dataset at a time."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

#: Placeholder UIDs of equal length, so each file is the template's bytes with three substitutions.
_PLACEHOLDERS = {
    "StudyInstanceUID": "2.25.1" + "1" * 38,
    "SeriesInstanceUID": "2.25.2" + "2" * 38,
    "SOPInstanceUID": "2.25.3" + "3" * 38,
}


def _uid(kind: str, number: int) -> bytes:
    return f"2.25.{kind}{number:038d}".encode()


def write_files(folder: Path, count: int, first: int = 0) -> list[Path]:
    """``count`` distinct DICOM files in series folders of 100, numbered from ``first`` (which sets the UIDs)."""
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    for keyword, placeholder in _PLACEHOLDERS.items():
        setattr(ds, keyword, placeholder)
    ds.file_meta.MediaStorageSOPInstanceUID = _PLACEHOLDERS["SOPInstanceUID"]
    folder.mkdir(parents=True, exist_ok=True)
    template_path = folder / "template.dcm"
    ds.save_as(template_path, enforce_file_format=True)
    template = template_path.read_bytes()
    template_path.unlink()
    paths = []
    for i in range(first, first + count):
        series, study = i // 100, i // 1000
        data = (
            template.replace(_PLACEHOLDERS["StudyInstanceUID"].encode(), _uid("1", study))
            .replace(_PLACEHOLDERS["SeriesInstanceUID"].encode(), _uid("2", series))
            .replace(_PLACEHOLDERS["SOPInstanceUID"].encode(), _uid("3", i))
        )
        path = folder / f"study{study:03d}" / f"series{series:04d}" / f"IM{i:05d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths
