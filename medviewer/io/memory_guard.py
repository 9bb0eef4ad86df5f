"""Refusing images the machine cannot hold, before anything is allocated.

A header is a promise about sizes that a damaged or hostile file can break: Rows x Columns x
NumberOfFrames can declare terabytes, a gzip stream of 2 MB can inflate to gigabytes. Allocating first
would end in a MemoryError at best and in the operating system killing the application at worst, so
every reader checks what it is about to allocate, and what it is about to loop over, against a budget:
a fraction of physical memory (``MEDVIEWER_MEMORY_FRACTION``, default one half), and never more than
the kernel says is free now. The refusal names the file and the sizes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from medviewer.core.errors import UnsupportedFileError

GIB = 1024**3
MEMORY_FRACTION_VARIABLE = "MEDVIEWER_MEMORY_FRACTION"
DEFAULT_FRACTION = 0.5

log = logging.getLogger(__name__)


class TooLargeError(UnsupportedFileError):
    """What a file declares would take more memory than medviewer allows itself; nothing was allocated."""


def physical_memory() -> int:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def available_memory() -> int:
    """Bytes the kernel says can be allocated without swapping (MemAvailable), else physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return physical_memory()


def memory_fraction() -> float:
    """The share of physical memory one image may take: ``MEDVIEWER_MEMORY_FRACTION`` when it is a number in
    (0, 1], else the default (a bad value is logged, not fatal: the default is the safe choice)."""
    text = os.environ.get(MEMORY_FRACTION_VARIABLE, "").strip()
    if not text:
        return DEFAULT_FRACTION
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 1:
        log.warning("%s=%r is not a fraction in (0, 1]; using %s", MEMORY_FRACTION_VARIABLE, text, DEFAULT_FRACTION)
        return DEFAULT_FRACTION
    return value


def memory_budget() -> int:
    """Bytes one read may allocate: the configured fraction of physical memory, capped by what is free."""
    return min(int(physical_memory() * memory_fraction()), available_memory())


def refuse_if_too_large(path: Path, nbytes: int, what: str) -> None:
    """Raise TooLargeError naming ``path`` when ``nbytes`` for ``what`` exceed the memory budget."""
    budget = memory_budget()
    if nbytes > budget:
        raise TooLargeError(
            path,
            f"{what} would need {nbytes / GIB:.1f} GiB of memory, more than the {budget / GIB:.1f} GiB medviewer "
            f"allows itself ({MEMORY_FRACTION_VARIABLE}); it was not read",
        )
