"""Typed errors that the window and the command line turn into one sentence a clinician understands.

Every error names the file it is about and the reason, so a message never has to be reconstructed
from a traceback, and callers can catch the whole family with ``MedviewerError``.
"""

from __future__ import annotations

from pathlib import Path


class MedviewerError(Exception):
    """Base of every error medviewer reports to a person."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class PathNotFoundError(MedviewerError):
    """The path given does not exist."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, "no such file or folder")


class NoImagesFoundError(MedviewerError):
    """A folder holds nothing medviewer can open."""


class UnsupportedFileError(MedviewerError):
    """The file is readable but is not an image format medviewer opens."""


class CorruptFileError(MedviewerError):
    """The file claims a known format but its content is damaged or inconsistent."""
