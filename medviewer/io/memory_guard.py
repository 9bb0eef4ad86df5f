"""Refusing images the machine cannot hold, before anything is allocated.

A header is a promise about sizes that a damaged or hostile file can break: Rows x Columns x
NumberOfFrames can declare terabytes. Allocating first would end in a MemoryError at best and in the
operating system killing the application at worst, so sizes are checked against the memory that is
actually free, and the refusal names the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from medviewer.core.errors import UnsupportedFileError

GIB = 1024**3


def available_memory() -> int:
    """Bytes the kernel says can be allocated without swapping (MemAvailable), else physical memory."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def refuse_if_too_large(path: Path, nbytes: int, what: str) -> None:
    """Raise UnsupportedFileError naming ``path`` when ``nbytes`` for ``what`` exceed free memory."""
    free = available_memory()
    if nbytes > free:
        raise UnsupportedFileError(
            path,
            f"{what} would need {nbytes / GIB:.1f} GiB of memory, more than the {free / GIB:.1f} GiB available; "
            "it was not read",
        )
