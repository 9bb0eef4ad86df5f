"""Catalog import benchmark: first import, unchanged re-import, and a naive full read, of 10,000 DICOM files.

Run with ``python -m tests.benchmarks.catalog_import [FILES]``. The files are pydicom's MR_small.dcm
(64x64, 9.8 kB) with new study, series and instance UIDs (100 files per series, 10 series per study),
written into a temporary folder. Goals: at least 1,500 files/s for the first import, and a re-import
of the unchanged folder in under 10 % of the first import's time. The naive reference is one full
``pydicom.dcmread`` per file in the same run, without any database.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
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


def main(count: int = 10_000) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["MEDVIEWER_HOME"] = str(root / "home")
        from medviewer.catalog.importer import Importer
        from medviewer.catalog.schema import connect

        started = time.perf_counter()
        paths = write_files(root / "data", count)
        print(f"wrote {count} files in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        for path in paths:
            pydicom.dcmread(path)
        naive = time.perf_counter() - started

        first = Importer([root / "data"]).run()
        again = Importer([root / "data"]).run()
        stored = connect().execute("SELECT count(*) FROM instances").fetchone()[0]
        assert first.added == count and again.unchanged == count and stored == count, (first, again, stored)

        print(f"cores: {os.cpu_count()}")
        print(f"naive full dcmread: {naive:.2f} s, {count / naive:.0f} files/s")
        print(f"first import:       {first.elapsed_s:.2f} s, {count / first.elapsed_s:.0f} files/s (goal >= 1500)")
        print(
            f"re-import:          {again.elapsed_s:.2f} s, {100 * again.elapsed_s / first.elapsed_s:.1f} % of the "
            "first import (goal < 10 %)"
        )
        print(f"first import time / naive full-read time: {first.elapsed_s / naive:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
