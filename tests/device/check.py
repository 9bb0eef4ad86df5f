"""medviewer's CUDA path, measured: run by hand on a GPU machine, never by pytest (this file is not test_*).

    python tests/device/check.py [--demo-data DIR] [--json FILE]

``bash .device-kit/run.sh`` runs it there with the wheels the GPU image lacks (see the device-check README).
It makes its own demo data (``medviewer.demo.generate``) in a temporary folder unless ``--demo-data`` names
one, and prints, for both demo models (``ct-slice-lesion-demo``, ``slide-patch-tumour-demo``) in both weights
formats (TorchScript and torch.export):

- probabilities on CUDA against the CPU: the largest difference;
- float16 (CUDA autocast) against float32: the largest difference, and on how many items the top class is the same;
- Grad-CAM, occlusion and integrated gradients on CUDA against the CPU: correlation and largest difference;
- a real CUDA out-of-memory, made by capping this process with ``torch.cuda.set_per_process_memory_fraction``
  just below what a large batch needs: slice runs, slide runs and saliency halve their batch, and with no room
  for even one input they move to the CPU; each prints its device, batch and notes, and its result against the
  CPU's;
- throughput: slices/s and patches/s on the CPU and on CUDA.

Reference figures (H200, 16 cores) are in the device-check README. Without CUDA it says so, runs the CPU parts
(which smoke-tests this script on any machine) and exits 0. A section that raises prints its traceback, the
others still run, and the exit status is 1. ``--json`` (default ``$OUT/device_check.json`` when ``OUT`` is set)
keeps every figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
MIB = 2**20
FORMATS = ("torchscript", "export")
SALIENCY = ("gradcam", "occlusion", "ig")
T = TypeVar("T")


class Report:
    """Figures by section; a section that raises is recorded with its traceback and the check goes on."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}
        self.failed: list[str] = []

    @contextmanager
    def section(self, name: str) -> Iterator[dict[str, Any]]:
        print(f"\n== {name}", flush=True)
        figures: dict[str, Any] = {}
        self.figures[name] = figures
        started = time.perf_counter()
        try:
            yield figures
        except Exception:
            self.failed.append(name)
            figures["error"] = traceback.format_exc()
            print(f"  FAILED:\n{figures['error']}", flush=True)
        figures["seconds"] = round(time.perf_counter() - started, 2)


def say(figures: dict[str, Any], key: str, value: Any, words: str) -> None:
    figures[key] = value
    print(f"  {words}", flush=True)


