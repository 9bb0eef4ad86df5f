"""The user's annotation classes, kept in their config folder so every slide offers the same list.

The file is ``annotation_classes.json`` in ``medviewer.core.app_dirs.config_dir()``::

    {"format": "medviewer-annotation-classes", "version": 1,
     "classes": [{"name": "Tumor", "color": [200, 0, 0]}, ...]}

Until the user edits the list it is QuPath's default one, so annotations exchanged with QuPath keep
their colours. A missing or unreadable file gives the defaults (an unreadable one is left in place for
the user to inspect and is replaced only when they next edit the list).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

from medviewer.annotations.model import AnnotationClass
from medviewer.core.app_dirs import config_dir
from medviewer.io.atomic_write import write_atomic

log = logging.getLogger(__name__)

CLASSES_FILE_NAME = "annotation_classes.json"
_FORMAT = "medviewer-annotation-classes"

#: QuPath's default classes and colours ("Region*" and "Ignore*" are its names for regions and excluded areas).
DEFAULT_CLASSES: tuple[AnnotationClass, ...] = (
    AnnotationClass("Tumor", (200, 0, 0)),
    AnnotationClass("Stroma", (150, 200, 150)),
    AnnotationClass("Immune cells", (160, 90, 160)),
    AnnotationClass("Necrosis", (50, 50, 50)),
    AnnotationClass("Other", (255, 200, 0)),
    AnnotationClass("Region*", (0, 0, 180)),
    AnnotationClass("Ignore*", (180, 180, 180)),
)


def classes_path() -> Path:
    return config_dir() / CLASSES_FILE_NAME


def load_classes() -> list[AnnotationClass]:
    path = classes_path()
    if not path.exists():
        return list(DEFAULT_CLASSES)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != _FORMAT:
            raise ValueError(f"format is not {_FORMAT}")
        return [AnnotationClass(str(c["name"]), tuple(c["color"])) for c in data["classes"]]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        log.warning("annotation class list %s unreadable (%s); using the default classes", path, error)
        return list(DEFAULT_CLASSES)


def save_classes(classes: Iterable[AnnotationClass]) -> None:
    data = {
        "format": _FORMAT,
        "version": 1,
        "classes": [{"name": c.name, "color": list(c.colour)} for c in classes],
    }
    write_atomic(classes_path(), (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def colour_for_name(name: str) -> tuple[int, int, int]:
    """A stable colour for a class a file names without one, so it looks the same on every machine."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return digest[0], digest[1], digest[2]
