"""Replace a file so that a crash at any moment leaves either the old content or the new, never a mix.

The bytes go to a temporary file in the same folder (a rename is atomic only within one file system),
are flushed and fsynced, and the temporary file is then renamed over the target with ``os.replace``.
On POSIX the folder is fsynced too, so the rename itself survives a power cut. A writer killed midway
leaves at most a stray ``.<name>.*.tmp`` file beside the target, which nothing reads.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from pathlib import Path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically; raises OSError (the target untouched) when it cannot."""
    temporary = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    # os.open rather than tempfile.mkstemp: mkstemp's mode 0600 would hide the file from colleagues
    # sharing the slide folder; 0666 lets the user's umask decide, as for any file they save.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return  # Windows cannot open a folder for fsync; NTFS journals the rename itself
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def rename_aside(path: Path, tag: str) -> Path:
    """Move a file that cannot be used to ``<name>.<tag>-<date>-<time>`` beside it and return the new path,
    so it is kept for a person to look at and a new file can take its place; raises OSError (nothing
    moved) when it cannot be renamed. An earlier file set aside in the same second is kept too."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.{tag}-{stamp}")
    repeat = 1
    while backup.exists():
        backup, repeat = path.with_name(f"{path.name}.{tag}-{stamp}-{repeat}"), repeat + 1
    os.rename(path, backup)
    return backup
