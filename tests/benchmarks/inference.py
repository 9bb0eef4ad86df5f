"""AI benchmark: does the window keep breathing while a model runs, and what does the worker cost?

Run with ``python -m tests.benchmarks.inference``. A 10 ms heartbeat timer on the GUI thread records
the gaps between its ticks, first with nothing running (the reference, same process), then while the
AI panel's worker classifies every slice of a 120-slice 512x512 CT phantom with a small CNN, while a
small 3-D CNN classifies the whole CT (resampled to 96x128x128), and while the demo patch model
(``slide-patch-tumour-demo``) runs over the tissue of a demo slide (the panel's real paths: reading,
preprocessing, batches, cancel checks). Printed: the largest and 99th-percentile gap in each phase
(goal: never over 50 ms while a model runs); the worker's slices per second against the model alone on
the same batches already in memory; and a slide run's patches per second (``run_slide``: a producer
thread reading and preprocessing while the model computes) against the model alone on the same patches
already in memory (goal: at least 0.85), measured in alternation ``ROUNDS`` times on the same torch
threads the worker uses, median ratio reported.
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

from medviewer.ai.available import builtin_bundles  # noqa: E402
from medviewer.ai.inference import set_torch_threads  # noqa: E402
from medviewer.ai.package import LoadedModel, load_module, read_package  # noqa: E402
from medviewer.ai.preprocess import slice_batch  # noqa: E402
from medviewer.ai.slide_run import PatchGrid, model_input, patch_grid, patch_pixels, run_slide  # noqa: E402
from medviewer.core.volume import Volume  # noqa: E402
from medviewer.demo.ct_phantom import CtGeometry, make_chest_phantom  # noqa: E402
from medviewer.demo.generate import DEMO_SLIDE  # noqa: E402
from medviewer.demo.slide_phantom import write_demo_slide  # noqa: E402
from medviewer.io import open_slide  # noqa: E402
from medviewer.io.slide import Slide  # noqa: E402
from medviewer.ui.ai_panel import AiPanel  # noqa: E402
from tests.support.models_for_tests import load_scripted, metadata  # noqa: E402

BEAT_MS = 10
SHAPE = [256, 256]
PATCH_MODEL = "slide-patch-tumour-demo"
SLIDE_BATCH = 32  # run_slide's default, as the panel runs it
ROUNDS = 3
PANEL_SLIDE_RUNS = 5
VOLUME_SHAPE = [96, 128, 128]
VOLUME_RUNS = 8


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


def volume_phase(panel: AiPanel) -> list[float]:
    """Every slice of a CT phantom through the panel's worker: heartbeat gaps, and throughput figures."""
    rng = np.random.default_rng(0)
    geometry = CtGeometry(shape=(120, 512, 512), pixel_mm=0.7, slice_mm=2.5)
    hu, _ = make_chest_phantom(rng, geometry, 2)
    volume = Volume(hu, (0.7, 0.7, 2.5), geometry.origin, modality="CT")
    torch.manual_seed(0)
    folder = Path(tempfile.mkdtemp(prefix="medviewer-bench-model-"))
    meta = metadata(shape=SHAPE, intensity={"window": [-1000, 400]})
    loaded = load_scripted(folder / "bundle", SmallCnn(), meta)
    panel.add_model(loaded.package.source, approve=False)
    _choose(panel, "test model 1.0")
    panel.set_volume(volume, 60)
    panel.run(every_slice=False)  # load the model once, outside the measurement
    heartbeat_gaps(lambda: not panel.model_busy())
    started = time.perf_counter()
    panel.run(every_slice=True)
    busy = heartbeat_gaps(lambda: not panel.model_busy())
    run_s = time.perf_counter() - started
    slices = volume.shape[0]

    spec = loaded.package.spec
    batches = [slice_batch(volume, list(range(i, min(i + 16, slices))), spec) for i in range(0, slices, 16)]
    set_torch_threads()
    with torch.inference_mode():
        model_start = time.perf_counter()
        for batch in batches:
            loaded.module(torch.from_numpy(batch))
        model_s = time.perf_counter() - model_start
    print(f"every slice of a {slices}x512x512 CT, model input {SHAPE}")
    print(describe("GUI heartbeat, volume run", busy))
    print(f"  worker (preprocessing + model): {slices / run_s:6.1f} slices/s in {run_s:.2f} s")
    print(f"  model alone on ready batches:   {slices / model_s:6.1f} slices/s in {model_s:.2f} s")
    print(f"  worker / model-alone throughput: {model_s / run_s:.2f}")
    volume_model_busy = volume_model_phase(panel, volume)
    panel.set_volume(None)
    return busy + volume_model_busy


class SmallCnn3d(torch.nn.Module):
    """Three 3-D conv blocks and a linear head: a volume classifier whose run on a resampled CT takes a while."""

    def __init__(self) -> None:
        super().__init__()
        blocks = []
        for cin, cout in ((1, 8), (8, 16), (16, 32)):
            blocks += [torch.nn.Conv3d(cin, cout, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool3d(2)]
        self.features = torch.nn.Sequential(*blocks)
        self.head = torch.nn.Linear(32, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3, 4)))


