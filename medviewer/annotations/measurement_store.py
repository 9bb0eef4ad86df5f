"""Where the measurements made on a volume are kept between sessions, so that switching series or quitting
loses none of them.

One JSON file per series in medviewer's data folder, ``<data folder>/measurements/<digest>.measurements.json``
(the data folder is ``$MEDVIEWER_HOME/data`` when that is set, else the platform's, e.g.
``~/.local/share/medviewer``). The digest is the SHA-256 of what names the series: its SeriesInstanceUID
and stack key for DICOM, the resolved file path for NIfTI. A UID or a folder name can identify a
patient, so neither is written in the file name or the file, and neither is logged.

The file holds what redraws each measurement exactly (kind, plane, slice index, points in display
millimetres; the values are recomputed from the voxels) and the grid it was made on (shape, spacing,
origin, direction). Display millimetres only mean the same place on the same grid, so measurements
saved on another grid (the series re-read with fewer files, a different reader version) are never
drawn: the file is set aside and the window says so. A file that does not parse is set aside too
(``<name>.corrupt-<date>-<time>``); one that cannot be moved, or that a newer medviewer wrote, is left as
it is and never written over. Every save replaces the whole file atomically (``atomic_write``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.annotations.sidecar import remove_stale_temporaries
from medviewer.core import app_dirs, mpr
from medviewer.core.logs import safe_path
from medviewer.core.measurements import Measurement, is_finite_number
from medviewer.core.volume import Volume
from medviewer.io.atomic_write import rename_aside, write_atomic

log = logging.getLogger(__name__)

FOLDER_NAME = "measurements"
SUFFIX = ".measurements.json"
FORMAT_NAME = "medviewer-measurements"
FORMAT_VERSION = 1
#: Grids closer than this are the same: JSON keeps floats exactly, so only a re-read that rounds
#: positions differently (another reader version) shows any difference at all.
POSITION_TOLERANCE_MM = 1e-4
DIRECTION_TOLERANCE = 1e-6
NOT_KEPT = "measurements made now are not kept"


class DamagedFileError(ValueError):
    """The file's content is not a measurement file this version can read (the message says why)."""


class NewerFormatError(ValueError):
    """A newer medviewer wrote the file: reading what this version understands and saving would lose the rest."""


@dataclass(frozen=True)
class Grid:
    """The voxel grid measurements were made on: the same display millimetres are the same place only on it."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[tuple[float, float, float], ...]

    @classmethod
    def of(cls, volume: Volume) -> Grid:
        (z, y, x), (sx, sy, sz), (ox, oy, oz) = volume.shape, volume.spacing, volume.origin
        rows = np.asarray(volume.direction, dtype=float).tolist()
        return cls(
            (int(z), int(y), int(x)),
            (float(sx), float(sy), float(sz)),
            (float(ox), float(oy), float(oz)),
            tuple((row[0], row[1], row[2]) for row in rows),
        )

    def matches(self, other: Grid) -> bool:
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, rtol=0, atol=POSITION_TOLERANCE_MM)
            and np.allclose(self.origin, other.origin, rtol=0, atol=POSITION_TOLERANCE_MM)
            and np.allclose(self.direction, other.direction, rtol=0, atol=DIRECTION_TOLERANCE)
        )

    def describe(self) -> str:
        """Short enough for the message strip; the direction only when it is not the usual axes."""
        z, y, x = self.shape
        spacing = " x ".join(f"{s:.4g}" for s in self.spacing)
        origin = ", ".join(f"{o:.2f}" for o in self.origin)
        text = f"{x} x {y} x {z} voxels of {spacing} mm at ({origin}) mm"
        if not np.allclose(self.direction, np.eye(3), atol=DIRECTION_TOLERANCE):
            text += " in an oblique orientation"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": [list(row) for row in self.direction],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Grid:
        """Raises DamagedFileError saying which field is wrong."""
        if not isinstance(data, dict):
            raise DamagedFileError("its grid is not an object")
        shape = _numbers(data.get("shape"), "shape", whole=True)
        spacing = _numbers(data.get("spacing"), "spacing")
        origin = _numbers(data.get("origin"), "origin")
        rows = data.get("direction")
        if not isinstance(rows, list) or len(rows) != 3:
            raise DamagedFileError("its grid's direction is not 3 rows of 3 numbers")
        direction = tuple((r[0], r[1], r[2]) for r in (_numbers(row, "direction row") for row in rows))
        if min(shape) < 1 or min(spacing) <= 0:
            raise DamagedFileError("its grid has an empty shape or a spacing that is not positive")
        return cls(
            (int(shape[0]), int(shape[1]), int(shape[2])),
            (spacing[0], spacing[1], spacing[2]),
            (origin[0], origin[1], origin[2]),
            direction,
        )


def _numbers(values: Any, name: str, whole: bool = False) -> list[float]:
    """Three finite numbers of a stored grid (whole ones for the shape), or DamagedFileError naming the field."""
    if (
        not isinstance(values, list)
        or len(values) != 3
        or not all(is_finite_number(v) and (isinstance(v, int) or not whole) for v in values)
    ):
        raise DamagedFileError(f"its grid's {name} is not 3 {'whole ' if whole else ''}numbers")
    return [float(v) for v in values]


def series_identity(volume: Volume, opened_path: Path) -> str:
    """What names the series across sessions: SeriesInstanceUID and stack key for DICOM (a series may hold
    several stacks), else the resolved path of the file that was opened (NIfTI has no UID)."""
    series_uid = volume.metadata.get("series_uid")
    if series_uid:
        return f"dicom-series:{series_uid}|stack:{volume.metadata.get('stack_key') or series_uid}"
    return f"file:{Path(opened_path).expanduser().resolve()}"


def sidecar_path(identity: str) -> Path:
    """The file for ``series_identity(...)``: a digest, so the name says nothing about whose series it is."""
    digest = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:32]
    return app_dirs.data_dir() / FOLDER_NAME / f"{digest}{SUFFIX}"


@dataclass(frozen=True)
class MeasurementSidecar:
    """Where one series' measurements are saved, and the grid they are made on."""

    path: Path
    grid: Grid

    def save(self, measurements: Sequence[Measurement]) -> None:
        """Replace the file with ``measurements`` (an empty list too: a deletion is a change to keep).

        Raises OSError when the file cannot be written; what was saved before is then left intact."""
        document = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "grid": self.grid.to_dict(),
            "measurements": [m.to_dict() for m in measurements],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, (json.dumps(document, indent=1) + "\n").encode("utf-8"))


