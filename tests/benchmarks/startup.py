"""Startup benchmark: seconds from process start to the window shown, and to torch imported.

Run with ``make bench`` (or ``python -m tests.benchmarks.startup [RUNS]``). Each run starts the real
entry point in screenshot mode and reads the times the application logs; the figures are medians.
The window must come first: torch is imported in the background after it is shown.
"""

from __future__ import annotations

import statistics
import sys

from tests.support.startup_times import measure_once


def measure(runs: int = 5) -> dict[str, float]:
    samples = [measure_once() for _ in range(runs)]
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]}


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    result = measure(runs)
    print(
        f"startup over {runs} runs (median): window shown {result['window_shown_s']:.2f} s, "
        f"torch imported {result['torch_imported_s']:.2f} s after process start"
    )


if __name__ == "__main__":
    main()
