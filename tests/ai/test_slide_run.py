"""Slide runs on real slides: the patch grid at the model's MPP, the overlapped run, cancel, bad models, exports."""

from __future__ import annotations

import csv
import dataclasses
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from medviewer.ai import saliency
from medviewer.ai.inference import Cancelled, InferenceError
from medviewer.ai.package import LoadedModel
from medviewer.ai.slide_run import (
    PRODUCER_THREAD_NAME,
    PatchGrid,
    SlideResult,
    SlideRunError,
    class_colour,
    patch_grid,
    patch_input,
    run_slide,
    write_csv,
    write_geojson,
)
from medviewer.annotations import read_geojson
from medviewer.core.tissue import tissue_mask
from medviewer.io.slide import Slide
from tests.support.models_for_tests import TinyVolumeNet, load_scripted, metadata
from tests.support.patch_models import CLASSES, RaisingNet, ThreeOutputNet, load_patch_model
from tests.support.paths import real_file

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

CMU = "wsi/CMU-1-Small-Region.svs"  # 2220 x 2967 pixels at 0.499 µm, one level
NO_MPP = "wsi/tcga-cr-7395-01a-01-ts1.svs"  # 4443 x 3567, two levels, records no pixel size
PATCH = 64 * 1.0 / 0.499  # a 64-pixel input at 1 µm per pixel, in CMU-1's level-0 pixels


@pytest.fixture
def cmu() -> Iterator[Slide]:
    with Slide(real_file(CMU)) as slide:
        yield slide


@pytest.fixture
def redness(tmp_path: Path) -> LoadedModel:
    return load_patch_model(tmp_path / "redness")


@pytest.fixture
def result(redness: LoadedModel, cmu: Slide) -> SlideResult:
    return run_slide(redness, cmu, patch_grid(cmu, redness.package.spec), batch_size=16)


def producers_alive() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(PRODUCER_THREAD_NAME)]


# The grid ------------------------------------------------------------------------------------------------


def test_grid_cuts_patches_at_the_models_mpp_and_covers_the_slide(redness: LoadedModel, cmu: Slide):
    grid = patch_grid(cmu, redness.package.spec)
    assert grid.patch_size_level0 == pytest.approx((PATCH, PATCH))
    assert (grid.origin, grid.level, grid.read_size) == ((0.0, 0.0), 0, (128, 128))
    width, height = cmu.dimensions
    assert (grid.columns - 1) * PATCH < width <= grid.columns * PATCH  # covers the slide, no column to spare
    assert (grid.rows - 1) * PATCH < height <= grid.rows * PATCH
    assert grid.tissue.shape == (grid.rows, grid.columns) and grid.tissue.dtype == bool
    # CMU-1's small region is a strip of skin on glass: about a third of its thumbnail is tissue.
    on_thumbnail = tissue_mask(cmu.thumbnail(512)).mean()
    assert 0.2 < on_thumbnail < 0.5
    assert grid.tissue.mean() == pytest.approx(on_thumbnail, abs=0.1)
    assert grid.tissue[15, 9] and not grid.tissue[0, 0] and not grid.tissue[-1, -1]  # mid-strip; glass corners
    assert not grid.tissue[0].any() and not grid.tissue[:, 0].any()


def test_min_tissue_trades_coverage_for_purity(redness: LoadedModel, cmu: Slide):
    spec = redness.package.spec
    loose, default, strict = (patch_grid(cmu, spec, min_tissue=m).tissue for m in (0.01, 0.25, 0.9))
    assert loose.sum() > default.sum() > strict.sum() > 0
    assert not (strict & ~default).any() and not (default & ~loose).any()
    assert patch_grid(cmu, spec, min_tissue=0.0).tissue.all()
    with pytest.raises(ValueError):
        patch_grid(cmu, spec, min_tissue=1.5)


def test_region_restricts_the_grid(redness: LoadedModel, cmu: Slide):
    spec = redness.package.spec
    region = (800.0, 1500.0, 600.0, 400.0)  # inside the tissue strip
    grid = patch_grid(cmu, spec, region=region)
    assert grid.origin == (800.0, 1500.0)
    assert (grid.columns, grid.rows) == (5, 4)  # 600 / 128.3 -> 4.7, 400 / 128.3 -> 3.1: covered, not cut short
    assert grid.tissue.mean() > 0.5
    full = patch_grid(cmu, spec)
    assert grid.tissue.sum() < full.tissue.sum()
    # A region reaching past the slide is cut to it; one wholly off it is refused, naming the slide.
    edge = patch_grid(cmu, spec, region=(2000.0, -100.0, 1000.0, 300.0))
    assert edge.origin == (2000.0, 0.0) and (edge.columns, edge.rows) == (2, 2)
    with pytest.raises(SlideRunError, match="does not overlap") as caught:
        patch_grid(cmu, spec, region=(5000.0, 0.0, 100.0, 100.0))
    assert caught.value.path.name == "CMU-1-Small-Region.svs"


