"""Slide browser benchmark: redraw from cache, jumps to uncached places, tile path overhead, memory.

Run with ``python -m tests.benchmarks.slide_view [JUMPS]``. On the real CMU-1-Small-Region.svs and on a
generated ~50000x40000 pyramid (written once into a temporary folder; its time is printed), with the
view 1920x1080 screen pixels:

- redraw from cache: median ms to pan a little within decoded tiles and render the view;
- jump: 95th percentile ms from moving to a random uncached place until every visible tile is drawn
  (the cache is emptied before each jump), against the 250 ms bar clinical studies set;
- tile path: seconds for our ``Slide.read_region`` over the view's tiles against plain OpenSlide
  ``read_region`` of the same tiles in the same run (goal: at most 10 % more);
- memory: peak resident memory while panning 500 steps, in a child process, over its baseline after
  opening, against the cache limit (goal: limit plus at most 300 MB).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import openslide  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from medviewer.demo.slide_phantom import write_pyramid_slide  # noqa: E402
from medviewer.io import open_slide  # noqa: E402
from medviewer.ui.slide_view import SlideView  # noqa: E402
from medviewer.ui.tile_loader import DEFAULT_CACHE_MB  # noqa: E402
from tests.support.memory import peak_resident_mib, resident_mib  # noqa: E402

VIEW = (1920, 1080)
REAL_SLIDE = Path(__file__).resolve().parents[1] / "data" / "wsi" / "CMU-1-Small-Region.svs"
GENERATED = (50_000, 40_000)
PAN_STEPS = 500


def settle(app: QApplication, view: SlideView, timeout_s: float = 30.0) -> None:
    view.refresh()
    deadline = time.perf_counter() + timeout_s
    while not view.is_refined() and time.perf_counter() < deadline:
        app.processEvents()
        time.sleep(0.0005)
    view.graphics.viewport().grab()


def make_view(app: QApplication, path: Path) -> SlideView:
    view = SlideView()
    view.graphics.setFixedSize(*VIEW)
    view.show()
    slide = open_slide(path)
    view.set_slide(slide, slide.thumbnail(1024))
    app.processEvents()
    return view


def forget_tiles(view: SlideView) -> None:
    view.loader.set_slide(view.slide)
    for item in view.tile_items.values():
        view.box.removeItem(item)
    view.tile_items.clear()


def measure_view(app: QApplication, path: Path, jumps: int) -> None:
    view = make_view(app, path)
    magnification = 20.0 if view.slide.mpp else None
    width, height = view.slide.dimensions
    rng = np.random.default_rng(0)
    if magnification:
        view.set_magnification(magnification)
    view.centre_on(width / 2, height / 2)
    settle(app, view)
    redraws = []
    for i in range(40):
        view.box.translateBy(x=(1 if i % 2 else -1) * 8 * view.level0_per_screen_pixel())
        start = time.perf_counter()
        settle(app, view)
        redraws.append((time.perf_counter() - start) * 1000)
    jump_times = []
    for _ in range(jumps):
        forget_tiles(view)
        x, y = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
        start = time.perf_counter()
        view.centre_on(x, y)
        settle(app, view)
        jump_times.append((time.perf_counter() - start) * 1000)
    level = view.target_level
    print(
        f"  view at level {level} ({view.level0_per_screen_pixel():.2f} level-0 px per screen px), "
        f"{len(view.visible_tiles)} tiles visible"
    )
    print(f"  redraw from cache: median {statistics.median(redraws):.1f} ms")
    p95 = float(np.percentile(jump_times, 95))
    print(
        f"  jump to an uncached place until fully refined: median {statistics.median(jump_times):.0f} ms, "
        f"95th percentile {p95:.0f} ms (bar: 250 ms)"
    )
    keys = list(view.visible_tiles)
    view.shutdown()
    tile_path_overhead(path, view.pyramid, keys)


def tile_path_overhead(path: Path, pyramid: object, keys: list) -> None:
    slide, plain = open_slide(path), openslide.OpenSlide(str(path))
    ours_s, theirs_s = [], []
    for _ in range(5):
        start = time.perf_counter()
        for key in keys:
            location, size = pyramid.tile_region(key)
            slide.read_region(location, key[0], size)
        ours_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for key in keys:
            location, size = pyramid.tile_region(key)
            np.asarray(plain.read_region(location, key[0], size))
        theirs_s.append(time.perf_counter() - start)
    ours, theirs = statistics.median(ours_s), statistics.median(theirs_s)
    print(
        f"  tile path: ours {ours * 1000:.0f} ms, plain OpenSlide {theirs * 1000:.0f} ms for {len(keys)} tiles "
        f"(overhead {100 * (ours / theirs - 1):+.1f} %; goal at most +10 %)"
    )
    slide.close()
    plain.close()


def pan_child(path: Path) -> None:
    """Child process: open, then pan 500 steps at 20x, printing peak memory over the opened baseline."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    view = make_view(app, path)
    view.set_magnification(20.0)
    width, height = view.slide.dimensions
    view.centre_on(width * 0.1, height * 0.5)
    settle(app, view)
    baseline = resident_mib()
    step = view.view_rect().width() * 0.25
    for i in range(PAN_STEPS):
        row_end = (i // 100) % 2
        view.box.translateBy(x=-step if row_end else step, y=0 if i % 100 else view.view_rect().height() * 0.3)
        settle(app, view, timeout_s=5.0)
    peak = peak_resident_mib()
    cache_mb = view.loader.cache.limit_bytes / 2**20
    print(
        f"  panning {PAN_STEPS} steps: peak {peak - baseline:.0f} MB over the {baseline:.0f} MB after opening "
        f"(cache limit {cache_mb:.0f} MB; goal at most limit + 300 MB); "
        f"cache holds {view.loader.cache.bytes / 2**20:.0f} MB"
    )
    view.shutdown()


def main(jumps: int) -> None:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as folder:
        generated = Path(folder) / "generated.tiff"
        start = time.perf_counter()
        write_pyramid_slide(generated, *GENERATED, seed=0)
        print(
            f"generated {GENERATED[0]}x{GENERATED[1]} pyramid in {time.perf_counter() - start:.0f} s "
            f"({generated.stat().st_size / 2**20:.0f} MB)"
        )
        for path in (REAL_SLIDE, generated):
            with openslide.OpenSlide(str(path)) as info:
                print(
                    f"{path.name}: {info.dimensions[0]}x{info.dimensions[1]}, {info.level_count} level(s); "
                    f"view {VIEW[0]}x{VIEW[1]}; default cache {DEFAULT_CACHE_MB} MB"
                )
            measure_view(app, path, jumps)
        print(f"{generated.name}, memory:")
        subprocess.run([sys.executable, "-m", "tests.benchmarks.slide_view", "--pan", str(generated)], check=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--pan":
        pan_child(Path(sys.argv[2]))
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
