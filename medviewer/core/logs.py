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
import re
import sys
import threading
import traceback
from collections.abc import Iterable
from pathlib import Path

from medviewer.core.app_dirs import log_dir

LOG_FILE_NAME = "medviewer.log"
REDACTED = "[redacted]"

_lock = threading.Lock()
_identifiers: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register_identifiers(values: Iterable[object]) -> None:
    """Remember identifying strings so the log filter can scrub them from any message."""
    global _pattern
    added = False
    with _lock:
        for value in _flatten(values):
            text = str(value).strip()
            parts = [p for p in text.replace("^", " ").split() if len(p) >= 3]
            for variant in {text, text.replace("^", " ").strip(), *parts}:
                if len(variant) >= 3 and variant not in _identifiers:
                    _identifiers.add(variant)
                    added = True
        if added:
            alternatives = sorted(_identifiers, key=len, reverse=True)
            _pattern = re.compile(
                r"(?<![A-Za-z0-9])(?:" + "|".join(re.escape(a) for a in alternatives) + r")(?![A-Za-z0-9])",
                re.IGNORECASE,
            )


def _flatten(values: Iterable[object]) -> list[object]:
    """Multi-valued DICOM attributes (e.g. OtherPatientIDs) register each value."""
    flat: list[object] = []
    for value in values:
        if value is None:
            continue
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            flat.extend(v for v in value if v is not None)
        else:
            flat.append(value)
    return flat


def redact(text: str) -> str:
    pattern = _pattern
    return pattern.sub(REDACTED, text) if pattern else text


#: Extensions shown in log tokens; anything else after a dot may be part of a name.
KNOWN_SUFFIXES = (".nii.gz", ".nii", ".dcm", ".dicom", ".ima", ".svs", ".tiff", ".tif", ".ndpi", ".mrxs", ".scn")


def safe_path(path: str | Path) -> str:
    """A stable token for a path that says which file without saying whose it is."""
    p = Path(path)
    digest = hashlib.sha256(str(p.expanduser().absolute()).encode()).hexdigest()[:10]
    name = p.name.lower()
    suffix = next((s for s in KNOWN_SUFFIXES if name.endswith(s)), "/" if p.is_dir() else "")
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


def setup_logging(level: int = logging.INFO) -> Path:
    """Send the ``medviewer`` loggers to a rotating file in the log folder; returns its path."""
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
