"""Application logging that never holds patient identifiers.

Two defences. First, code logs facts about images, not about people, and refers to files through
``safe_path`` (a short digest plus the suffix), because hospital exports often name folders after the
patient. Second, every identifier a reader meets (names, IDs, dates, accession numbers) is registered
here and a filter on the file handler replaces any that slips into a message.
"""

from __future__ import annotations

import hashlib
import logging
import logging.handlers
import sys
import threading
import traceback
from collections.abc import Iterable
from pathlib import Path
from typing import cast

from medviewer.core.app_dirs import log_dir

LOG_FILE_NAME = "medviewer.log"
REDACTED = "[redacted]"

#: Identifiers longer than this are matched by their beginning (a 10 MB PatientName is no one's name, but
#: its first characters must still never reach the log).
MAX_IDENTIFIER = 256
#: The words of one value registered on their own ("DOE^JOHN" also hides "JOHN" alone).
MAX_PARTS = 16
#: Characters of one message that are logged (and scanned); the rest is counted, not written.
MAX_MESSAGE = 16 * 1024
_PREFIX = 3  # identifiers shorter than this are not registered (they would hide ordinary words)
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

_lock = threading.Lock()
#: lower-cased first characters -> (lower-cased identifier, whether it is the beginning of a longer one),
#: longest first, so a message is scanned once whatever the number of identifiers.
_by_prefix: dict[str, list[tuple[str, bool]]] = {}


def register_identifiers(values: Iterable[object]) -> None:
    """Remember identifying strings so the log filter can scrub them from any message."""
    with _lock:
        for value in _flatten(values):
            text = _text(value).strip()
            parts = [p for p in text.replace("^", " ").split(maxsplit=MAX_PARTS)[:MAX_PARTS] if len(p) >= _PREFIX]
            for variant in {text, text.replace("^", " ").strip(), *parts}:
                if len(variant) >= _PREFIX:
                    _add(variant[:MAX_IDENTIFIER].lower(), truncated=len(variant) > MAX_IDENTIFIER)


def _text(value: object) -> str:
    """A value as it would appear in a message; an element pydicom could only keep as bytes (a name over
    64 kB is stored as UN) is decoded, not written as its ``b'...'`` repr."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace").strip("\x00 ")
    return str(value)


def _add(variant: str, truncated: bool) -> None:
    entries = _by_prefix.setdefault(variant[:_PREFIX], [])
    if (variant, truncated) not in entries:
        entries.append((variant, truncated))
        entries.sort(key=lambda entry: len(entry[0]), reverse=True)


def _flatten(values: Iterable[object]) -> list[object]:
    """Multi-valued DICOM attributes (e.g. OtherPatientIDs) register each value."""
    flat: list[object] = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            # pydicom's MultiValue is told by name: this layer does not import pydicom
            flat.extend(v for v in cast("Iterable[object]", value) if v is not None)
        else:
            flat.append(value)
    return flat


def redact(text: str) -> str:
    """``text`` with every registered identifier that stands as a whole word replaced, at most MAX_MESSAGE
    characters of it. One pass over the message, a dictionary look-up where a word may begin: the time is
    linear in the message (bounded by MAX_MESSAGE) whatever was registered, where a regular expression of
    all identifiers took seconds on one long name."""
    dropped = len(text) - MAX_MESSAGE
    if dropped > 0:
        text = text[:MAX_MESSAGE]
    if _by_prefix:
        text = _scrubbed(text)
    return f"{text} [{dropped} more characters not logged]" if dropped > 0 else text


def _scrubbed(text: str) -> str:
    lowered = text.lower()
    if len(lowered) != len(text):  # a few characters lower-case to two; keep positions aligned
        lowered = "".join(c if len(c.lower()) != 1 else c.lower() for c in text)
    pieces: list[str] = []
    kept = 0  # text[kept:] is not yet copied to pieces
    position, size = 0, len(text)
    while position < size:
        if position and text[position - 1] in _WORD:
            position += 1
            continue
        end = _match_end(text, lowered, position)
        if end is None:
            position += 1
            continue
        pieces += [text[kept:position], REDACTED]
        kept = position = end
    return "".join(pieces) + text[kept:] if pieces else text


def _match_end(text: str, lowered: str, position: int) -> int | None:
    """Where the longest identifier that starts at ``position`` and ends a word ends; None when none does."""
    for variant, truncated in _by_prefix.get(lowered[position : position + _PREFIX], ()):
        if not lowered.startswith(variant, position):
            continue
        end = position + len(variant)
        if truncated:  # the rest of a long identifier is hidden with its beginning
            while end < len(text) and not text[end].isspace():
                end += 1
            return end
        if end == len(text) or text[end] not in _WORD:
            return end
    return None


#: The file formats' suffixes shown in log tokens, longest first; anything else after a dot may be part of a
#: name. Set by ``setup_logging`` from the readers' registry (``medviewer.io.formats.all_suffixes``), which
#: this layer may not import; until then no suffix is shown.
_file_suffixes: tuple[str, ...] = ()


def safe_path(path: str | Path) -> str:
    """A stable token for a path that says which file without saying whose it is."""
    p = Path(path)
    digest = hashlib.sha256(str(p.expanduser().absolute()).encode()).hexdigest()[:10]
    name = p.name.lower()
    suffix = next((s for s in _file_suffixes if name.endswith(s)), "/" if p.is_dir() else "")
    return f"<file {digest}{suffix}>"


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def setup_logging(level: int = logging.INFO, file_suffixes: Iterable[str] = ()) -> Path:
    """Send the ``medviewer`` loggers to a rotating file in the log folder; returns its path.

    ``file_suffixes`` are the image formats' suffixes that file tokens (``safe_path``) keep, so a log still
    says which kind of file was read; tokens keep none when it is empty.
    """
    global _file_suffixes
    _file_suffixes = tuple(sorted({s.lower() for s in file_suffixes}, key=lambda s: (-len(s), s)))
    path = log_dir() / LOG_FILE_NAME
    logger = logging.getLogger("medviewer")
    for handler in list(logger.handlers):
        if getattr(handler, "_medviewer", False):
            logger.removeHandler(handler)
            handler.close()
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=5 * 1024 * 1024, backupCount=5, encoding="utf-8")
    handler._medviewer = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.setLevel(level)
    return path


def log_unexpected(logger: logging.Logger, message: str, *args: object) -> None:
    """Log the exception being handled by its type and where it was raised, not by its text: an OSError's
    text holds a path, and folder names are often patient names that no header has registered yet."""
    exc = sys.exc_info()[1]
    where = "".join(traceback.format_tb(exc.__traceback__)) if exc is not None else ""
    logger.error(message + ": %s at\n%s", *args, type(exc).__name__, where)
