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
import threading
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
        for value in values:
            text = str(value).strip() if value is not None else ""
            for variant in {text, text.replace("^", " ").strip()}:
                if len(variant) >= 3 and variant not in _identifiers:
                    _identifiers.add(variant)
                    added = True
        if added:
            alternatives = sorted(_identifiers, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(a) for a in alternatives), re.IGNORECASE)


def redact(text: str) -> str:
    pattern = _pattern
    return pattern.sub(REDACTED, text) if pattern else text


def safe_path(path: str | Path) -> str:
    """A stable token for a path that says which file without saying whose it is."""
    p = Path(path)
    digest = hashlib.sha256(str(p.expanduser().absolute()).encode()).hexdigest()[:10]
    suffix = "".join(p.suffixes[-2:]) if p.suffixes else ("/" if p.is_dir() else "")
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
