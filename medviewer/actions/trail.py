"""Writing an action's audit event, when the action has already happened.

A file opened, a model run, annotations saved: the action is done when it is recorded, so a trail that
cannot be written (damaged, on a full disk) must not undo it. The caller gets the sentence to show (naming
the trail's file and the cause) and decides: the window shows it in its message bar, the command line
prints it and exits with status 1.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from medviewer.catalog import audit
from medviewer.catalog.browse import SERIES_KEY_PREFIX, series_key, slide_key
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.io.slide import Slide


@dataclass(frozen=True)
class Problems:
    """What went wrong in recording an action that itself succeeded; empty when everything was recorded."""

    messages: tuple[str, ...] = field(default=())

    def __bool__(self) -> bool:
        return bool(self.messages)

    def __add__(self, other: Problems) -> Problems:
        return Problems(self.messages + other.messages)


def record_event(event: str, subject: str, details: Mapping[str, object] | None = None) -> Problems:
    try:
        audit.record(event, subject, details)
    except MedviewerError as exc:
        return Problems((f"Not recorded in the audit trail: {exc}",))
    return Problems()


@dataclass(frozen=True)
class ImageIdentity:
    """How the catalog and the audit trail name an image: a series by its UID (whatever folder it was read
    from), a slide or any other file by its absolute path. The trail holds a keyed digest of a path, never
    the path (folder names are often patient names)."""

    #: The catalog's key: ``series:<UID>`` or an absolute path.
    key: str
    kind: Literal["volume", "slide"]

    @property
    def audit_subject(self) -> str:
        return self.key if self.is_series else audit.path_subject(self.key)

    @property
    def is_series(self) -> bool:
        return self.key.startswith(SERIES_KEY_PREFIX)

    @property
    def in_catalog(self) -> bool:
        """Whether results are listed under this key: series and slides are catalogued, a NIfTI file is not."""
        return self.is_series or self.kind == "slide"


def identity_of(image: Volume | Slide, path: Path) -> ImageIdentity:
    """The identity of an image opened from ``path``."""
    if isinstance(image, Slide):
        return ImageIdentity(slide_key(path), "slide")
    series_uid = image.metadata.get("series_uid")
    return ImageIdentity(series_key(str(series_uid)) if series_uid else str(Path(path).absolute()), "volume")
