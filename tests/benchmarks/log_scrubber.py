"""The log scrubber's cost against the length of the message, with hostile identifiers registered.

A 10 MB PatientName and 5000 other identifiers are registered; each message holds the name once. The
figures are ratios against scrubbing a 1 KB message in the same run: a scrubber linear in the message
(and capped) stays near the length ratio up to the cap, then flat.

Run: .venv/bin/python -m tests.benchmarks.log_scrubber
"""

from __future__ import annotations

import time

from medviewer.core.logs import MAX_MESSAGE, redact, register_identifiers

NAME = "Zq" + "w" * 10_000_000


def _seconds(message: str, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        redact(message)
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def main() -> None:
    register_identifiers([NAME])
    register_identifiers(f"Canary{n:05d}^Person" for n in range(5000))
    filler = "opened series of 120 slices; "
    reference = _seconds((filler * 40)[:1000] + NAME[:20])
    print(f"scrubbing a 1 kB message: {reference * 1e3:.2f} ms (the reference); cap {MAX_MESSAGE} characters")
    for size in (4_000, 16_000, 1_000_000, 10_000_000):
        message = (filler * (size // len(filler) + 1))[: size - 20] + " " + NAME
        ratio = _seconds(message) / reference
        print(f"  {size:>10,} characters + the 10 MB name: {ratio:6.1f}x the reference")


if __name__ == "__main__":
    main()
