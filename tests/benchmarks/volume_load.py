"""Volume loading benchmark: a 300-slice 512x512 CT series, medviewer against SimpleITK, time and memory.

Run with ``python -m tests.benchmarks.volume_load [RUNS]``. The series is written once into a temporary
folder by the demo generator (uncompressed, int16 with RescaleIntercept -1024). Every load runs in a
fresh child process, alternating between the readers after one warm-up read of each, so both find
the files in the page cache and neither inherits the other's memory. SimpleITK's ImageSeriesReader is
given the file list ready-made; medviewer is given the folder and finds, orders and checks the files
itself. Memory is the child's peak resident size (VmHWM, see ``memory``) after the load minus the
same child's resident size once its imports are done (its baseline), as a multiple of the volume's
own bytes: the design budget is under 1.5, and medviewer's time must not exceed SimpleITK's (ratio
<= 1). The baseline is the current resident size, not the peak so far, because imports allocate and
free memory that a load may then reuse without raising the peak.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.memory import peak_resident_mib, resident_mib

SHAPE = (300, 512, 512)


def _child(reader: str, folder: str) -> None:
    """Load once in this process and print seconds, peak memory over the baseline, and volume bytes."""
    import numpy as np  # noqa: F401  (imported in both modes so the baseline is the same)
    import SimpleITK as sitk

    from medviewer.io import open_volume

    files = sorted(str(p) for p in Path(folder).glob("*.dcm"))
    baseline_mib = resident_mib()
    start = time.perf_counter()
    if reader == "medviewer":
        volume = open_volume(folder)
        array = volume.array
    else:
        series_reader = sitk.ImageSeriesReader()
        series_reader.SetFileNames(files)
        image = series_reader.Execute()
        array = sitk.GetArrayViewFromImage(image)
    seconds = time.perf_counter() - start
    peak_mib = peak_resident_mib()
    assert array.shape == SHAPE, array.shape
    result = {
        "seconds": seconds,
        "extra_bytes": (peak_mib - baseline_mib) * 2**20,
        "volume_bytes": array.nbytes,
        "dtype": str(array.dtype),
    }
    print(json.dumps(result))


def _run_child(reader: str, folder: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.volume_load", "--child", reader, str(folder)],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_series(folder: Path) -> None:
    from medviewer.demo.ct_phantom import CtGeometry
    from medviewer.demo.generate import generate_ct_study

    generate_ct_study(
        folder, seed=7, index=1, geometry=CtGeometry(shape=SHAPE, pixel_mm=0.7, slice_mm=1.0), lesion_count=3
    )


def measure(folder: Path, runs: int) -> dict[str, list[dict[str, float]]]:
    for reader in ("medviewer", "sitk"):  # warm-up: page cache, and bytecode compiled
        _run_child(reader, folder)
    samples: dict[str, list[dict[str, float]]] = {"medviewer": [], "sitk": []}
    for _ in range(runs):
        for reader in samples:
            samples[reader].append(_run_child(reader, folder))
    return samples


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3])
        return
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ct300"
        started = time.perf_counter()
        write_series(folder)
        print(f"wrote {SHAPE[0]} slices of {SHAPE[1]}x{SHAPE[2]} in {time.perf_counter() - started:.1f} s")
        samples = measure(folder, runs)
    median = {
        reader: {key: statistics.median(s[key] for s in items) for key in ("seconds", "extra_bytes")}
        for reader, items in samples.items()
    }
    volume_bytes = samples["medviewer"][0]["volume_bytes"]
    print(
        f"volume: {SHAPE[0]}x{SHAPE[1]}x{SHAPE[2]} {samples['medviewer'][0]['dtype']}, {volume_bytes / 2**20:.0f} MiB"
    )
    for reader, label in (("medviewer", "medviewer"), ("sitk", "SimpleITK")):
        times = ", ".join(f"{s['seconds']:.3f}" for s in samples[reader])
        print(
            f"{label:<10} median {median[reader]['seconds']:.3f} s (runs: {times}); peak memory over baseline "
            f"{median[reader]['extra_bytes'] / volume_bytes:.2f}x the volume"
        )
    print(f"ratio medviewer / SimpleITK: {median['medviewer']['seconds'] / median['sitk']['seconds']:.2f}")


if __name__ == "__main__":
    main()
