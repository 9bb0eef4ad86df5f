"""The demo CT slice lesion model as shipped in models/ct_slice_lesion/bundle: approved out of the box, accurate
on freshly generated phantoms, and its Grad-CAM points at the planted lesions, which the same network with
random weights does not (the randomisation check of Adebayo et al., 2018, so this test can fail).

Nothing is trained here. The held-out phantoms use a seed that neither training nor the training script's
own evaluation used, at the second demo CT's geometry (1.4 mm pixels, 5 mm slices), so the viewer's
resampling to the model's 2.8 mm is part of what is tested. Slices are labelled by the rule training used
(``medviewer.demo.ct_truth.slice_truth``) and preprocessed by ``medviewer.ai.preprocess.slice_batch`` exactly as the
metadata declares; Grad-CAM is ``medviewer.ai.saliency.grad_cam``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from medviewer.ai import registry
from medviewer.ai.package import LoadedModel, ModelPackage, load_module, read_package
from medviewer.ai.preprocess import slice_batch
from medviewer.ai.saliency import grad_cam
from medviewer.core.volume import Volume
from medviewer.demo.ct_phantom import make_chest_phantom
from medviewer.demo.ct_truth import Disc, slice_truth
from medviewer.demo.generate import SECOND_CT
from tests.support.demo_models import assert_shipped_as_promised, training_script
from tests.support.paths import REPO

# torch 2.13 deprecates torch.jit; the demo model still ships TorchScript because Grad-CAM needs it.
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning"), pytest.mark.slow]

BUNDLE = REPO / "models" / "ct_slice_lesion" / "bundle"
NAME = "ct-slice-lesion-demo"
HELD_OUT_SEED = 31_337  # neither the training seed nor the training script's evaluation seed
PER_CLASS = 20
RANDOM_WEIGHTS_SEED = 2018


@dataclass(frozen=True)
class HeldOut:
    x: np.ndarray  # (N, 1, H, W) as slice_batch makes it
    y: np.ndarray  # index into the model's classes
    discs: list[list[Disc]]  # lesion discs (row, column, radius on the input grid) per lesion slice


@pytest.fixture(scope="module")
def package() -> ModelPackage:
    return read_package(BUNDLE)


@pytest.fixture(scope="module")
def held_out(package: ModelPackage) -> HeldOut:
    """PER_CLASS lesion and PER_CLASS normal slices from fresh phantoms at the second demo CT's geometry."""
    geometry = SECOND_CT
    spacing = (geometry.pixel_mm, geometry.pixel_mm, geometry.slice_mm)
    pick = np.random.default_rng(HELD_OUT_SEED)
    inputs, labels, discs = [], [], []
    lesion_count = normal_count = 0
    index = 0
    while lesion_count < PER_CLASS or normal_count < PER_CLASS:
        index += 1
        assert index <= 40, "the phantoms give too few labelled slices; has the labelling rule changed?"
        hu, lesions = make_chest_phantom(np.random.default_rng([HELD_OUT_SEED, index]), geometry, 3)
        truth = [slice_truth(geometry, lesions, k, hu[k], package.spec.shape) for k in range(geometry.shape[0])]
        positives = [k for k, (label, _) in enumerate(truth) if label == 1][: PER_CLASS - lesion_count]
        negatives = [k for k, (label, _) in enumerate(truth) if label == 0]
        negatives = sorted(pick.choice(negatives, size=min(2, PER_CLASS - normal_count), replace=False).tolist())
        chosen = positives + negatives
        if not chosen:
            continue
        volume = Volume(hu, spacing, geometry.origin, modality="CT")
        inputs.append(slice_batch(volume, chosen, package.spec))
        labels += [truth[k][0] for k in chosen]
        discs += [truth[k][1] for k in chosen]
        lesion_count, normal_count = lesion_count + len(positives), normal_count + len(negatives)
    classes = package.spec.classes
    y = np.asarray([classes.index("lesion" if label == 1 else "normal") for label in labels])
    return HeldOut(np.concatenate(inputs), y, discs)


@pytest.fixture
def loaded(package: ModelPackage) -> LoadedModel:
    return load_module(package, prefer="torchscript")


def test_bundle_reads_and_both_files_are_approved_out_of_the_box(package: ModelPackage):
    assert_shipped_as_promised(package, NAME, BUNDLE)
    spec = package.spec
    assert (spec.target, spec.channels, spec.classes, spec.activation) == ("slice", 1, ("normal", "lesion"), "softmax")


@pytest.mark.parametrize("weights_format", ["torchscript", "export"])
def test_both_formats_load_without_asking_and_take_any_batch(package: ModelPackage, weights_format: str):
    loaded = load_module(package, prefer=weights_format)  # type: ignore[arg-type]
    assert loaded.format == weights_format
    assert loaded.sha256 == registry.sha256_of(package.weights[weights_format])
    for batch in (1, 3):
        with torch.no_grad():
            logits = loaded.module(torch.zeros(batch, 1, *package.spec.shape))
        assert tuple(logits.shape) == (batch, 2)


def _accuracy(loaded: LoadedModel, data: HeldOut) -> float:
    with torch.no_grad():
        probabilities = torch.softmax(loaded.module(torch.from_numpy(data.x)), dim=1).numpy()
    return float((probabilities.argmax(1) == data.y).mean())


def test_held_out_accuracy_on_fresh_phantoms(package: ModelPackage, held_out: HeldOut):
    assert np.bincount(held_out.y).tolist() == [PER_CLASS, PER_CLASS]
    for weights_format in ("torchscript", "export"):
        accuracy = _accuracy(load_module(package, prefer=weights_format), held_out)  # type: ignore[arg-type]
        assert accuracy >= 0.95, f"{weights_format}: held-out accuracy {accuracy:.3f} is below 0.95"


def _cam_hit_rate(loaded: LoadedModel, data: HeldOut) -> float:
    """Share of lesion slices whose lesion Grad-CAM maximum lies in a planted lesion's disc (1 pixel margin)."""
    lesion = loaded.package.spec.classes.index("lesion")
    hits = []
    for x, label, discs in zip(data.x, data.y, data.discs, strict=True):
        if label != lesion:
            continue
        cam = grad_cam(loaded, x[None], lesion)
        assert cam.shape == loaded.package.spec.shape
        row, column = np.unravel_index(int(cam.argmax()), cam.shape)
        hits.append(any(math.hypot(row - d.row, column - d.column) <= d.radius + 1.0 for d in discs))
    assert len(hits) == PER_CLASS
    return float(np.mean(hits))


def test_grad_cam_finds_the_lesions_and_random_weights_do_not(loaded: LoadedModel, held_out: HeldOut):
    trained = _cam_hit_rate(loaded, held_out)
    with torch.random.fork_rng():
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        network = training_script("ct_slice_lesion").CtSliceLesionNet().eval()
    # The same export path as the shipped file, so the random model differs from it in its weights only.
    randomised = LoadedModel(loaded.package, torch.jit.script(network), "torchscript", "random-weights", "cpu")
    random = _cam_hit_rate(randomised, held_out)
    assert trained >= 0.8, f"Grad-CAM maximum inside the lesion for {trained:.0%} of lesion slices"
    assert random <= trained - 0.3, f"random weights {random:.0%} vs trained {trained:.0%}: Grad-CAM ignores weights"
