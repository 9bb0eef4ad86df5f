"""Open each case of the mutation corpus as the window does, each in its own forked child with a time and an
address-space limit, and print one JSON line per case: how it ended and the child's peak memory.

Run by tests/io/test_mutation_corpus.py as ``python -m tests.support.mutation_probe CASES.json``. The readers are
imported once here and each child is a fork of this process, so a case costs milliseconds to start and a
decoder that hangs, crashes or takes all memory takes only its child down.
"""

from __future__ import annotations

import json
import math
import os
import resource
import select
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from medviewer.core.errors import InputWarning, MedviewerError
from medviewer.io.memory_guard import memory_budget
from medviewer.io.preview import open_for_viewing
from medviewer.io.slide import Slide

SECONDS = int(os.environ.get("MUTATION_CASE_SECONDS", "60"))
ADDRESS_SPACE = 8 * 1024**3  # a last fence: the budget is checked against the child's measured peak


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def _volume_sane(volume: object) -> list[str]:
    """What is wrong with an opened volume that nobody warned about (a made-up geometry or values)."""
    problems = []
    spacing = np.asarray(volume.spacing, dtype=float)  # type: ignore[attr-defined]
    origin = np.asarray(volume.origin, dtype=float)  # type: ignore[attr-defined]
    direction = np.asarray(volume.direction, dtype=float)  # type: ignore[attr-defined]
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        problems.append(f"spacing {spacing.tolist()}")
    if not np.isfinite(origin).all() or np.abs(origin).max() > 1e6:
        problems.append(f"origin {origin.tolist()}")
    if not np.isfinite(direction).all() or not np.allclose(direction @ direction.T, np.eye(3), atol=1e-3):
        problems.append("direction not orthonormal")
    array = volume.array  # type: ignore[attr-defined]
    if 0 in array.shape:
        problems.append(f"shape {array.shape}")
    elif np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).any():
        problems.append("no finite value")
    return problems


def _slide_sane(slide: Slide) -> list[str]:
    problems = []
    if slide.mpp is not None and not (math.isfinite(slide.mpp) and 0.01 <= slide.mpp <= 100):
        problems.append(f"mpp {slide.mpp}")
    if min(slide.dimensions) <= 0:
        problems.append(f"dimensions {slide.dimensions}")
    return problems


def probe(path: Path) -> dict:
    """How opening ``path`` for viewing ends: ok (with or without warnings), typed, or untyped."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            opened = open_for_viewing(path)
            image = getattr(opened, "image", None)
            problems: list[str] = []
            if isinstance(image, Slide):
                image.read_region((0, 0), image.level_count - 1, (256, 256))
                problems = _slide_sane(image)
            elif image is not None:
                problems = _volume_sane(image)
        except MedviewerError as exc:
            return {"outcome": "typed", "type": type(exc).__name__, "message": str(exc)[:300]}
        except BaseException as exc:  # noqa: BLE001 - what the probe is for
            return {"outcome": "untyped", "type": type(exc).__name__, "message": str(exc)[:300]}
    warned = [str(w.message)[:200] for w in caught if issubclass(w.category, InputWarning)]
    warned += list(getattr(image, "warnings", []) or [])
    return {"outcome": "ok", "warnings": warned[:5], "problems": problems}


def _run_case(path: Path) -> dict:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: limits, the probe, one JSON line, and out without cleanup
        os.close(read_end)
        code = 0
        try:
            resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
            signal.alarm(SECONDS)
            result = probe(path)
            result["peak_mib"] = _peak_mib()
            os.write(write_end, json.dumps(result).encode())
        except BaseException:  # noqa: BLE001 - a child never returns into the parent's loop
            code = 3
        os._exit(code)
    os.close(write_end)
    started, chunks = time.monotonic(), []
    while True:
        ready, _, _ = select.select([read_end], [], [], SECONDS + 10)
        chunk = os.read(read_end, 65536) if ready else b""
        if not chunk:
            break
        chunks.append(chunk)
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - started
    if chunks:
        return {**json.loads(b"".join(chunks)), "seconds": round(seconds, 2)}
    died = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    outcome = "hang" if died in (signal.SIGALRM, signal.SIGKILL) else "crash"
    return {"outcome": outcome, "signal": died, "exit": os.WEXITSTATUS(status) if died is None else None,
            "seconds": round(seconds, 2)}


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps({"budget_mib": memory_budget() / 2**20, "baseline_mib": _peak_mib()}), flush=True)
    for name, path in cases:
        print(json.dumps({"case": name, **_run_case(Path(path))}), flush=True)


if __name__ == "__main__":
    main()
