"""AI benchmark: does the window keep breathing while a model runs, and what does the worker cost?

Run with ``python -m tests.benchmarks.inference``. A 10 ms heartbeat timer on the GUI thread records
the gaps between its ticks, first with nothing running (the reference, same process), then while the
AI panel's worker classifies every slice of a 120-slice 512x512 CT phantom with a small CNN (the
panel's real path: preprocessing, batches, cancel checks). Printed: the largest and 99th-percentile
gap in each phase (goal: never over 50 ms while the model runs), and the worker's slices per second
against the model alone on the same batches already in memory.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MEDVIEWER_HOME", tempfile.mkdtemp(prefix="medviewer-bench-"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from medviewer.ai.preprocess import slice_batch  # noqa: E402
from medviewer.core.volume import Volume  # noqa: E402
from medviewer.demo.ct_phantom import CtGeometry, make_chest_phantom  # noqa: E402
from medviewer.ui.ai_panel import AiPanel  # noqa: E402
from tests.ai.models_for_tests import load_scripted, metadata  # noqa: E402

BEAT_MS = 10
SHAPE = [256, 256]


class SmallCnn(torch.nn.Module):
    """Four conv blocks and a linear head: about the size of the demo slice model, so the run takes seconds."""

    def __init__(self) -> None:
        super().__init__()
        blocks = []
        for cin, cout in ((1, 16), (16, 32), (32, 64), (64, 64)):
            blocks += [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        self.features = torch.nn.Sequential(*blocks)
        self.head = torch.nn.Linear(64, 2)

    @torch.jit.export
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    @torch.jit.export
    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(f.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def heartbeat_gaps(until) -> list[float]:
    """Milliseconds between 10 ms ticks on the GUI thread until ``until()`` is true."""
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(BEAT_MS)

    def beat() -> None:
        gaps.append(clock.nsecsElapsed() / 1e6)
        clock.restart()
        if until():
            loop.quit()

    timer.timeout.connect(beat)
    timer.start()
    loop.exec()
    timer.stop()
    return gaps[1:]


def describe(name: str, gaps: list[float]) -> str:
    ordered = sorted(gaps)
    p99 = ordered[int(0.99 * (len(ordered) - 1))]
    median = statistics.median(gaps)
    return f"{name:<26} ticks {len(gaps):5d}  median {median:5.1f} ms  p99 {p99:5.1f} ms  max {max(gaps):6.1f} ms"


def main() -> None:
    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(0)
    geometry = CtGeometry(shape=(120, 512, 512), pixel_mm=0.7, slice_mm=2.5)
    hu, _ = make_chest_phantom(rng, geometry, 2)
    volume = Volume(hu, (0.7, 0.7, 2.5), geometry.origin, modality="CT")
    torch.manual_seed(0)
    folder = Path(tempfile.mkdtemp(prefix="medviewer-bench-model-"))
    meta = metadata(shape=SHAPE, intensity={"window": [-1000, 400]})
    loaded = load_scripted(folder / "bundle", SmallCnn(), meta)

    panel = AiPanel()
    panel.add_model(loaded.package.source, approve=False)
    names = [panel.model_box.itemText(i) for i in range(panel.model_box.count())]
    panel.model_box.setCurrentIndex(names.index("test model 1.0"))
    panel.set_volume(volume, 60)

    idle_start = time.perf_counter()
    idle = heartbeat_gaps(lambda: time.perf_counter() - idle_start > 2.0)
    panel.run(every_slice=False)  # load the model once, outside the measurement
    heartbeat_gaps(lambda: not panel.worker.busy())
    started = time.perf_counter()
    panel.run(every_slice=True)
    busy = heartbeat_gaps(lambda: not panel.worker.busy())
    run_s = time.perf_counter() - started
    slices = volume.shape[0]

    spec = loaded.package.spec
    batches = [slice_batch(volume, list(range(i, min(i + 16, slices))), spec) for i in range(0, slices, 16)]
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - 1))
    with torch.inference_mode():
        model_start = time.perf_counter()
        for batch in batches:
            loaded.module(torch.from_numpy(batch))
        model_s = time.perf_counter() - model_start

    print(f"cores: {os.cpu_count()}, every slice of a {slices}x512x512 CT, model input {SHAPE}")
    print(describe("GUI heartbeat, idle", idle))
    print(describe("GUI heartbeat, model run", busy))
    print(f"largest gap while the model ran: {max(busy):.1f} ms (goal <= 50 ms)")
    print(f"worker (preprocessing + model): {slices / run_s:6.1f} slices/s in {run_s:.2f} s")
    print(f"model alone on ready batches:   {slices / model_s:6.1f} slices/s in {model_s:.2f} s")
    print(f"worker / model-alone throughput: {model_s / run_s:.2f}")
    panel.shutdown()
    app.processEvents()


if __name__ == "__main__":
    main()