def test_slide_without_pixel_size_is_refused_clearly(redness: LoadedModel):
    with Slide(real_file(NO_MPP)) as slide, pytest.raises(SlideRunError, match="pixel size") as caught:
        patch_grid(slide, redness.package.spec)
    assert caught.value.path.name == "tcga-cr-7395-01a-01-ts1.svs"
    assert "slide_patch" in str(caught.value)


def test_patches_are_read_at_the_coarsest_level_fine_enough(redness: LoadedModel, monkeypatch: pytest.MonkeyPatch):
    """At 0.25 µm per pixel a 1 µm model needs a 4x reduction: level 1 (2x) is read, then shrunk 2x."""
    monkeypatch.setattr(Slide, "mpp", property(lambda self: 0.25))
    with Slide(real_file(NO_MPP)) as slide:
        grid = patch_grid(slide, redness.package.spec)
        assert slide.level_downsamples[1] == pytest.approx(2.0, abs=0.01)
        assert (grid.level, grid.read_size, grid.patch_size_level0) == (1, (128, 128), (256.0, 256.0))
        x = patch_input(slide, grid, *grid.tissue_cells()[0], redness.package.spec)
        assert x.shape == (1, 3, 64, 64) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() <= 1.0


# The run -------------------------------------------------------------------------------------------------


