"""Typed errors that the window and the command line turn into one sentence a clinician understands.

Every error names the file it is about and the reason, so a message never has to be reconstructed
from a traceback, and callers can catch the whole family with ``MedviewerError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


class InputWarning(UserWarning):
    """A value in a file was wrong but the image can still be shown; the viewer shows the sentence."""


def is_decoder_panic(exc: BaseException) -> bool:
    """A Rust decoder's panic (pyo3's PanicException) derives from BaseException, past every ``except
    Exception``; it is a decoder failing on damaged data like any other."""
    return type(exc).__name__ == "PanicException"


def input_error(path: str | Path, exc: BaseException, what: str = "the file") -> MedviewerError | None:
    """The typed error a decoder's failure on ``path`` stands for; None for what must pass on (interrupts,
    exits). pydicom, nibabel, tifffile, OpenSlide, zlib and the pixel decoder plugins raise dozens of types
    on damaged or hostile data (TypeError on Rows=0, zlib.error, ZeroDivisionError, RecursionError on deep
    sequences, a Rust panic); the type's name stays in the message, so a reader bug remains traceable from
    what a person reports."""
    if isinstance(exc, MedviewerError):
        return exc
    if isinstance(exc, RecursionError):
        return CorruptFileError(path, f"{what} is nested too deeply to read (damaged or hostile)")
    if isinstance(exc, MemoryError):
        return CorruptFileError(path, f"{what} needed more memory than is free; it was not read")
    if isinstance(exc, Exception):
        return CorruptFileError(path, f"{what} is damaged and could not be decoded ({type(exc).__name__})")
    if is_decoder_panic(exc):
        return CorruptFileError(path, f"{what} is damaged: its decoder failed (PanicException)")
    return None


@contextmanager
def reading(path: str | Path, what: str = "the file") -> Iterator[None]:
    """Turn whatever a decoder raises on damaged or hostile data into a CorruptFileError naming ``path``
    (see ``input_error``): the boundary between a reader and the rest of the program."""
    try:
        yield
    except BaseException as exc:
        error = input_error(path, exc, what)
        if error is None or error is exc:
            raise
        raise error from exc
