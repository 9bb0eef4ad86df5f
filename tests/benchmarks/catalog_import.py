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

from tests.support.dicom_copies import write_files


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
