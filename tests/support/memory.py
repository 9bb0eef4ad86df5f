"""Resident memory of this process, for the benchmarks that report peak memory.

The peak comes from /proc's VmHWM, not getrusage's ru_maxrss: on Linux a child started with
subprocess keeps, in ru_maxrss, the high-water mark of the parent it was forked from (the kernel
carries it across exec), so a benchmark's child would report its parent's peak as its own.
"""

from __future__ import annotations

from pathlib import Path


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # the kernel reports kB
    raise RuntimeError(f"/proc/self/status has no {field}")


def resident_mib() -> float:
    """Resident memory now."""
    return _status_mib("VmRSS")


def peak_resident_mib() -> float:
    """The highest resident memory since this program started (exec)."""
    return _status_mib("VmHWM")