def test_run_gives_the_modules_probabilities_on_tissue_and_nan_elsewhere(redness: LoadedModel, cmu: Slide):
    spec = redness.package.spec
    grid = patch_grid(cmu, spec)
    reported: list[tuple[float, str]] = []
    result = run_slide(redness, cmu, grid, batch_size=16, progress=lambda f, w: reported.append((f, w)))
    count = int(grid.tissue.sum())
    assert result.classes == tuple(CLASSES) and result.grid is grid
    assert result.probabilities.shape == (grid.rows, grid.columns, 2) and result.probabilities.dtype == np.float32
    assert np.isnan(result.probabilities[~grid.tissue]).all()
    assert not np.isnan(result.probabilities[grid.tissue]).any()
    cells = grid.tissue_cells()
    for row, column in (cells[0], cells[len(cells) // 2], cells[-1]):
        x = patch_input(cmu, grid, row, column, spec)
        with torch.no_grad():
            direct = redness.module(torch.from_numpy(x))[0].numpy()
        np.testing.assert_allclose(result.probabilities[row, column], direct, rtol=1e-5, atol=1e-6)
        # The known answer, from the slide's own pixels: mean red minus green (a 2x area shrink keeps the mean).
        pixels = cmu.read_region(grid.location(row, column), 0, grid.read_size).astype(np.float64)
        expected = np.clip((pixels[..., 0] - pixels[..., 1]).mean() / 255, 0, 1)
        assert result.probabilities[row, column, 1] == pytest.approx(expected, abs=1e-4)
    assert [f for f, _ in reported][-1] == 1.0 and len(reported) == -(-count // 16)
    assert reported[-1][1] == f"test model: {count} of {count} patches"
    info = result.info
    assert (info.model_name, info.model_hash, info.device, info.batch_size, info.notes) == (
        "test model", redness.sha256, "cpu", 16, ()
    )
    with pytest.raises(ValueError):
        result.probabilities[0, 0, 0] = 0.5  # a frozen result's numbers cannot change under it
    assert not producers_alive()


def test_several_producers_give_the_same_result(redness: LoadedModel, cmu: Slide, result: SlideResult):
    again = run_slide(redness, cmu, result.grid, batch_size=7, workers=3)
    np.testing.assert_array_equal(again.probabilities, result.probabilities)
    assert not producers_alive()


def test_heatmap_and_patch_at_use_level0_geometry(result: SlideResult):
    heatmap = result.heatmap(1)
    assert heatmap.shape == (result.grid.rows, result.grid.columns)
    np.testing.assert_array_equal(heatmap, result.probabilities[..., 1])
    assert result.patch_at(0, 0) == (0, 0)
    assert result.patch_at(9.5 * PATCH, 15.2 * PATCH) == (15, 9)
    assert result.patch_at(PATCH - 0.01, PATCH) == (1, 0)
    assert result.patch_at(-1, 10) is None and result.patch_at(10, result.grid.rows * PATCH + 1) is None
    with pytest.raises(ValueError):
        result.heatmap(2)


def test_patch_input_feeds_every_saliency_method(redness: LoadedModel, cmu: Slide, result: SlideResult):
    row, column = result.grid.tissue_cells()[5]
    x = patch_input(cmu, result.grid, row, column, redness.package.spec)
    for name, method in saliency.METHODS.items():
        heatmap = method(redness, x, 1)
        assert heatmap.shape == (64, 64) and np.isfinite(heatmap).all(), name
    with pytest.raises(ValueError, match="outside the grid"):
        patch_input(cmu, result.grid, result.grid.rows, 0, redness.package.spec)


class Sleepy(torch.nn.Module):
    """Takes ``seconds`` per batch without using the CPU, as a model on a GPU does, then answers as ``inner``;
    notes when each batch's computing began and ended."""

    def __init__(self, inner: torch.nn.Module, seconds: float) -> None:
        super().__init__()
        self.inner, self.seconds = inner, seconds
        self.busy: list[tuple[float, float]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        started = time.perf_counter()
        time.sleep(self.seconds)
        self.busy.append((started, time.perf_counter()))
        return self.inner(x)


def test_reading_overlaps_the_models_work(redness: LoadedModel, cmu: Slide, monkeypatch: pytest.MonkeyPatch):
    """Reading a batch and computing one take 60 ms each (sleeps stand in for both). While the model computes
    a batch, the next is being read: patches are read during most of the model's batches. Checked on when
    each read happened, not on the total time, which a loaded 2-core machine stretches (the benchmark
    ``tests.benchmarks.inference`` measures the time)."""
    grid = patch_grid(cmu, redness.package.spec, region=(700.0, 1000.0, 1000.0, 1500.0))
    cells = len(grid.tissue_cells())
    batch_size = -(-cells // 8)
    real_read = Slide.read_region
    reads: list[float] = []

    def slow_read(self: Slide, *args: object) -> np.ndarray:
        time.sleep(0.06 / batch_size)
        reads.append(time.perf_counter())
        return real_read(self, *args)

    run_slide(redness, cmu, grid, batch_size=batch_size)  # first runs import MONAI and let TorchScript profile
    monkeypatch.setattr(Slide, "read_region", slow_read)
    sleepy = Sleepy(redness.module, 0.06)
    result = run_slide(dataclasses.replace(redness, module=sleepy), cmu, grid, batch_size=batch_size)
    batches = len(sleepy.busy)
    overlapped = sum(any(start < read < end for read in reads) for start, end in sleepy.busy)
    assert batches >= 8 and overlapped >= batches // 2, f"patches were read during {overlapped} of {batches} batches"
    assert not np.isnan(result.probabilities[grid.tissue]).any()


def test_cancel_after_the_first_batch_stops_the_producers(redness: LoadedModel, cmu: Slide):
    grid = patch_grid(cmu, redness.package.spec)
    for workers in (1, 3):
        batches: list[float] = []
        with pytest.raises(Cancelled):
            run_slide(
                redness, cmu, grid, batch_size=8, workers=workers,
                progress=lambda f, w, seen=batches: seen.append(f), cancelled=lambda seen=batches: bool(seen),
            )
        assert len(batches) == 1
        assert not producers_alive()


def test_model_that_raises_is_an_error_naming_the_model(tmp_path: Path, cmu: Slide):
    broken = load_patch_model(tmp_path / "raising", RaisingNet())
    with pytest.raises(InferenceError, match="the patch model broke") as caught:
        run_slide(broken, cmu, patch_grid(cmu, broken.package.spec))
    assert caught.value.path.name == "model.ts"
    assert not producers_alive()


def test_wrong_output_width_is_an_error_naming_the_model(tmp_path: Path, cmu: Slide):
    wide = load_patch_model(tmp_path / "wide", ThreeOutputNet())
    with pytest.raises(InferenceError, match="3 outputs per input but its metadata names 2 classes") as caught:
        run_slide(wide, cmu, patch_grid(cmu, wide.package.spec))
    assert caught.value.path.name == "model.ts"
    assert not producers_alive()


def test_models_that_cannot_take_slide_patches_are_refused(tmp_path: Path, cmu: Slide, result: SlideResult):
    volume = load_scripted(tmp_path / "volume", TinyVolumeNet(), metadata(target="volume", shape=[8, 8, 8]))
    with pytest.raises(InferenceError, match="is a volume model"):
        run_slide(volume, cmu, result.grid)
    two_channels = load_patch_model(tmp_path / "two", ThreeOutputNet(), channels=2)
    with pytest.raises(InferenceError, match="3 channels"):
        run_slide(two_channels, cmu, result.grid)
    coarser = load_patch_model(tmp_path / "coarse", mpp=2.0)  # a grid cut for another model
    with pytest.raises(InferenceError, match="make the grid"):
        run_slide(coarser, cmu, result.grid)


def test_grid_without_tissue_is_refused(redness: LoadedModel, cmu: Slide):
    glass = patch_grid(cmu, redness.package.spec, region=(0.0, 0.0, 300.0, 300.0))
    assert not glass.tissue.any()
    with pytest.raises(SlideRunError, match="no patch"):
        run_slide(redness, cmu, glass)


def test_grey_models_get_luma(tmp_path: Path, cmu: Slide, result: SlideResult):
    grey_spec = load_patch_model(tmp_path / "grey", ThreeOutputNet(), channels=1).package.spec
    rgb_spec = load_patch_model(tmp_path / "rgb").package.spec
    row, column = result.grid.tissue_cells()[3]
    x = patch_input(cmu, result.grid, row, column, grey_spec)
    colour = patch_input(cmu, result.grid, row, column, rgb_spec)
    assert x.shape == (1, 1, 64, 64) and colour.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(x[0, 0], np.tensordot([0.299, 0.587, 0.114], colour[0], axes=1), atol=1e-5)


# Export --------------------------------------------------------------------------------------------------


def test_csv_has_one_row_per_tissue_patch(result: SlideResult, tmp_path: Path):
    path = tmp_path / "patches.csv"
    write_csv(result, path)
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    grid = result.grid
    assert len(rows) == int(grid.tissue.sum())
    assert list(rows[0]) == ["row", "column", "x", "y", "width", "height", "normal probability", "tumour probability"]
    for record, (row, column) in zip(rows, grid.tissue_cells(), strict=True):
        assert (int(record["row"]), int(record["column"])) == (row, column)
        box = [float(record[k]) for k in ("x", "y", "width", "height")]
        assert box == pytest.approx(grid.box(row, column), abs=1e-3)
        assert float(record["tumour probability"]) == pytest.approx(result.probabilities[row, column, 1], rel=1e-6)


def test_geojson_tiles_read_back_with_their_classes_and_measurements(result: SlideResult, tmp_path: Path):
    path = tmp_path / "tiles.geojson"
    write_geojson(result, path)
    grid, cells = result.grid, result.grid.tissue_cells()
    annotations = read_geojson(path)
    assert len(annotations) == len(cells)
    for annotation, (row, column) in zip(annotations, cells, strict=True):
        x, y, width, height = grid.box(row, column)
        ring = annotation.parts()[0][0]
        np.testing.assert_allclose(ring.min(axis=0), [x, y], atol=0.01)  # annotations keep float32
        np.testing.assert_allclose(ring.max(axis=0), [x + width, y + height], atol=0.01)
        values = result.probabilities[row, column]
        top = int(np.argmax(values))
        assert annotation.classification is not None
        assert (annotation.classification.name, annotation.classification.colour) == (CLASSES[top], class_colour(top))
        assert annotation.measurements == pytest.approx(
            {"normal probability": values[0], "tumour probability": values[1]}, rel=1e-6
        )
    # QuPath's own fields, which read_geojson does not keep: a tile object, a UUID, a closed ring.
    features = json.loads(path.read_text())["features"]
    assert {f["properties"]["objectType"] for f in features} == {"tile"}
    assert len({str(uuid.UUID(f["id"])) for f in features}) == len(features)
    ring = features[0]["geometry"]["coordinates"][0]
    assert features[0]["geometry"]["type"] == "Polygon" and len(ring) == 5 and ring[0] == ring[-1]
    assert class_colour(0) != class_colour(1)


def test_exports_replace_files_whole(result: SlideResult, tmp_path: Path):
    for write, name in ((write_csv, "a.csv"), (write_geojson, "a.geojson")):
        path = tmp_path / name
        path.write_text("old content that is longer than nothing")
        write(result, path)
        assert "old content" not in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_grid_tissue_is_read_only(result: SlideResult):
    grid: PatchGrid = result.grid
    with pytest.raises(ValueError):
        grid.tissue[0, 0] = True
