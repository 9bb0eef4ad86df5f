"""``medviewer infer`` on a whole-slide image: the slide run's numbers as JSON, the patches as CSV/GeoJSON, and
the saliency of the top patches as a PNG whose JSON places it on the slide.

The demo slide (20480 x 15360 at 0.5 µm, two tumour regions that are redder than the rest) and RednessNet
(tumour = mean of red - green) at 8 µm per pixel: 64-pixel patches of 1024 level-0 pixels, a 20 x 15 grid,
so the whole slide runs in about a second.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medviewer.ai import registry, saliency
from medviewer.ai.devices import choose_device
from medviewer.ai.package import LoadedModel
from medviewer.ai.slide_run import SlideResult, patch_grid, patch_input, run_slide
from medviewer.ai.slide_saliency import explain_top_patches
from medviewer.cli.infer import infer_main
from medviewer.io import open_slide
from tests.support.models_for_tests import EvidenceNet, TinyVolumeNet, load_scripted, metadata
from tests.support.patch_models import CLASSES, load_patch_model
from tests.support.paths import real_file

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

MODEL_MPP = 8.0
PATCH = 1024.0  # 64 input pixels at 8 µm, in the demo slide's 0.5 µm level-0 pixels


@pytest.fixture
def redness(tmp_path: Path) -> LoadedModel:
    return load_patch_model(tmp_path / "redness", mpp=MODEL_MPP)


@pytest.fixture
def slide_path(demo_dir: Path) -> Path:
    return demo_dir / "slide.tiff"


@pytest.fixture
def expected(redness: LoadedModel, slide_path: Path) -> SlideResult:
    """The library's own run on the same grid: what the command must report."""
    with open_slide(slide_path) as slide:
        return run_slide(redness, slide, patch_grid(slide, redness.package.spec))


