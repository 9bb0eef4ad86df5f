"""Running a loaded model over the slices of a volume, or over the whole volume, with its identity recorded.

Every result carries the model's name, version and SHA-256, the device and precision it ran at, how long it
took and the batch size it ended with, so a probability is never shown without what produced it. What went
differently from what was asked (a smaller batch after CUDA ran out of memory, the CPU instead of the GPU,
float32 instead of float16) is said in ``RunInfo.notes`` rather than hidden.

Every slice run also carries the out-of-distribution guard's report (``medviewer.ai.ood``): a score and flags
per slice, or why nothing could be checked, so a run on an image the model was not made for never looks like
a finding. Where the guard can check, the module is called as ``forward_head(forward_features(x))`` (the
explain contract says that is ``forward(x)``) and the pooled features are kept per slice, pass by pass, so
they line up with the slices even when CUDA runs out of memory and the batch is halved.

A model can fail in ways its metadata does not predict: it raises (wrong input channels are a RuntimeError
from its first convolution), or it returns another number of outputs than the classes it names. Each is an
``InferenceError`` naming the model file and the mismatch, never a traceback, and the application keeps
running.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from medviewer.ai.ood import Guard, OodReport, guard_for, pool_features, volume_facts
from medviewer.ai.package import LoadedModel, load_module
from medviewer.ai.preprocess import slice_batch, volume_input
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

Precision = Literal["float32", "float16"]
PRECISIONS = ("float32", "float16")
Progress = Callable[[float, str], None]


class InferenceError(MedviewerError):
    """The model could not be run on this input, or what it returned contradicts its metadata."""


class Cancelled(Exception):  # noqa: N818 - the name the window's worker and the CLI code against
    """The caller's ``cancelled()`` said stop; raised between batches, so no partial result is returned."""


@dataclass(frozen=True)
class RunInfo:
    """What produced a result: the model's identity and how it was run."""

    model_name: str
    model_version: str
    model_hash: str
    device: str
    precision: Precision
    duration_s: float
    batch_size: int
    notes: tuple[str, ...]


@dataclass(frozen=True, eq=False)  # arrays do not compare to one bool; results are equal only to themselves
class SliceResult:
    """Class probabilities per slice: ``probabilities[i, j]`` is class ``classes[j]`` on slice ``indices[i]``.

    ``ood`` is the out-of-distribution guard's report, its items in the order of ``indices``; ``run_slices``
    always fills it (unchecked, saying why, when the model has no usable reference)."""

    indices: tuple[int, ...]
    classes: tuple[str, ...]
    probabilities: np.ndarray
    info: RunInfo
    ood: OodReport | None = None

    def best(self) -> tuple[int, str, float]:
        """(slice index, class, probability) of the highest probability over all slices and classes."""
        row, column = np.unravel_index(int(np.argmax(self.probabilities)), self.probabilities.shape)
        return self.indices[row], self.classes[column], float(self.probabilities[row, column])


@dataclass(frozen=True, eq=False)
class VolumeResult:
    """Class probabilities for the whole volume: ``probabilities[j]`` is class ``classes[j]``."""

    classes: tuple[str, ...]
    probabilities: np.ndarray
    info: RunInfo


def set_torch_threads() -> int:
    """Give torch all cores but one (at least one) and return the count.

    Called in the worker thread before a run: torch's default takes every core, which starves the GUI
    thread and makes the window stutter while a model runs."""
    import torch

    threads = model_threads()
    torch.set_num_threads(threads)
    return threads


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def model_threads() -> int:
    """All cores this process may use but one, and at least one: the threads a model runs on."""
    return max(1, usable_cores() - 1)


def model_file(loaded: LoadedModel) -> Path:
    """The weights file the module was loaded from: what every error and result names."""
    return loaded.package.weights[loaded.format]


def run_slices(
    loaded: LoadedModel,
    volume: Volume,
    indices: list[int],
    batch_size: int = 16,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    precision: Precision = "float32",
    guard: bool = True,
) -> SliceResult:
    """Probabilities for each of ``indices`` (axial slices of ``volume``) from a ``slice`` model, and the
    out-of-distribution guard's report on each slice (``guard=False`` leaves the guard out, for measuring
    what it costs; the report then says so).

    ``cancelled`` is asked before each batch, so a cancel takes effect within one batch. When CUDA runs
    out of memory the batch is halved and retried; at a batch of one the model is reloaded on the CPU."""
    spec = loaded.package.spec
    require_target(loaded, "slice")
    if not indices:
        raise ValueError("no slices to run the model on")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    run = RunningModel(loaded, precision, guard_for(loaded, volume_facts(volume), enabled=guard))
    rows: list[np.ndarray] = []
    done = 0
    while done < len(indices):
        if cancelled is not None and cancelled():
            raise Cancelled
        chunk = indices[done : done + batch_size]
        output, batch_size = forward_in_passes(run, slice_batch(volume, chunk, spec), batch_size)
        rows.append(output)
        done += len(chunk)
        if progress is not None:
            progress(done / len(indices), f"{loaded.package.name}: {done} of {len(indices)} slices")
    return SliceResult(
        tuple(indices),
        spec.classes,
        read_only_float32(np.concatenate(rows)),
        run.info(batch_size),
        run.ood((len(indices),)),
    )