@dataclass
class Data:
    folder: Path
    ct: Any  # ModelPackage of ct-slice-lesion-demo
    patch: Any  # ModelPackage of slide-patch-tumour-demo
    volume: Any
    slide: Any
    grid: Any  # the patch model's PatchGrid over the whole slide
    slices: list[int]


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(work: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[float, T]:
    """Seconds ``work(*args, **kwargs)`` took, with CUDA's queue drained before and after, and its result."""
    sync()
    started = time.perf_counter()
    result = work(*args, **kwargs)
    sync()
    return time.perf_counter() - started, result


def largest_difference(a: np.ndarray, b: np.ndarray) -> float:
    both = ~(np.isnan(a) | np.isnan(b))
    return float(np.abs(a[both] - b[both]).max())


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return 1.0 if np.array_equal(a, b) else math.nan
    return float(np.corrcoef(a, b)[0, 1])


def same_top(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """On how many items (rows of (N, K), or non-NaN cells of (R, C, K)) the top class is the same, of how many."""
    a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    checked = ~np.isnan(a[:, 0])
    return int((a[checked].argmax(1) == b[checked].argmax(1)).sum()), int(checked.sum())


def prepare(folder: Path | None) -> Data:
    from medviewer.ai.available import builtin_bundles
    from medviewer.ai.package import read_package
    from medviewer.ai.slide_run import patch_grid
    from medviewer.demo.generate import generate_demo_data
    from medviewer.io import open_slide, open_volume

    if folder is None or not (folder / "ground_truth.json").is_file():
        folder = folder or Path(tempfile.mkdtemp(prefix="medviewer-device-check-"))
        seconds, _ = timed(generate_demo_data, folder, seed=0)
        print(f"  demo data written to {folder} in {seconds:.1f} s", flush=True)
    bundles = {bundle.parent.name: bundle for bundle in builtin_bundles()}
    ct, patch = read_package(bundles["ct_slice_lesion"]), read_package(bundles["slide_patch_tumour"])
    volume, slide = open_volume(folder / "ct"), open_slide(folder / "slide.tiff")
    return Data(folder, ct, patch, volume, slide, patch_grid(slide, patch.spec), list(range(volume.shape[0])))


def environment(report: Report, gpu: str | None) -> None:
    from medviewer.ai.inference import model_threads

    with report.section("environment") as f:
        say(f, "torch", torch.__version__, f"torch {torch.__version__}, Python {sys.version.split()[0]}")
        say(f, "cpus", os.cpu_count(), f"{os.cpu_count()} CPU cores; models run on {model_threads()} threads")
        if gpu != "cuda":
            say(f, "cuda", None, "CUDA is not available here: only the CPU parts run (a smoke test of this script)")
            if gpu is not None:
                say(f, "as_gpu", gpu, f"the GPU halves run on {gpu}, to smoke-test them")
            return
        properties = torch.cuda.get_device_properties(0)
        say(f, "gpu", properties.name, f"{properties.name}, {properties.total_memory / 2**30:.1f} GiB")
        say(f, "cuda", torch.version.cuda, f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")


def slice_model(report: Report, data: Data, gpu: str | None) -> None:
    """CT model, each format: probabilities CUDA against CPU, float16 against float32, slices/s."""
    from medviewer.ai.inference import run_slices
    from medviewer.ai.package import load_module

    slices = data.slices
    timing = slices * (4 if gpu else 1)  # a longer run for CUDA's timing
    for weights in FORMATS:
        with report.section(f"ct-slice-lesion-demo ({weights}): {len(slices)} slices") as f:
            results = {}
            for device in ["cpu", *([gpu] if gpu else [])]:
                loaded = load_module(data.ct, prefer=weights, device=device)
                for _ in range(2):  # warm-up: TorchScript optimises after its first calls, CUDA loads kernels
                    run_slices(loaded, data.volume, slices[:8], batch_size=8)
                results[device] = run_slices(loaded, data.volume, slices, batch_size=64)
                seconds, _ = timed(run_slices, loaded, data.volume, timing, batch_size=64)
                rate = round(len(timing) / seconds, 1)
                say(f, f"{device}_slices_per_s", rate, f"{device}: {rate} slices/s (batch 64, {len(timing)} slices)")
            if gpu is None:
                continue
            cpu, cuda = results["cpu"].probabilities, results[gpu].probabilities
            diff = largest_difference(cpu, cuda)
            say(f, "cuda_vs_cpu", diff, f"CUDA against CPU: largest difference {diff:.2e} (reference 4.3e-4)")
            loaded = load_module(data.ct, prefer=weights, device=gpu)
            half = run_slices(loaded, data.volume, slices, batch_size=64, precision="float16")
            seconds, _ = timed(run_slices, loaded, data.volume, timing, batch_size=64, precision="float16")
            same, count = same_top(half.probabilities, cuda)
            diff = largest_difference(half.probabilities, cuda)
            f.update(float16_precision=half.info.precision, float16_notes=list(half.info.notes))
            say(
                f,
                "float16_vs_float32",
                diff,
                f"float16 ({half.info.precision}, notes {list(half.info.notes)}) "
                f"against float32: largest difference {diff:.2e} (reference 1.8e-3)",
            )
            say(f, "float16_same_top", [same, count], f"float16 top class the same on {same} of {count} slices")
            rate = round(len(timing) / seconds, 1)
            say(f, "float16_slices_per_s", rate, f"{gpu} float16: {rate} slices/s")


def patch_model(report: Report, data: Data, gpu: str | None) -> None:
    """Slide patch model, each format: a whole-slide run CUDA against CPU, float16, patches/s."""
    from medviewer.ai.inference import usable_cores
    from medviewer.ai.package import load_module
    from medviewer.ai.slide_run import patch_grid, run_slide

    cells = len(data.grid.tissue_cells())
    workers = max(1, min(8, usable_cores() - 1))
    warm_grid = patch_grid(data.slide, data.patch.spec, region=(0, 0, 4096, 4096), min_tissue=0.0)
    for weights in FORMATS:
        with report.section(
            f"slide-patch-tumour-demo ({weights}): {cells} tissue patches, {workers} reader thread(s)"
        ) as f:
            results = {}
            for device in ["cpu", *([gpu] if gpu else [])]:
                loaded = load_module(data.patch, prefer=weights, device=device)
                run_slide(loaded, data.slide, warm_grid, batch_size=64)
                seconds, result = timed(run_slide, loaded, data.slide, data.grid, batch_size=64, workers=workers)
                results[device] = result
                rate = round(cells / seconds, 1)
                say(f, f"{device}_patches_per_s", rate, f"{device}: {rate} patches/s (batch 64, reading included)")
            if gpu is None:
                continue
            cpu, cuda = results["cpu"].probabilities, results[gpu].probabilities
            diff = largest_difference(cpu, cuda)
            say(f, "cuda_vs_cpu", diff, f"CUDA against CPU: largest difference {diff:.2e}")
            loaded = load_module(data.patch, prefer=weights, device=gpu)
            seconds, half = timed(
                run_slide, loaded, data.slide, data.grid, batch_size=64, workers=workers, precision="float16"
            )
            same, count = same_top(half.probabilities, cuda)
            diff = largest_difference(half.probabilities, cuda)
            f.update(float16_precision=half.info.precision, float16_notes=list(half.info.notes))
            say(
                f,
                "float16_vs_float32",
                diff,
                f"float16 ({half.info.precision}, notes {list(half.info.notes)}) "
                f"against float32: largest difference {diff:.2e}",
            )
            say(f, "float16_same_top", [same, count], f"float16 top class the same on {same} of {count} patches")
            rate = round(cells / seconds, 1)
            say(f, "float16_patches_per_s", rate, f"{gpu} float16: {rate} patches/s")


def explained_inputs(data: Data) -> dict[str, tuple[Any, np.ndarray, int]]:
    """Per model: its package, the input saliency explains (the CT slice, the slide patch most probable for
    the model's last class, found by a CPU run) and that class."""
    from medviewer.ai.inference import run_slices
    from medviewer.ai.package import load_module
    from medviewer.ai.preprocess import slice_batch
    from medviewer.ai.slide_run import patch_input, run_slide

    ct_class, patch_class = len(data.ct.spec.classes) - 1, len(data.patch.spec.classes) - 1
    ct_run = run_slices(load_module(data.ct), data.volume, data.slices, batch_size=64)
    k = int(np.argmax(ct_run.probabilities[:, ct_class]))
    heatmap = run_slide(load_module(data.patch), data.slide, data.grid, batch_size=64).heatmap(patch_class)
    row, column = np.unravel_index(int(np.nanargmax(heatmap)), heatmap.shape)
    return {
        "ct-slice-lesion-demo": (data.ct, slice_batch(data.volume, [k], data.ct.spec), ct_class),
        "slide-patch-tumour-demo": (
            data.patch,
            patch_input(data.slide, data.grid, int(row), int(column), data.patch.spec),
            patch_class,
        ),
    }


def saliency(report: Report, data: Data, gpu: str | None) -> None:
    """Grad-CAM, occlusion and integrated gradients (TorchScript) on CUDA against the CPU."""
    from medviewer.ai.package import load_module
    from medviewer.ai.saliency import METHODS

    for name, (package, x, class_index) in explained_inputs(data).items():
        with report.section(f"{name}: saliency of {package.spec.classes[class_index]}, CUDA against CPU") as f:
            for method in SALIENCY:
                maps = {}
                for device in ["cpu", *([gpu] if gpu else [])]:
                    loaded = load_module(package, device=device)
                    METHODS[method](loaded, x, class_index)  # warm-up
                    seconds, maps[device] = timed(METHODS[method], loaded, x, class_index)
                    f[f"{method}_{device}_s"] = round(seconds, 3)
                times = ", ".join(f"{device} {f[f'{method}_{device}_s']} s" for device in maps)
                if gpu is None:
                    say(f, f"{method}_peak", float(maps["cpu"].max()), f"{method}: {times}")
                    continue
                r, diff = correlation(maps["cpu"], maps[gpu]), largest_difference(maps["cpu"], maps[gpu])
                f[f"{method}_largest_difference"] = diff
                say(
                    f,
                    f"{method}_correlation",
                    r,
                    f"{method}: correlation {r:.6f}, largest difference {diff:.2e}; "
                    f"{times} (reference correlation > 0.9999)",
                )


def extra_reserved(work: Callable[..., object], *args: Any, **kwargs: Any) -> int:
    """The CUDA memory ``work(*args, **kwargs)`` reserves beyond what is held before it: what a cap must leave."""
    sync()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_reserved()
    work(*args, **kwargs)
    sync()
    return torch.cuda.max_memory_reserved() - before


@contextmanager
def memory_cap(extra: int) -> Iterator[int]:
    """Cap this process at what it holds now plus ``extra`` bytes; yields the cap, lifted on the way out."""
    sync()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    cap = torch.cuda.memory_reserved() + max(0, extra)
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total))
    try:
        yield cap
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()


def between(small: int, large: int) -> int:
    """A cap's extra room: halfway between what a small and a large batch need."""
    return (small + large) // 2


def out_of_memory(report: Report, data: Data, gpu: str | None) -> None:
    """Real CUDA out-of-memory, made with a memory cap: the batch halves, and at one input the work moves to
    the CPU; the results must still be the CPU's."""
    from medviewer.ai.inference import run_slices
    from medviewer.ai.package import load_module
    from medviewer.ai.saliency import METHODS, SaliencyRun
    from medviewer.ai.slide_run import run_slide

    if gpu != "cuda":
        with report.section("out of memory") as f:
            say(f, "skipped", True, "skipped: there is no CUDA memory to run out of here")
        return

    def describe(f: dict[str, Any], info: Any, against_cpu: float, words: str) -> None:
        f.update(device=info.device, batch=info.batch_size, notes=list(info.notes))
        say(
            f,
            "largest_difference_to_cpu",
            against_cpu,
            f"{words}: ran on {info.device}, ended at batch "
            f"{info.batch_size}, largest difference to the CPU {against_cpu:.2e}; notes:",
        )
        for note in info.notes:
            print(f"    - {note}", flush=True)
        if not any("out of memory" in note for note in info.notes):
            print("    (none about memory: the cap left room for this run, so the fallback was not exercised)")

    slices = data.slices * 4
    cpu_slices = run_slices(load_module(data.ct, device="cpu"), data.volume, slices, batch_size=64).probabilities
    with report.section("ct-slice-lesion-demo (TorchScript): slice run, capped below batch 256") as f:
        loaded = load_module(data.ct, device=gpu)
        run_slices(loaded, data.volume, slices[:16], batch_size=16)
        small = extra_reserved(run_slices, loaded, data.volume, slices[:16], batch_size=16)
        large = extra_reserved(run_slices, loaded, data.volume, slices[:256], batch_size=256)
        with memory_cap(between(small, large)) as cap:
            say(
                f,
                "cap_mib",
                cap / MIB,
                f"batch 16 needs {small / MIB:.0f} MiB more, batch 256 {large / MIB:.0f} MiB; "
                f"capped at {cap / MIB:.0f} MiB",
            )
            result = run_slices(loaded, data.volume, slices, batch_size=256)
        describe(f, result.info, largest_difference(result.probabilities, cpu_slices), f"{len(slices)} slices")

    with report.section("ct-slice-lesion-demo (TorchScript): slice run, no room for one slice") as f:
        loaded = load_module(data.ct, device=gpu)
        run_slices(loaded, data.volume, slices[:4], batch_size=4)
        with memory_cap(0) as cap:
            say(f, "cap_mib", cap / MIB, f"capped at what the model holds: {cap / MIB:.0f} MiB")
            result = run_slices(loaded, data.volume, slices[:32], batch_size=8)
        describe(f, result.info, largest_difference(result.probabilities, cpu_slices[:32]), "32 slices")

    with report.section("slide-patch-tumour-demo (TorchScript): slide run, capped below batch 512") as f:
        cpu_slide = run_slide(load_module(data.patch, device="cpu"), data.slide, data.grid, batch_size=64)
        loaded = load_module(data.patch, device=gpu)
        small = extra_reserved(run_slide, loaded, data.slide, data.grid, batch_size=16, workers=4)
        large = extra_reserved(run_slide, loaded, data.slide, data.grid, batch_size=512, workers=4)
        with memory_cap(between(small, large)) as cap:
            say(
                f,
                "cap_mib",
                cap / MIB,
                f"batch 16 needs {small / MIB:.0f} MiB more, batch 512 {large / MIB:.0f} MiB; "
                f"capped at {cap / MIB:.0f} MiB",
            )
            result = run_slide(loaded, data.slide, data.grid, batch_size=512, workers=4)
        against = largest_difference(result.probabilities, cpu_slide.probabilities)
        describe(f, result.info, against, f"{len(data.grid.tissue_cells())} patches")

    for name, (package, x, class_index) in explained_inputs(data).items():
        cpu_maps = {m: METHODS[m](load_module(package, device="cpu"), x, class_index) for m in SALIENCY}
        for method, key in (("occlusion", "occlusion"), ("ig", "integrated gradients")):
            with report.section(f"{name}: {method}, capped below its first batch") as f:
                loaded = load_module(package, device=gpu)
                first = SaliencyRun(loaded).batch[key]
                small = extra_reserved(explain_at, loaded, method, key, 2, x, class_index)
                large = extra_reserved(explain_at, loaded, method, key, first, x, class_index)
                run = SaliencyRun(loaded)
                with memory_cap(between(small, large)) as cap:
                    say(
                        f,
                        "cap_mib",
                        cap / MIB,
                        f"batch 2 needs {small / MIB:.1f} MiB more, batch {first} "
                        f"{large / MIB:.1f} MiB; capped at {cap / MIB:.0f} MiB",
                    )
                    found = METHODS[method](run, x, class_index)
                saliency_figures(f, run, found, cpu_maps[method])
        for method in SALIENCY:
            with report.section(f"{name}: {method}, no room for one input") as f:
                run = SaliencyRun(load_module(package, device=gpu))
                METHODS[method](run, x, class_index)
                with memory_cap(0) as cap:
                    say(f, "cap_mib", cap / MIB, f"capped at what the model holds: {cap / MIB:.0f} MiB")
                    found = METHODS[method](run, x, class_index)
                saliency_figures(f, run, found, cpu_maps[method])


def explain_at(loaded: Any, method: str, key: str, batch: int, x: np.ndarray, class_index: int) -> np.ndarray:
    """``method``'s map with its batch set to ``batch``."""
    from medviewer.ai.saliency import METHODS, SaliencyRun

    run = SaliencyRun(loaded)
    run.batch[key] = batch
    return METHODS[method](run, x, class_index)


def saliency_figures(f: dict[str, Any], run: Any, found: np.ndarray, cpu: np.ndarray) -> None:
    f.update(device=run.device, notes=list(run.notes))
    r = correlation(found, cpu)
    say(f, "correlation_to_cpu", r, f"finished on {run.device}, correlation to the CPU's map {r:.6f}; notes:")
    for note in run.notes:
        print(f"    - {note}", flush=True)
    if not run.notes:
        print("    (none: the cap left room for this map, so the fallback was not exercised)")


def throughput(report: Report) -> None:
    """The rates measured above, side by side."""
    with report.section("throughput") as f:
        for name, figures in report.figures.items():
            rates = {key: value for key, value in figures.items() if key.endswith("_per_s")}
            if rates:
                f[name] = rates
                words = ", ".join(f"{key.replace('_per_s', '/s')} {value}" for key, value in rates.items())
                print(f"  {name}: {words}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo-data", type=Path, help="a demo-data folder to use (made there if it has none)")
    parser.add_argument("--json", type=Path, help="write every figure here (default $OUT/device_check.json)")
    parser.add_argument(
        "--as-gpu",
        metavar="DEVICE",
        help="run the GPU halves on DEVICE (cpu: to smoke-test them without CUDA; the out-of-memory part needs CUDA)",
    )
    args = parser.parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # run as a script from anywhere: the project's own medviewer
    home = None
    if "MEDVIEWER_HOME" not in os.environ:  # never the user's settings, audit log or caches
        home = tempfile.mkdtemp(prefix="medviewer-device-home-")
        os.environ["MEDVIEWER_HOME"] = home
    from medviewer.ai.inference import set_torch_threads

    set_torch_threads()
    gpu = args.as_gpu or ("cuda" if torch.cuda.is_available() else None)
    report = Report()
    environment(report, gpu)
    made_here = args.demo_data is None
    data = None
    with report.section("demo data") as f:
        data = prepare(args.demo_data)
        say(f, "folder", str(data.folder), f"{data.folder}: CT {data.volume.shape}, slide {data.slide.dimensions}")
    if data is not None and "demo data" not in report.failed:
        for step in (slice_model, patch_model, saliency, out_of_memory):
            step(report, data, gpu)
        throughput(report)
        if made_here:
            shutil.rmtree(data.folder, ignore_errors=True)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)
    out = args.json or (Path(os.environ["OUT"]) / "device_check.json" if os.environ.get("OUT") else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps({"cuda": gpu is not None, "failed": report.failed, **report.figures}, indent=1, default=str)
        )
        print(f"\nfigures written to {out}")
    print(
        f"\n{'FAILED: ' + ', '.join(report.failed) if report.failed else 'every section ran'}"
        + ("" if gpu == "cuda" else " (CPU only: CUDA is not available here)")
    )
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