def infer(capsys: pytest.CaptureFixture[str], *args: object) -> dict:
    code = infer_main([str(a) for a in args] + ["--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_slide_report_is_the_slide_runs_numbers_with_the_models_identity(
    redness: LoadedModel, slide_path: Path, expected: SlideResult, ground_truth: dict, tmp_path: Path, capsys
):
    model = redness.package.source
    csv_out, geojson_out = tmp_path / "out" / "patches.csv", tmp_path / "out" / "patches.geojson"
    report = infer(capsys, "--model", model, slide_path, "--csv", csv_out, "--geojson", geojson_out)

    assert report["target"] == "slide" and report["image"] == str(slide_path)
    identity = report["model"]
    assert identity["sha256"] == registry.sha256_of(redness.package.weights["torchscript"])
    assert (identity["name"], identity["version"], identity["device"]) == ("test model", "1.0", choose_device())
    assert identity["precision"] == "float32" and identity["diagnostic_use"] is False
    assert identity["duration_s"] > 0 and identity["notes"] == []

    grid = expected.grid
    assert report["grid"] == {
        "origin_level0": [0.0, 0.0],
        "patch_size_level0": [PATCH, PATCH],
        "rows": 15,
        "columns": 20,
        "tissue_patches": int(grid.tissue.sum()),
        "slide_mpp": 0.5,
        "model_mpp": MODEL_MPP,
    }
    assert 20 < report["grid"]["tissue_patches"] < 300  # the tissue, not the glass around it
    on_tissue = expected.probabilities[grid.tissue]
    top = on_tissue.argmax(axis=1)
    for k, name in enumerate(CLASSES):
        summary = report["classes"][name]
        assert summary["mean"] == pytest.approx(float(on_tissue[:, k].mean()), rel=1e-6)
        assert summary["max"] == pytest.approx(float(on_tissue[:, k].max()), rel=1e-6)
        assert summary["top_patches"] == int((top == k).sum())
        heatmap = expected.heatmap(k)
        best = report["best"][name]
        assert heatmap[best["row"], best["column"]] == np.nanmax(heatmap)  # where the heatmap is highest
        assert best["probability"] == pytest.approx(float(np.nanmax(heatmap)), rel=1e-6) == summary["max"]
        assert best["box_level0"] == pytest.approx(list(grid.box(best["row"], best["column"])))
    assert sum(report["classes"][name]["top_patches"] for name in CLASSES) == report["grid"]["tissue_patches"]
    # The reddest patch touches one of the demo's tumour regions.
    x, y, width, height = report["best"]["tumour"]["box_level0"]
    regions = [np.array(r["polygon_level0_px"]) for r in ground_truth["slide"]["tumour_regions"]]
    assert any(
        x < p[:, 0].max() and p[:, 0].min() < x + width and y < p[:, 1].max() and p[:, 1].min() < y + height
        for p in regions
    )

    with csv_out.open() as file:
        rows = list(csv.DictReader(file))
    assert [(int(r["row"]), int(r["column"])) for r in rows] == grid.tissue_cells()
    assert [float(r["tumour probability"]) for r in rows] == pytest.approx(on_tissue[:, 1].tolist())
    features = json.loads(geojson_out.read_text())["features"]
    assert len(features) == len(rows)
    assert report["csv"] == str(csv_out) and report["geojson"] == str(geojson_out)


def test_slide_saliency_is_a_png_whose_json_places_each_explained_patch(
    redness: LoadedModel, slide_path: Path, expected: SlideResult, tmp_path: Path, capsys
):
    out = tmp_path / "saliency.png"
    args = ["--model", redness.package.source, slide_path, "--saliency", "gradcam", "--saliency-out", out]
    report = infer(capsys, *args, "--patches", 5)
    assert report["saliency"] == {
        "file": str(out),
        "georeference": str(tmp_path / "saliency.json"),
        "method": "gradcam",
        "class": "tumour",  # the model's last class, by default
        "patches": 5,
        "device": choose_device(),  # where the maps were finished, and why not where the run began
        "notes": [],
    }
    georeference = json.loads((tmp_path / "saliency.json").read_text())
    assert georeference["model"] == report["model"]
    assert (georeference["slide"], georeference["slide_mpp"], georeference["image"]) == (
        "slide.tiff",
        0.5,
        "saliency.png",
    )
    assert (georeference["method"], georeference["class"]) == ("gradcam", "tumour")
    image = np.asarray(Image.open(out))
    assert image.dtype == np.uint8 and image.ndim == 2
    assert image.shape == (15 * 64, 20 * 64)  # a 64-pixel input per patch fits under 4096 pixels
    assert georeference["image_size"] == [20 * 64, 15 * 64]
    assert georeference["origin_level0"] == [0.0, 0.0]
    assert georeference["level0_per_pixel"] == [PATCH / 64, PATCH / 64]

    # The five patches most probable for tumour, highest first, as the run scored them.
    heatmap = expected.heatmap(1)
    order = sorted(expected.grid.tissue_cells(), key=lambda cell: -heatmap[cell])[:5]
    explained = georeference["patches"]
    assert [(p["row"], p["column"]) for p in explained] == order
    assert [p["probability"] for p in explained] == pytest.approx([float(heatmap[c]) for c in order])

    # Each patch's level-0 box, through the georeference, falls on whole PNG pixels holding its Grad-CAM map.
    (x0, y0), (sx, sy) = georeference["origin_level0"], georeference["level0_per_pixel"]
    covered = np.zeros(image.shape, dtype=bool)
    with open_slide(slide_path) as slide:
        for patch in explained:
            x, y, width, height = patch["box_level0"]
            left, top, right, bottom = ((x - x0) / sx, (y - y0) / sy, (x + width - x0) / sx, (y + height - y0) / sy)
            assert all(float(v).is_integer() for v in (left, top, right, bottom))
            cell = (slice(int(top), int(bottom)), slice(int(left), int(right)))
            x_input = patch_input(slide, expected.grid, patch["row"], patch["column"], redness.package.spec)
            cam = saliency.grad_cam(redness, x_input, 1)
            np.testing.assert_array_equal(image[cell], np.rint(cam * 255).astype(np.uint8))
            assert image[cell].max() == 255
            covered[cell] = True
    assert not image[~covered].any()  # patches not explained stay 0


def test_class_choice_and_a_smaller_image_for_large_grids(
    redness: LoadedModel, slide_path: Path, expected: SlideResult, tmp_path: Path, capsys
):
    out = tmp_path / "normal.png"
    code = infer_main(
        ["--model", str(redness.package.source), str(slide_path), "--saliency", "occlusion", "--saliency-out"]
        + [str(out), "--class", "normal", "--patches", "2"]
    )
    text = capsys.readouterr().out
    assert code == 0
    lines = text.splitlines()
    assert lines[0] == "no check of the input against the training data is available"  # the guard's words first
    assert lines[1].startswith("normal: slide mean ")  # the chosen class leads
    assert lines[2].startswith("tumour: slide mean ") and "sha256" in lines[3]
    georeference = json.loads(out.with_suffix(".json").read_text())
    assert (georeference["class"], georeference["method"]) == ("normal", "occlusion")
    heatmap = expected.heatmap(0)
    best = np.unravel_index(np.nanargmax(heatmap), heatmap.shape)
    assert (georeference["patches"][0]["row"], georeference["patches"][0]["column"]) == best

    # The library function the window can reuse: past max_side every patch gets fewer pixels.
    with open_slide(slide_path) as slide:
        small = explain_top_patches(redness, slide, expected, 1, "gradcam", count=3, max_side=320)
    assert small.pixels_per_patch == (16, 16) and small.image.shape == (15 * 16, 20 * 16)
    assert small.level0_per_pixel == (PATCH / 16, PATCH / 16)
    row, column = small.patches[0].row, small.patches[0].column
    assert small.image[row * 16 : (row + 1) * 16, column * 16 : (column + 1) * 16].max() > 0.5


def refused(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    """The command's message for a refused run: exit 1, one line on stderr, nothing on stdout."""
    code = infer_main([str(a) for a in args])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err.startswith("medviewer infer: ") and "Traceback" not in captured.err
    return captured.err


def test_a_slide_model_on_a_volume_is_refused_naming_the_volume(redness: LoadedModel, demo_dir: Path, capsys):
    error = refused(capsys, "--model", redness.package.source, demo_dir / "ct2")
    assert str(demo_dir / "ct2") in error and "slide_patch" in error


@pytest.mark.parametrize("kind", ["slice", "volume"])
def test_a_volume_model_on_a_slide_is_refused_naming_the_slide(kind: str, slide_path: Path, tmp_path: Path, capsys):
    if kind == "slice":
        loaded = load_scripted(tmp_path / kind, EvidenceNet(), metadata(target="slice"))
    else:
        loaded = load_scripted(tmp_path / kind, TinyVolumeNet(), metadata(target="volume", shape=[8, 8, 8]))
    error = refused(capsys, "--model", loaded.package.source, slide_path)
    assert str(slide_path) in error and "whole-slide image" in error and f"{kind} model" in error
    # Asking for the slide target does not change what the model is.
    error = refused(capsys, "--model", loaded.package.source, slide_path, "--target", "slide")
    assert str(loaded.package.source) in error and f"target is {kind}, not slide" in error


def test_a_slide_without_pixel_size_is_refused_naming_it(redness: LoadedModel, capsys):
    no_mpp = real_file("wsi/tcga-cr-7395-01a-01-ts1.svs")
    error = refused(capsys, "--model", redness.package.source, no_mpp)
    assert str(no_mpp) in error and "pixel size" in error


def test_slide_options_are_checked_before_anything_runs(
    redness: LoadedModel, slide_path: Path, demo_dir: Path, tmp_path: Path, capsys
):
    model = redness.package.source
    nifti = tmp_path / "saliency.nii.gz"
    error = refused(capsys, "--model", model, slide_path, "--saliency", "ig", "--saliency-out", nifti)
    assert str(nifti) in error and "PNG" in error
    error = refused(
        capsys,
        "--model",
        model,
        slide_path,
        "--saliency",
        "ig",
        "--saliency-out",
        tmp_path / "s.png",
        "--class",
        "lesion",
    )
    assert str(model) in error and "no class 'lesion'" in error and "normal, tumour" in error
    # An output that cannot be written is refused before the run, not after it.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    error = refused(capsys, "--model", model, slide_path, "--csv", blocker / "p.csv")
    assert str(blocker / "p.csv") in error and "cannot be made" in error
    # --patches without --saliency would be silently ignored: it is refused instead.
    assert infer_main(["--model", str(model), str(slide_path), "--patches", "3"]) == 2
    assert "add --saliency" in capsys.readouterr().err
    error = refused(capsys, "--model", model, slide_path, "--slice", "3")
    assert str(slide_path) in error and "--slice" in error
    slice_model = load_scripted(tmp_path / "slice", EvidenceNet(), metadata(target="slice")).package.source
    error = refused(capsys, "--model", slice_model, demo_dir / "ct2", "--csv", tmp_path / "p.csv")
    assert str(demo_dir / "ct2") in error and "--csv is for whole-slide images" in error
    assert not (tmp_path / "p.csv").exists() and not nifti.exists()
