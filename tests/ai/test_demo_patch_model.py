"""The demo pathology patch model as shipped in models/slide_patch_tumour/bundle: approved out of the box,
accurate on a freshly generated slide, its Grad-CAM on tumour where a patch is only partly tumour, which the
same network with random weights does not manage (the randomisation check of Adebayo et al., 2018, so this
test can fail), and a slide run over the demo slide lights up the planted tumours.

Nothing is trained here. The held-out slide uses a seed that neither training nor the training script's own
evaluation used; it is written as a real pyramidal TIFF and cut and labelled by the training script's own
``slide_patches`` (``slide_run.patch_grid`` and ``patch_input``, the viewer's own reading; labels from
``medviewer.demo.patch_truth``). Grad-CAM is ``medviewer.ai.saliency.grad_cam`` on the TorchScript file.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from skimage.measure import points_in_poly

from medviewer.ai.package import LoadedModel, ModelPackage, load_module, read_package
from medviewer.ai.saliency import grad_cam
from medviewer.ai.slide_run import patch_grid, run_slide
from medviewer.demo.patch_truth import tumour_fraction
from medviewer.demo.slide_phantom import SlideGeometry, write_demo_slide
from medviewer.io import open_slide
from tests.support.demo_models import assert_shipped_as_promised, training_script
from tests.support.paths import REPO

pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"), pytest.mark.slow]

BUNDLE = REPO / "models" / "slide_patch_tumour" / "bundle"
NAME = "slide-patch-tumour-demo"
HELD_OUT_SEED = 63_001  # neither a training seed nor one of the training script's evaluation seeds
HELD_OUT_SLIDE = SlideGeometry(width=10240, height=8192, mpp=0.5)
RANDOM_WEIGHTS_SEED = 2018


@pytest.fixture(scope="module")
def package() -> ModelPackage:
    return read_package(BUNDLE)


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return training_script("slide_patch_tumour")


@pytest.fixture(scope="module")
def held_out(package: ModelPackage, script: ModuleType, tmp_path_factory: pytest.TempPathFactory):
    """Every labelled patch of a fresh slide on the grid and three shifted grids (more patches cut across the
    tumour edge), cut and labelled by the training script's own ``slide_patches`` with the spec it trained
    on, which must be the spec the bundle declares."""
    assert script.SPEC == package.spec
    path = tmp_path_factory.mktemp("held-out") / "slide.tiff"
    polygons = write_demo_slide(path, HELD_OUT_SEED, HELD_OUT_SLIDE, tumour_count=2, levels=3)
    return script.slide_patches(path, HELD_OUT_SEED, polygons, None)


@pytest.fixture
def loaded(package: ModelPackage) -> LoadedModel:
    return load_module(package, prefer="torchscript")


def test_bundle_reads_and_both_files_are_approved_out_of_the_box(package: ModelPackage):
    assert_shipped_as_promised(package, NAME, BUNDLE)
    spec = package.spec
    assert (spec.target, spec.channels, spec.classes, spec.mpp) == ("slide_patch", 3, ("normal", "tumour"), 2.0)


def test_held_out_accuracy_on_a_fresh_slide(package: ModelPackage, held_out):
    counts = np.bincount(held_out.y, minlength=2)
    assert counts.min() >= 40, f"the held-out slide gave too few patches of a class: {counts.tolist()}"
    for weights_format in ("torchscript", "export"):
        loaded = load_module(package, prefer=weights_format)  # type: ignore[arg-type]
        with torch.no_grad():
            probabilities = torch.softmax(loaded.module(torch.from_numpy(held_out.x)), dim=1).numpy()
        predicted = probabilities.argmax(1)
        for label in (0, 1):  # each class on its own, so many normal patches cannot hide missed tumour
            accuracy = float((predicted[held_out.y == label] == label).mean())
            assert accuracy >= 0.95, f"{weights_format}: {package.spec.classes[label]} accuracy {accuracy:.3f}"


def _cam_hit_rate(loaded: LoadedModel, data, edge_max_fraction: float) -> tuple[float, int]:
    """Share of edge tumour patches whose tumour Grad-CAM maximum lies on a tumour pixel, and their number."""
    tumour = loaded.package.spec.classes.index("tumour")
    edge = np.flatnonzero((data.y == tumour) & (data.fraction < edge_max_fraction))
    hits = []
    for i in edge:
        cam = grad_cam(loaded, data.x[i : i + 1], tumour)
        assert cam.shape == loaded.package.spec.shape
        hits.append(bool(data.masks[i].flat[int(cam.argmax())]))
    return float(np.mean(hits)), len(hits)


def test_grad_cam_lies_on_the_tumour_part_of_edge_patches_and_random_weights_do_not(
    loaded: LoadedModel, held_out, script: ModuleType
):
    trained, count = _cam_hit_rate(loaded, held_out, script.EDGE_MAX_FRACTION)
    assert count >= 20, f"only {count} held-out patches straddle a tumour edge"
    with torch.random.fork_rng():
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        network = script.PatchTumourNet().eval()
    randomised = LoadedModel(loaded.package, torch.jit.script(network), "torchscript", "random-weights", "cpu")
    random, _ = _cam_hit_rate(randomised, held_out, script.EDGE_MAX_FRACTION)
    assert trained >= 0.8, f"Grad-CAM maximum on tumour for {trained:.0%} of {count} edge patches"
    assert random <= trained - 0.25, f"random weights {random:.0%} vs trained {trained:.0%}: Grad-CAM ignores weights"


def test_a_slide_run_over_the_demo_slide_finds_each_planted_tumour(loaded: LoadedModel, demo_dir: Path):
    truth = json.loads((demo_dir / "ground_truth.json").read_text())
    polygons = [np.asarray(region["polygon_level0_px"]) for region in truth["slide"]["tumour_regions"]]
    with open_slide(demo_dir / "slide.tiff") as slide:
        grid = patch_grid(slide, loaded.package.spec)
        result = run_slide(loaded, slide, grid)
    tumour = result.heatmap(result.classes.index("tumour"))
    centres = np.array(
        [
            [grid.box(r, c)[0] + grid.box(r, c)[2] / 2, grid.box(r, c)[1] + grid.box(r, c)[3] / 2]
            for r, c in grid.tissue_cells()
        ]
    )
    probabilities = np.array([tumour[r, c] for r, c in grid.tissue_cells()])
    for polygon in polygons:
        inside = points_in_poly(centres, polygon)
        assert inside.sum() >= 10
        assert np.median(probabilities[inside]) > 0.9
    fraction = tumour_fraction(polygons, grid.origin, grid.patch_size_level0, grid.rows, grid.columns)
    clear = np.array([fraction[r, c] == 0 for r, c in grid.tissue_cells()])
    assert (probabilities[clear] > 0.5).mean() < 0.02, "tumour called on tissue far from every planted tumour"
