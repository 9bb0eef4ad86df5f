"""The DICOM zoo as a table: every public test file, the kind it is shown as or why it is refused, and
whether its displayed values equal pydicom's; then the totals, and the time to open everything shown
against pydicom's own read and decode of the same files, measured in the same run.

    python -m tests.benchmarks.dicom_zoo [--all]

Without ``--all`` only files that are refused or not compared are listed row by row.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

from medviewer.io import open_volume
from tests.support.dicom_zoo import ZooRow, pydicom_dataset, sweep_file, totals, zoo_files


def _pydicom_decode_seconds(rows: list[ZooRow], scratch: Path) -> float:
    """pydicom's read and pixel_array of every file whose pixels were compared (the reference for the ratio)."""
    started = time.perf_counter()
    for row in rows:
        path = row.path if row.path.suffix != ".gz" else scratch / row.path.name.removesuffix(".gz")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _ = pydicom_dataset(path).pixel_array
    return time.perf_counter() - started


def main(show_all: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        files = zoo_files()
        started = time.perf_counter()
        rows = [sweep_file(path, scratch) for path in files]
        ours = time.perf_counter() - started
        shown = [row for row in rows if row.outcome == "shown"]
        compared = [row for row in shown if row.pixels == "equal"]
        started = time.perf_counter()
        for row in compared:
            open_volume(row.path if row.path.suffix != ".gz" else scratch / row.path.name.removesuffix(".gz"))
        ours_compared = time.perf_counter() - started
        reference = _pydicom_decode_seconds(compared, scratch)
    print(f"{'file':52} {'kind':18} {'outcome':9} {'pixels':7} reason / reference")
    for row in rows:
        if show_all or row.outcome != "shown" or row.pixels != "equal":
            print(f"{row.name[:52]:52} {row.kind:18} {row.outcome:9} {row.pixels or '-':7} {row.reason[:100]}")
    print()
    for key, value in totals(rows).items():
        print(f"{key:28} {value}")
    kinds = Counter(row.kind for row in shown)
    print("shown by kind               " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())))
    print(f"time: every file through medviewer's open and the comparison {ours:.2f} s")
    print(
        f"the {len(compared)} compared files: medviewer's open_volume {ours_compared:.2f} s, pydicom's read and "
        f"pixel_array {reference:.2f} s, ratio {ours_compared / reference:.2f}"
    )


if __name__ == "__main__":
    main("--all" in sys.argv[1:])
