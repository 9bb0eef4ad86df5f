"""Measurements kept per series in the data folder: what is stored, how a series is named, and every way a
kept file can be unusable (damaged, another grid, a newer format, impossible to move aside)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from medviewer.annotations.measurement_store import (
    Grid,
    load_measurements,
    read_measurement_file,
    series_identity,
    sidecar_path,
)
from medviewer.core.logs import setup_logging
from medviewer.core.measurements import Measurement, MeasurementKind, distance_mm
from medviewer.core.mpr import Plane
from medviewer.core.volume import Volume

SERIES_UID = "1.2.826.0.1.3680043.2.1125.77.1"


def ct_volume(origin: tuple[float, float, float] = (-100.0, -120.0, 30.0), stack: str = SERIES_UID) -> Volume:
    return Volume(
        np.zeros((12, 40, 50), np.int16),
        spacing=(0.7, 0.7, 2.5),
        origin=origin,
        modality="CT",
        metadata={"source": "dicom", "series_uid": SERIES_UID, "stack_key": stack},
    )


MEASUREMENTS = [
    Measurement(MeasurementKind.DISTANCE, Plane.AXIAL, 5, [(3.25, 4.0), (20.125, 11.5)]),
    Measurement(MeasurementKind.ANGLE, Plane.CORONAL, 17, [(1.0, 2.0), (5.0, 5.0), (9.0, 2.0)]),
    Measurement(MeasurementKind.ELLIPSE, Plane.SAGITTAL, 49, [(2.0, 3.0), (8.0, 12.0)]),
    Measurement(MeasurementKind.RECTANGLE, Plane.AXIAL, 0, [(0.1, 0.2), (0.30000000000000004, 7.7)]),
]


def saved(volume: Volume, measurements: list[Measurement]) -> Path:
    loaded = load_measurements(volume, series_identity(volume, Path("unused")))
    loaded.sidecar.save(measurements)
    return loaded.sidecar.path


def test_measurements_come_back_exactly_from_the_data_folder_under_a_name_that_says_nothing(medviewer_home: Path):
    volume = ct_volume()
    path = saved(volume, MEASUREMENTS)
    assert path.parent == medviewer_home / "data" / "measurements"
    assert path.name.endswith(".measurements.json")
    assert SERIES_UID not in path.name and SERIES_UID not in path.read_text()
    again = load_measurements(volume, series_identity(volume, Path("unused")))
    assert again.problems == [] and again.sidecar.path == path
    assert again.measurements == MEASUREMENTS  # floats survive JSON bit for bit
    assert distance_mm(volume, again.measurements[0]) == distance_mm(volume, MEASUREMENTS[0])
    stored = json.loads(path.read_text())
    assert stored["grid"] == {
        "shape": [12, 40, 50],
        "spacing": [0.7, 0.7, 2.5],
        "origin": [-100.0, -120.0, 30.0],
        "direction": [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
    }
    assert stored["measurements"][0] == {
        "kind": "distance",
        "plane": "axial",
        "slice_index": 5,
        "points": [[3.25, 4.0], [20.125, 11.5]],
    }


def test_deleting_the_last_measurement_is_kept_too():
    volume = ct_volume()
    path = saved(volume, MEASUREMENTS)
    load_measurements(volume, series_identity(volume, Path("unused"))).sidecar.save([])
    assert load_measurements(volume, series_identity(volume, Path("unused"))).measurements == []
    assert path.is_file()


def test_a_series_is_named_by_uid_and_stack_and_a_nifti_by_its_resolved_path(tmp_path: Path):
    first, second = ct_volume(stack=SERIES_UID + "#1"), ct_volume(stack=SERIES_UID + "#2")
    assert sidecar_path(series_identity(first, tmp_path / "a")) != sidecar_path(series_identity(second, tmp_path / "a"))
    # the same series opened from another folder (or the catalog) is the same series
    assert series_identity(first, tmp_path / "a") == series_identity(first, tmp_path / "b")
    nifti = Volume(np.zeros((2, 3, 4)), (1, 1, 1), (0, 0, 0), metadata={"source": "nifti"})
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "brain.nii.gz"
    target.write_bytes(b"")
    (tmp_path / "link.nii.gz").symlink_to(target)
    assert series_identity(nifti, tmp_path / "link.nii.gz") == series_identity(nifti, target)
    assert series_identity(nifti, target) != series_identity(nifti, tmp_path / "other.nii.gz")


def test_measurements_made_on_another_grid_are_not_drawn_and_their_file_is_kept_aside(caplog):
    setup_logging()
    path = saved(ct_volume(), MEASUREMENTS)
    original = path.read_bytes()
    moved = ct_volume(origin=(-100.0, -120.0, 32.5))  # the series read again with its first slice missing
    with caplog.at_level(logging.WARNING):
        loaded = load_measurements(moved, series_identity(moved, Path("unused")))
    assert loaded.measurements == []
    (problem,) = loaded.problems
    assert problem.startswith(f"{path}: 4 measurement(s) saved for this series were made on another grid")
    assert "(-100.00, -120.00, 30.00)" in problem and "(-100.00, -120.00, 32.50)" in problem
    backups = list(path.parent.glob(path.name + ".other-grid-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == original and backups[0].name in problem
    # new measurements on this grid start a new file; the old ones stay in the backup
    assert loaded.sidecar.path == path and not path.exists()
    assert SERIES_UID not in caplog.text and str(path) not in caplog.text


def test_a_grid_within_rounding_is_the_same_grid():
    path = saved(ct_volume(), MEASUREMENTS)
    volume = ct_volume(origin=(-100.0 + 1e-6, -120.0, 30.0))
    loaded = load_measurements(volume, series_identity(volume, Path("unused")))
    assert loaded.measurements == MEASUREMENTS and loaded.problems == [] and path.is_file()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"format": "medviewer-measurements", "version": 1, "grid"', "it is not valid JSON: "),
        (b"\xff\xfe{}", "it is not UTF-8 text"),
        (b"[1, 2]", 'it is not a medviewer measurement file (no "format": "medviewer-measurements")'),
        (b'{"format": "medviewer-measurements", "version": "one"}', "its format version 'one' is not a whole number"),
    ],
)
def test_a_file_that_does_not_parse_is_kept_aside_and_reported(content: bytes, reason: str):
    volume = ct_volume()
    path = sidecar_path(series_identity(volume, Path("unused")))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    loaded = load_measurements(volume, series_identity(volume, Path("unused")))
    (problem,) = loaded.problems
    assert problem.startswith(f"{path}: the measurements saved for this series could not be read ({reason}")
    (backup,) = path.parent.glob(path.name + ".corrupt-*")
    assert backup.read_bytes() == content and f"the file was kept as {backup.name}" in problem
    assert loaded.measurements == [] and loaded.sidecar.path == path
    loaded.sidecar.save(MEASUREMENTS[:1])  # what is measured now goes to a fresh file
    assert read_measurement_file(path)[1] == MEASUREMENTS[:1] and backup.read_bytes() == content


def damaged(change: dict) -> dict:
    document = {
        "format": "medviewer-measurements",
        "version": 1,
        "grid": Grid.of(ct_volume()).to_dict(),
        "measurements": [m.to_dict() for m in MEASUREMENTS],
    }
    document.update(change)
    return document


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (damaged({"grid": None}), "its grid is not an object"),
        (damaged({"grid": {**Grid.of(ct_volume()).to_dict(), "shape": [12, 40.5, 50]}}), "its grid's shape is not 3"),
        (damaged({"grid": {**Grid.of(ct_volume()).to_dict(), "spacing": [0.7, 0, 2.5]}}), "spacing that is not"),
        (damaged({"grid": {**Grid.of(ct_volume()).to_dict(), "direction": [[1, 0, 0]]}}), "direction is not 3 rows"),
        (damaged({"measurements": {}}), 'its "measurements" is not a list'),
        (damaged({"measurements": [{"kind": "circle"}]}), "measurement 1: unknown measurement kind 'circle'"),
        (
            damaged({"measurements": [{"kind": "angle", "plane": "axial", "slice_index": 0, "points": [[0, 0]]}]}),
            "measurement 1: a angle needs a list of 3 points, not 1",
        ),
        (
            damaged(
                {
                    "measurements": [
                        {"kind": "distance", "plane": "axial", "slice_index": 0, "points": [[0, 0], [0, 1e999]]}
                    ]
                }
            ),
            "measurement 1: the point [0, inf] is not two finite numbers",
        ),
        (
            damaged(
                {
                    "measurements": [
                        {"kind": "distance", "plane": "axial", "slice_index": 0, "points": [[0, 0], [True, 1]]}
                    ]
                }
            ),
            "is not two finite numbers",
        ),
        (
            damaged(
                {
                    "measurements": [
                        {"kind": "distance", "plane": "axial", "slice_index": 0, "points": [[0, 0], [10**400, 1]]}
                    ]
                }
            ),
            "is not two finite numbers",
        ),
        (
            damaged(
                {
                    "measurements": [
                        {"kind": "distance", "plane": "coronal", "slice_index": -1, "points": [[0, 0], [1, 1]]}
                    ]
                }
            ),
            "the slice index -1 is not a whole number of at least 0",
        ),
        (
            damaged(
                {
                    "measurements": [
                        {"kind": "distance", "plane": "coronal", "slice_index": 40, "points": [[0, 0], [1, 1]]}
                    ]
                }
            ),
            "a distance lies on coronal slice 41, beyond the 40 slices of the series",
        ),
    ],
)
def test_content_that_cannot_be_measurements_is_kept_aside_naming_what_is_wrong(document: dict, reason: str):
    volume = ct_volume()
    path = sidecar_path(series_identity(volume, Path("unused")))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))
    loaded = load_measurements(volume, series_identity(volume, Path("unused")))
    (problem,) = loaded.problems
    assert problem.startswith(f"{path}: the measurements saved for this series could not be read (")
    assert reason in problem
    assert loaded.measurements == [] and loaded.sidecar is not None
    assert len(list(path.parent.glob(path.name + ".corrupt-*"))) == 1


def test_a_file_from_a_newer_medviewer_is_left_alone_and_never_written_over():
    volume = ct_volume()
    path = sidecar_path(series_identity(volume, Path("unused")))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(damaged({"version": 2})))
    before = path.read_bytes()
    loaded = load_measurements(volume, series_identity(volume, Path("unused")))
    assert loaded.sidecar is None and loaded.measurements == []
    assert loaded.problems == [
        f"{path}: the measurements were saved by a newer medviewer (format version 2; this one reads up to 1); "
        "the file is left as it is and measurements made now are not kept"
    ]
    assert path.read_bytes() == before and not list(path.parent.glob(path.name + ".corrupt-*"))


def test_a_damaged_file_that_cannot_be_moved_is_never_written_over(monkeypatch: pytest.MonkeyPatch):
    volume = ct_volume()
    path = sidecar_path(series_identity(volume, Path("unused")))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"{broken")

    def refuse(source: object, target: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("os.rename", refuse)
    loaded = load_measurements(volume, series_identity(volume, Path("unused")))
    assert loaded.sidecar is None and loaded.measurements == []
    (problem,) = loaded.problems
    assert problem.startswith(f"{path}: the measurements saved for this series could not be read (it is not valid JSON")
    assert problem.endswith(
        "the file could not be renamed (Permission denied), so it is left as it is and measurements made now are "
        "not kept"
    )
    assert path.read_bytes() == b"{broken"


def test_an_unreadable_file_is_reported_and_left_alone(monkeypatch: pytest.MonkeyPatch):
    volume = ct_volume()
    path = saved(volume, MEASUREMENTS)
    before = path.read_bytes()

    def unreadable(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", unreadable)
    loaded = load_measurements(volume, series_identity(volume, Path("unused")))
    monkeypatch.undo()
    assert loaded.sidecar is None
    assert loaded.problems == [
        f"{path}: the measurements saved for this series could not be read (Permission denied); the file is left "
        "as it is and measurements made now are not kept"
    ]
    assert path.read_bytes() == before


def test_a_save_that_fails_leaves_the_previous_save_whole(monkeypatch: pytest.MonkeyPatch):
    volume = ct_volume()
    path = saved(volume, MEASUREMENTS)
    before = path.read_bytes()
    sidecar = load_measurements(volume, series_identity(volume, Path("unused"))).sidecar

    def full_disk(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        sidecar.save(MEASUREMENTS[:1])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_temporary_files_of_a_killed_save_are_removed_when_the_series_is_opened():
    volume = ct_volume()
    path = saved(volume, MEASUREMENTS)
    stray = path.parent / f".{path.name}.0123456789ab.tmp"
    stray.write_bytes(b"half a save")
    os.utime(stray, (1_000_000, 1_000_000))
    assert load_measurements(volume, series_identity(volume, Path("unused"))).measurements == MEASUREMENTS
    assert not stray.exists()


def test_a_measurement_survives_to_dict_and_from_dict_and_bad_input_is_named():
    for measurement in MEASUREMENTS:
        assert Measurement.from_dict(json.loads(json.dumps(measurement.to_dict()))) == measurement
    with pytest.raises(ValueError, match="a measurement must be an object, not list"):
        Measurement.from_dict([])
    with pytest.raises(ValueError, match=r"unknown plane \['axial'\]"):
        Measurement.from_dict({"kind": "distance", "plane": ["axial"], "slice_index": 0, "points": []})
    with pytest.raises(ValueError, match="the slice index True is not a whole number"):
        Measurement.from_dict({"kind": "distance", "plane": "axial", "slice_index": True, "points": []})
    with pytest.raises(ValueError, match="a rectangle needs a list of 2 points, not a dict"):
        Measurement.from_dict({"kind": "rectangle", "plane": "axial", "slice_index": 0, "points": {}})
