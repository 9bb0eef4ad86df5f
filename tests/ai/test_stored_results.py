"""Kept AI results read back exactly as they were computed, and a damaged or planted file is refused."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from medviewer.ai.inference import RunInfo, SliceResult, VolumeResult
from medviewer.ai.slide_run import PatchGrid, SlideResult
from medviewer.ai.stored_results import StoredResult, load_result, results_folder, save_result
from medviewer.core.errors import CorruptFileError, MedviewerError

INFO = RunInfo("demo", "1.0.0", "ab" * 32, "cpu", "float32", 1.25, 16, ("batch halved once",))
CLASSES = ("normal", "tumour")


def _slide_result() -> SlideResult:
    tissue = np.array([[True, False, True], [True, True, False]])
    probabilities = np.full((2, 3, 2), np.nan, dtype=np.float32)
    probabilities[tissue] = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.05, 0.95]]
    grid = PatchGrid((128.0, 64.0), (256.0, 256.0), 2, 3, 1, (64, 64), tissue)
    return SlideResult(grid, CLASSES, probabilities, INFO)


@pytest.mark.parametrize(
    "stored",
    [
        StoredResult(
            "slices",
            SliceResult((3, 4, 9), CLASSES, np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]]), INFO),
            "softmax",
            False,
            (10, 64, 64),
        ),
        StoredResult(
            "volume", VolumeResult(("bleed", "fracture"), np.array([0.3, 0.7]), INFO), "sigmoid", True, (10, 64, 64)
        ),
        StoredResult("slide", _slide_result(), "softmax", False, (900, 600)),
    ],
    ids=["slices", "volume", "slide"],
)
def test_a_kept_result_reads_back_as_it_was(stored: StoredResult):
    path = save_result(stored)
    assert path.parent == results_folder() and path.suffix == ".npz"
    again = load_result(path)
    assert (again.kind, again.activation, again.diagnostic_use) == (
        stored.kind,
        stored.activation,
        stored.diagnostic_use,
    )
    assert again.result.info == INFO and again.result.classes == stored.result.classes
    np.testing.assert_array_equal(again.result.probabilities, np.asarray(stored.result.probabilities, np.float32))
    if stored.kind == "slices":
        assert again.result.indices == (3, 4, 9)
    if stored.kind == "slide":
        grid, original = again.result.grid, stored.result.grid
        assert (grid.origin, grid.patch_size_level0, grid.rows, grid.columns, grid.level, grid.read_size) == (
            original.origin,
            original.patch_size_level0,
            original.rows,
            original.columns,
            original.level,
            original.read_size,
        )
        np.testing.assert_array_equal(grid.tissue, original.tissue)
        assert again.result.patch_at(128 + 300, 64 + 10) == (0, 1)


def test_missing_damaged_and_pickled_files_are_refused_naming_them(tmp_path: Path):
    with pytest.raises(MedviewerError, match="missing") as missing:
        load_result(tmp_path / "gone.npz")
    assert "gone.npz" in str(missing.value)
    path = save_result(StoredResult("slide", _slide_result(), "softmax", False, (900, 600)))
    whole = path.read_bytes()
    rng = np.random.default_rng(0)
    for _ in range(200):  # flipped bytes anywhere: read as before, or refused as damaged, never another error
        damaged = bytearray(whole)
        for position in rng.integers(0, len(whole), 3):
            damaged[position] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(damaged))
        try:
            load_result(path)
        except CorruptFileError as exc:
            assert path.name in str(exc)
    path.write_bytes(whole[:100])
    with pytest.raises(CorruptFileError) as damaged:
        load_result(path)
    assert path.name in str(damaged.value)
    planted = tmp_path / "planted.npz"
    buffer = io.BytesIO()
    np.savez(buffer, header=np.array([{"format": "medviewer-ai-result"}], dtype=object))
    planted.write_bytes(buffer.getvalue())
    with pytest.raises(CorruptFileError):  # an object array would need pickle, which is never allowed
        load_result(planted)


def _written(path: Path, header: dict, **arrays: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.savez(buffer, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
    path.write_bytes(buffer.getvalue())
    return path


@pytest.mark.parametrize(
    ("kind", "arrays"),
    [
        ("slices", {"probabilities": np.zeros((0, 2)), "indices": np.zeros(0, np.int64)}),  # no slices
        ("slices", {"probabilities": np.zeros((2, 2)), "indices": np.array([1, 2, 3])}),  # more slices than rows
        ("slices", {"probabilities": np.zeros((1, 2)), "indices": np.array([-4])}),  # a slice before the first
        ("volume", {"probabilities": np.zeros((2, 2))}),  # a volume result is one row
        ("slide", {"probabilities": np.zeros((2, 2)), "tissue": np.ones((2, 2), bool)}),  # not a grid
    ],
)
def test_a_result_whose_numbers_do_not_add_up_is_refused(kind: str, arrays: dict, tmp_path: Path):
    info = {**INFO.__dict__, "notes": list(INFO.notes)}
    header = {
        "format": "medviewer-ai-result",
        "version": 1,
        "kind": kind,
        "classes": list(CLASSES),
        "activation": "softmax",
        "diagnostic_use": False,
        "image_shape": [2, 2],
        "info": info,
        "grid": {
            "origin": [0, 0],
            "patch_size_level0": [1, 1],
            "rows": 2,
            "columns": 2,
            "level": 0,
            "read_size": [1, 1],
        },
    }
    with pytest.raises(CorruptFileError):
        load_result(_written(tmp_path / "odd.npz", header, **arrays))