@dataclass
class LoadedMeasurements:
    #: Where to save from now on; None when saving could destroy a file that was kept (see ``problems``).
    sidecar: MeasurementSidecar | None
    measurements: list[Measurement]
    #: Sentences for the window, each naming the file concerned (empty when all went well).
    problems: list[str] = field(default_factory=list)


def load_measurements(volume: Volume, identity: str) -> LoadedMeasurements:
    """The measurements kept for the series ``identity`` names, if they fit ``volume``'s grid; never raises."""
    grid = Grid.of(volume)
    try:
        path = sidecar_path(identity)
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        where = error.filename or "medviewer's data folder"
        reason = error.strerror or type(error).__name__
        return LoadedMeasurements(
            None, [], [f"{where}: the folder for measurements cannot be made ({reason}); {NOT_KEPT}"]
        )
    sidecar = MeasurementSidecar(path, grid)
    remove_stale_temporaries(path)
    if not path.exists():
        return LoadedMeasurements(sidecar, [])
    try:
        saved_grid, measurements = read_measurement_file(path)
    except OSError as error:
        log.warning("measurement file %s could not be read", safe_path(path))
        return LoadedMeasurements(
            None,
            [],
            [
                f"{path}: the measurements saved for this series could not be read "
                f"({error.strerror or type(error).__name__}); the file is left as it is and {NOT_KEPT}"
            ],
        )
    except NewerFormatError as error:
        return LoadedMeasurements(None, [], [f"{path}: {error}; the file is left as it is and {NOT_KEPT}"])
    except DamagedFileError as error:
        problem = f"{path}: the measurements saved for this series could not be read ({error})"
        return _set_aside(sidecar, "corrupt", problem)
    if not saved_grid.matches(grid):
        problem = (
            f"{path}: {len(measurements)} measurement(s) saved for this series were made on another grid "
            f"({saved_grid.describe()}; the series now has {grid.describe()}), so they would be drawn in the "
            "wrong place and are not shown"
        )
        return _set_aside(sidecar, "other-grid", problem)
    outside = [m for m in measurements if m.slice_index >= mpr.slice_count(grid.shape, m.plane)]
    if outside:
        problem = (
            f"{path}: the measurements saved for this series could not be read (a {outside[0].kind.value} lies on "
            f"{outside[0].plane.value} slice {outside[0].slice_index + 1}, beyond the "
            f"{mpr.slice_count(grid.shape, outside[0].plane)} slices of the series)"
        )
        return _set_aside(sidecar, "corrupt", problem)
    return LoadedMeasurements(sidecar, measurements)


def read_measurement_file(path: Path) -> tuple[Grid, list[Measurement]]:
    """The grid and measurements in a file; DamagedFileError or NewerFormatError say what is wrong; OSError."""
    raw = path.read_bytes()
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise DamagedFileError(f"it is not UTF-8 text (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise DamagedFileError(
            f"it is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise DamagedFileError(f'it is not a medviewer measurement file (no "format": "{FORMAT_NAME}")')
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DamagedFileError(f"its format version {reprlib.repr(version)} is not a whole number of at least 1")
    if version > FORMAT_VERSION:
        raise NewerFormatError(
            f"the measurements were saved by a newer medviewer (format version {version}; this one reads up to "
            f"{FORMAT_VERSION})"
        )
    grid = Grid.from_dict(document.get("grid"))
    items = document.get("measurements")
    if not isinstance(items, list):
        raise DamagedFileError('its "measurements" is not a list')
    measurements = []
    for number, item in enumerate(items, start=1):
        try:
            measurements.append(Measurement.from_dict(item))
        except ValueError as error:
            raise DamagedFileError(f"measurement {number}: {error}") from None
    return grid, measurements


def _set_aside(sidecar: MeasurementSidecar, tag: str, problem: str) -> LoadedMeasurements:
    """Keep an unusable file under a new name and start afresh; if it cannot be renamed, never write over it."""
    path = sidecar.path
    try:
        backup = rename_aside(path, tag)
    except OSError as error:
        log.warning("measurement file %s could not be set aside", safe_path(path))
        reason = error.strerror or type(error).__name__
        return LoadedMeasurements(
            None,
            [],
            [f"{problem}; the file could not be renamed ({reason}), so it is left as it is and {NOT_KEPT}"],
        )
    log.warning("measurement file %s set aside (%s)", safe_path(path), tag)
    return LoadedMeasurements(sidecar, [], [f"{problem}; the file was kept as {backup.name}"])
