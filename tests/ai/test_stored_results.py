"""Kept AI results read back exactly as they were computed, and a damaged or planted file is refused."""

from __future__ import annotations

import io
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
        ),
        StoredResult("volume", VolumeResult(("bleed", "fracture"), np.array([0.3, 0.7]), INFO), "sigmoid", True),
        StoredResult("slide", _slide_result(), "softmax", False),
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
    path = save_result(StoredResult("volume", VolumeResult(CLASSES, np.array([0.5, 0.5]), INFO), "softmax", False))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptFileError) as damaged:
        load_result(path)
    assert path.name in str(damaged.value)
    planted = tmp_path / "planted.npz"
    buffer = io.BytesIO()
    np.savez(buffer, header=np.array([{"format": "medviewer-ai-result"}], dtype=object))
    planted.write_bytes(buffer.getvalue())
    with pytest.raises(CorruptFileError):  # an object array would need pickle, which is never allowed
        load_result(planted)