def forward_in_passes(run: RunningModel, x: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Activated outputs for a prepared batch, in forward passes of ``size``; when CUDA runs out of memory
    the passes are halved, and at one the model moves to the CPU. Returns the outputs and the size that
    worked, which the caller keeps for its next batches."""
    outputs: list[np.ndarray] = []
    first = 0
    while first < len(x):
        output = run.forward(x[first : first + size])
        if output is None:
            if size > 1:
                run.notes.append(f"CUDA ran out of memory; batch {size} -> {size // 2}")
                size //= 2
            else:
                run.to_cpu()
            continue
        outputs.append(output)
        first += len(output)
    return np.concatenate(outputs), size


def run_volume(
    loaded: LoadedModel,
    volume: Volume,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    precision: Precision = "float32",
) -> VolumeResult:
    """Probabilities for the whole volume from a ``volume`` model, resampled and resized as its metadata says.

    Volume models have no out-of-distribution guard: the guard scores items (slices, patches) against a
    training reference, and a whole-volume result has one item and no such reference."""
    spec = loaded.package.spec
    require_target(loaded, "volume")
    run = RunningModel(loaded, precision)
    x = volume_input(volume, spec)
    if cancelled is not None and cancelled():
        raise Cancelled
    while (output := run.forward(x)) is None:  # out of memory: there is no batch to halve, so the CPU
        run.to_cpu()
    if progress is not None:
        progress(1.0, f"{loaded.package.name}: volume done")
    return VolumeResult(spec.classes, read_only_float32(output[0]), run.info(1))


def activate(scores: torch.Tensor, activation: str) -> torch.Tensor:
    """The metadata's activation over the class axis, in float32: probabilities as the model's makers meant them."""
    import torch

    scores = scores.float()
    if activation == "softmax":
        return torch.softmax(scores, dim=1)
    if activation == "sigmoid":
        return torch.sigmoid(scores)
    return scores


def require_target(loaded: LoadedModel, target: str) -> None:
    """Refuse a model made for another kind of input (``slice``, ``volume``, ``slide_patch``) before it runs:
    fed the wrong shape it would fail deep inside torch, or worse, return numbers that look like a result."""
    if loaded.package.spec.target != target:
        raise InferenceError(
            model_file(loaded), f"is a {loaded.package.spec.target} model; it cannot be run on a {target}"
        )


def read_only_float32(array: np.ndarray) -> np.ndarray:
    """Results are frozen dataclasses; their arrays are made read-only to match."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    array.flags.writeable = False
    return array


class RunningModel:
    """One run's module, device, precision, timing and notes, which change when it falls back.

    Slice, volume and slide runs and ``medviewer evaluate`` all drive the model through it, so each falls back
    and records what it did in the same way."""

    def __init__(self, loaded: LoadedModel, precision: Precision, guard: Guard | None = None) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        self.loaded = loaded
        self.guard = guard
        self.notes: list[str] = []
        self.started = time.perf_counter()
        self.precision: Precision = precision
        if precision == "float16" and not loaded.device.startswith("cuda"):
            self.precision = "float32"
            self.notes.append(f"float16 runs only on CUDA; ran in float32 on {loaded.device}")

    def forward(self, x: np.ndarray) -> np.ndarray | None:
        """Activated outputs (N, classes) as float32, or None when CUDA ran out of memory."""
        import torch

        try:
            with torch.inference_mode():
                raw, pooled = self._call(torch.from_numpy(x).to(self.loaded.device))
                output = self._activate(self._check(raw, len(x)))
        except InferenceError:
            raise
        except Exception as exc:  # a model can raise anything; all but running out of memory is its failure
            # out of memory is answered below, outside the except block, so the failed batch's tensors can be freed
            if not is_out_of_memory(exc):
                raise InferenceError(
                    model_file(self.loaded),
                    f"the model failed on an input of shape {list(x.shape)} (its metadata says "
                    f"{self.loaded.package.spec.channels} channel(s) of {list(self.loaded.package.spec.shape)}): "
                    f"{_last_line(exc)}",
                ) from exc
        else:
            if pooled is not None and self.guard is not None:
                self.guard.add(pooled, x)  # only passes that succeeded: features line up with the outputs
            return output
        torch.cuda.empty_cache()
        return None

    def _call(self, x: torch.Tensor) -> tuple[Any, np.ndarray | None]:
        """The module's raw output, and the pooled features where the guard checks (else None)."""
        import torch

        if self.precision == "float16":
            with torch.autocast(device_type="cuda", dtype=torch.float16):
                return self._module_call(x)
        return self._module_call(x)

    def _module_call(self, x: torch.Tensor) -> tuple[Any, np.ndarray | None]:
        guard, module = self.guard, self.loaded.module
        if guard is None or not guard.active:
            return module(x), None
        features_method, head_method = guard.methods
        try:
            features = getattr(module, features_method)(x)
            raw = getattr(module, head_method)(features)
        except Exception as exc:  # the model's own forward decides whether the model fails on this input
            if is_out_of_memory(exc):
                raise
            guard.disable(f"{features_method} or {head_method} failed ({_last_line(exc)}); the run used forward")
            return module(x), None
        return raw, pool_features(features)

    def ood(
        self, shape: tuple[int, ...], positions: np.ndarray | None = None, keep: np.ndarray | None = None
    ) -> OodReport:
        """The guard's report over the run's items (see ``Guard.report``); only runs made with a guard (slices,
        patches) have one."""
        assert self.guard is not None, "a run without a guard (a volume run) has no items to report on"
        return self.guard.report(shape, positions, keep)

    def _check(self, raw: Any, batch: int) -> torch.Tensor:
        import torch

        file, classes = model_file(self.loaded), self.loaded.package.spec.classes
        if not isinstance(raw, torch.Tensor):
            raise InferenceError(file, f"the model returned a {type(raw).__name__}, not a tensor of class scores")
        if raw.ndim != 2 or raw.shape[0] != batch:
            expected = [batch, len(classes)]
            raise InferenceError(
                file, f"the model returned shape {list(raw.shape)} for {batch} input(s); expected {expected}"
            )
        if raw.shape[1] != len(classes):
            raise InferenceError(
                file,
                f"the model gives {raw.shape[1]} outputs per input but its metadata names {len(classes)} "
                f"classes ({', '.join(classes)})",
            )
        return raw

    def _activate(self, raw: torch.Tensor) -> np.ndarray:
        return activate(raw, self.loaded.package.spec.activation).cpu().numpy()

    def to_cpu(self) -> None:
        """Reload the same approved file on the CPU after CUDA ran out of memory even at a batch of one."""
        if self.loaded.device == "cpu":
            raise InferenceError(model_file(self.loaded), "the model ran out of memory even at a batch of one")
        log.warning("CUDA ran out of memory at a batch of one; running %s on the CPU", self.loaded.package.name)
        self.notes.append(f"CUDA ran out of memory at a batch of one; fell back to CPU from {self.loaded.device}")
        self.loaded = load_module(self.loaded.package, prefer=self.loaded.format, device="cpu")
        if self.precision == "float16":
            self.precision = "float32"
            self.notes.append("float16 runs only on CUDA; the CPU ran in float32")

    def info(self, batch_size: int) -> RunInfo:
        package = self.loaded.package
        return RunInfo(
            model_name=package.name,
            model_version=package.version,
            model_hash=self.loaded.sha256,
            device=self.loaded.device,
            precision=self.precision,
            duration_s=time.perf_counter() - self.started,
            batch_size=batch_size,
            notes=tuple(self.notes),
        )


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether a model ran out of accelerator memory. PyTorch raises ``torch.cuda.OutOfMemoryError`` (an
    ``torch.OutOfMemoryError`` since 2.5) from eager code, but inside a TorchScript module the same failure
    arrives as a plain RuntimeError whose message says "CUDA out of memory" (seen on an H200): all three
    must halve the batch and fall back to the CPU, not end the run."""
    import torch

    kinds = tuple(kind for kind in (getattr(torch, "OutOfMemoryError", None), torch.cuda.OutOfMemoryError) if kind)
    if isinstance(exc, kinds):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower() and "cuda" in str(exc).lower()


def _last_line(exc: BaseException) -> str:
    """The error's own words: TorchScript prefixes them with its interpreter's traceback."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
