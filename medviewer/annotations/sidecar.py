"""Where a slide's annotations are kept between sessions, and how they are loaded on open.

Convention: beside the slide, as ``<slide file name>.annotations.geojson`` (``CMU-1.svs`` gets
``CMU-1.svs.annotations.geojson``), QuPath-compatible GeoJSON that a person can find, copy and open in
QuPath. When the slide's folder is not writable (a read-only share, a scanner's export), the file goes
to the per-user data folder instead: ``<data folder>/annotations/<slide file name>-<digest>.annotations.geojson``,
where the digest is the first 12 hex digits of the SHA-256 of the slide's absolute path, so two slides
with the same name in different folders do not collide. (The data folder is ``$MEDVIEWER_HOME/data``
when that is set, else the platform's, e.g. ``~/.local/share/medviewer`` on Linux.)

On open, the newer of the two files that exist is read. A file that does not parse is never
overwritten: it is renamed ``<name>.corrupt-<YYYYmmdd-HHMMSS>`` beside itself, and a sentence naming
both files is returned for the window to show; the next older file, if any, is read instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from medviewer.annotations.geojson import read_geojson
from medviewer.annotations.model import Annotation
from medviewer.core import app_dirs
from medviewer.core.errors import MedviewerError
from medviewer.core.logs import safe_path
from medviewer.io.atomic_write import rename_aside

log = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".annotations.geojson"
STALE_TEMPORARY_S = 300.0  # a temporary file older than this belongs to a save that was killed


@dataclass
class LoadedSidecar:
    #: Where the autosaver should write from now on.
    path: Path
    annotations: list[Annotation]
    #: Sentences for the window, each naming the file concerned (empty when all went well).
    problems: list[str] = field(default_factory=list)


def beside_slide(slide_path: str | Path) -> Path:
    slide = Path(slide_path)
    return slide.with_name(slide.name + SIDECAR_SUFFIX)


def in_user_data(slide_path: str | Path) -> Path:
    slide = Path(slide_path).expanduser().absolute()
    digest = hashlib.sha256(str(slide).encode("utf-8")).hexdigest()[:12]
    folder = app_dirs.data_dir() / "annotations"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{slide.name}-{digest}{SIDECAR_SUFFIX}"


def load_sidecar(slide_path: str | Path) -> LoadedSidecar:
    """The slide's saved annotations (none if it has none yet) and where to save them."""
    candidates = [beside_slide(slide_path), in_user_data(slide_path)]
    for candidate in candidates:
        remove_stale_temporaries(candidate)
    existing = sorted((p for p in candidates if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
    problems: list[str] = []
    unusable: set[Path] = set()
    annotations: list[Annotation] = []
    for path in existing:
        try:
            annotations = read_geojson(path)
            break
        except MedviewerError as error:
            problems.append(_set_aside(path, error.reason, unusable))
    folder_writable = os.access(candidates[0].parent, os.W_OK | os.X_OK)
    save_to = candidates[0] if folder_writable and candidates[0] not in unusable else candidates[1]
    if save_to in unusable:
        raise MedviewerError(save_to, "the saved annotations are damaged and cannot be moved aside")
    return LoadedSidecar(save_to, annotations, problems)


def remove_stale_temporaries(path: Path, older_than_s: float = STALE_TEMPORARY_S) -> None:
    """Delete temporary files a save killed mid-write left beside ``path`` (see ``atomic_write``); only old
    ones, since another medviewer may be saving this very slide at this moment."""
    now = time.time()
    for temporary in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if now - temporary.stat().st_mtime > older_than_s:
                temporary.unlink()
        except OSError:
            pass  # gone already, or not ours to delete: it is never read either way


def _set_aside(path: Path, reason: str, unusable: set[Path]) -> str:
    """Keep a damaged file under a new name; if it cannot be renamed, mark it never to be written."""
    try:
        backup = rename_aside(path, "corrupt")
    except OSError:
        unusable.add(path)
        log.warning("damaged annotation file %s could not be renamed", safe_path(path))
        return f"{path}: the saved annotations could not be read ({reason}); the file is left as it is"
    log.warning("damaged annotation file %s kept as a backup", safe_path(path))
    return f"{path}: the saved annotations could not be read ({reason}); the file was kept as {backup.name}"