def volume_model_phase(panel: AiPanel, volume: Volume) -> list[float]:
    """A volume model (3-D input of VOLUME_SHAPE) on the whole CT, VOLUME_RUNS runs queued: heartbeat gaps."""
    folder = Path(tempfile.mkdtemp(prefix="medviewer-bench-model3d-"))
    meta = metadata(target="volume", shape=VOLUME_SHAPE, intensity={"window": [-1000, 400]}, explain=False)
    meta["name"] = "test volume model"
    loaded = load_scripted(folder / "bundle", SmallCnn3d(), meta)
    panel.add_model(loaded.package.source, approve=False)
    _choose(panel, "test volume model 1.0")
    panel.run_volume()  # load the model once, outside the measurement
    heartbeat_gaps(lambda: not panel.model_busy())
    started = time.perf_counter()
    for _ in range(VOLUME_RUNS):
        panel.run_volume()
    busy = heartbeat_gaps(lambda: not panel.model_busy())
    each = (time.perf_counter() - started) / VOLUME_RUNS
    print(f"a volume model on the whole CT, input {VOLUME_SHAPE}, {VOLUME_RUNS} runs queued, {each:.2f} s each")
    print(describe("GUI heartbeat, 3-D run", busy))
    return busy


def slide_phase(panel: AiPanel) -> list[float]:
    """The demo patch model over a demo slide's tissue: heartbeat gaps through the panel, then run_slide's
    patch throughput against the model alone on the same patches in memory."""
    folder = Path(tempfile.mkdtemp(prefix="medviewer-bench-slide-"))
    write_demo_slide(folder / "slide.tiff", 0, DEMO_SLIDE)
    bundle = next(path for path in builtin_bundles() if read_package(path).name == PATCH_MODEL)
    package = read_package(bundle)
    slide = open_slide(folder / "slide.tiff")
    _choose(panel, f"{PATCH_MODEL} {package.version}")
    panel.set_slide(slide, lambda: None)
    panel.run_slide()  # load the model, outside the measurement
    heartbeat_gaps(lambda: not panel.model_busy())
    started = time.perf_counter()
    for _ in range(PANEL_SLIDE_RUNS):  # queued one after another: a run of a few seconds to watch
        panel.run_slide()
    busy = heartbeat_gaps(lambda: not panel.model_busy())
    panel_s = (time.perf_counter() - started) / PANEL_SLIDE_RUNS

    set_torch_threads()  # what the worker sets, for both measurements below
    loaded = load_module(package)
    grid = patch_grid(slide, package.spec)
    batches = _patches_in_memory(slide, grid, package.spec)
    patches = sum(len(batch) for batch in batches)
    ratios = []
    for _ in range(ROUNDS):
        model_s = _model_alone(loaded, batches)
        started = time.perf_counter()
        run_slide(loaded, slide, grid, batch_size=SLIDE_BATCH)
        run_s = time.perf_counter() - started
        ratios.append(model_s / run_s)
        print(
            f"  round: run_slide {patches / run_s:7.1f} patches/s ({run_s:.2f} s), "
            f"model alone {patches / model_s:7.1f} patches/s ({model_s:.2f} s), ratio {model_s / run_s:.2f}"
        )
    print(f"{PATCH_MODEL} over the tissue of a {DEMO_SLIDE.width}x{DEMO_SLIDE.height} demo slide: {patches} patches")
    print(describe("GUI heartbeat, slide run", busy))
    print(f"  panel job (tissue mask, reading, model): {panel_s:.2f} s each, {PANEL_SLIDE_RUNS} queued")
    print(f"  slide run / model-alone patch throughput: median {statistics.median(ratios):.2f} (goal >= 0.85)")
    slide.close()
    return busy


def _patches_in_memory(slide: Slide, grid: PatchGrid, spec: object) -> list[np.ndarray]:
    """The run's tissue patches, read and preprocessed into the batches run_slide makes."""
    cells = grid.tissue_cells()
    batches = []
    for first in range(0, len(cells), SLIDE_BATCH):
        pixels = np.stack([patch_pixels(slide, grid, r, c) for r, c in cells[first : first + SLIDE_BATCH]])
        batches.append(model_input(pixels, spec))
    return batches


def _model_alone(loaded: LoadedModel, batches: list[np.ndarray]) -> float:
    with torch.inference_mode():
        started = time.perf_counter()
        for batch in batches:
            torch.softmax(loaded.module(torch.from_numpy(batch)), dim=1).numpy()
        return time.perf_counter() - started


def _choose(panel: AiPanel, name: str) -> None:
    names = [panel.model_box.itemText(i) for i in range(panel.model_box.count())]
    panel.model_box.setCurrentIndex(names.index(name))


def main() -> None:
    app = QApplication.instance() or QApplication([])
    panel = AiPanel()
    idle_start = time.perf_counter()
    idle = heartbeat_gaps(lambda: time.perf_counter() - idle_start > 2.0)
    print(f"cores: {os.cpu_count()}")
    print(describe("GUI heartbeat, idle", idle))
    volume_busy = volume_phase(panel)
    slide_busy = slide_phase(panel)
    print(
        f"largest GUI gap while a model ran: volume (slices and 3-D) {max(volume_busy):.1f} ms, "
        f"slide {max(slide_busy):.1f} ms "
        "(goal <= 50 ms)"
    )
    panel.shutdown()
    app.processEvents()


if __name__ == "__main__":
    main()
