"""Saliency finds the evidence of a model whose evidence is known, and says why Grad-CAM cannot run when not;
running out of GPU memory changes how a map is computed (smaller batches, the CPU), never the map."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medviewer.ai import registry
from medviewer.ai.inference import Cancelled
from medviewer.ai.package import LoadedModel, load_module, read_package
from medviewer.ai.saliency import (
    IG_BATCH,
    METHODS,
    OCCLUSION_BATCH,
    SaliencyError,
    SaliencyRun,
    grad_cam,
    integrated_gradients,
    occlusion,
)
from tests.support.gpu_errors import OUT_OF_MEMORY_ERRORS
from tests.support.models_for_tests import SQUARE, EvidenceNet, evidence_input, load_scripted, metadata
from tests.support.tiny_bundle import SHAPE, Exported, write_bundle

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
LESION = 1


@pytest.fixture
def evidence(tmp_path: Path) -> LoadedModel:
    return load_scripted(tmp_path / "evidence", EvidenceNet(), metadata())


def inside_square(saliency: np.ndarray) -> bool:
    row, column = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    return bool(SQUARE[0].start <= row < SQUARE[0].stop and SQUARE[1].start <= column < SQUARE[1].stop)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_maximum_lies_in_the_evidence_square_not_on_the_decoy(evidence: LoadedModel, method: str):
    x = evidence_input()
    saliency = METHODS[method](evidence, x, LESION)
    assert saliency.shape == (16, 16) and saliency.dtype == np.float32
    assert saliency.min() >= 0 and saliency.max() == pytest.approx(1.0)
    assert inside_square(saliency)
    assert saliency[0:4, 0:4].max() < 0.1  # the decoy is as bright but the model never looks at it
    assert not inside_square(x[0, 0])  # the input alone would point at the decoy: the test can fail


def test_saliency_runs_inside_a_workers_inference_mode(evidence: LoadedModel):
    x = evidence_input()
    with torch.inference_mode():
        maps = [grad_cam(evidence, x, LESION), integrated_gradients(evidence, x, LESION, steps=20)]
    assert all(inside_square(m) for m in maps)


def test_occlusion_window_and_stride_are_honoured(evidence: LoadedModel):
    saliency = occlusion(evidence, evidence_input(), LESION, window=4, stride=4)
    blocks = saliency.reshape(4, 4, 4, 4)
    assert np.all(blocks == blocks[:, :1, :, :1])  # 4 x 4 patches without overlap: each block is one value
    assert np.argwhere(saliency == 1).tolist() == [[r, c] for r in range(4, 8) for c in range(8, 12)]  # the spot's
    with pytest.raises(ValueError, match="window 20 and stride 1 do not fit"):
        occlusion(evidence, evidence_input(), LESION, window=20, stride=1)


@pytest.mark.parametrize(
    ("method", "options", "passes"),
    [(occlusion, {"window": 2, "stride": 1}, 225 // 32 + 1), (integrated_gradients, {"steps": 64}, 64 // 16)],
)
def test_a_cancel_stops_a_long_saliency_between_passes(evidence: LoadedModel, method, options: dict, passes: int):
    asked = []

    def cancelled() -> bool:
        asked.append(True)
        return len(asked) == 2  # cancel as the second pass is about to start

    with pytest.raises(Cancelled):
        method(evidence, evidence_input(), LESION, cancelled=cancelled, **options)
    assert len(asked) == 2 < passes  # stopped long before the end, not after every pass ran
    never = method(evidence, evidence_input(), LESION, cancelled=lambda: False, **options)
    assert inside_square(never)


def test_no_evidence_for_a_class_is_an_all_zero_map(evidence: LoadedModel):
    # The "normal" score is a constant: nothing in the input is evidence for it.
    assert not integrated_gradients(evidence, evidence_input(), 0).any()


def test_grad_cam_on_a_torch_export_program_says_it_needs_torchscript(tmp_path: Path, exported: Exported):
    bundle = write_bundle(tmp_path / "bundle", exported)
    (bundle / "models" / "model.ts").unlink()
    package = read_package(bundle)
    registry.approve(package.weights["export"], package)
    loaded = load_module(package)
    x = np.random.default_rng(0).random((1, 1, *SHAPE), dtype=np.float32)
    with pytest.raises(SaliencyError) as raised:
        grad_cam(loaded, x, LESION)
    assert str(raised.value).startswith(f"{package.weights['export']}: Grad-CAM needs the TorchScript weights")
    for method in (occlusion, integrated_gradients):  # these need only forward
        assert method(loaded, x, LESION).shape == tuple(SHAPE)


def test_grad_cam_without_an_explain_contract_says_so(tmp_path: Path):
    loaded = load_scripted(tmp_path / "plain", EvidenceNet(), metadata(explain=False))
    with pytest.raises(SaliencyError, match="Grad-CAM needs an explain contract"):
        grad_cam(loaded, evidence_input(), LESION)


def test_inputs_and_classes_are_checked(evidence: LoadedModel):
    with pytest.raises(ValueError, match=r"one input shaped \[1, 1, 16, 16\], not \[2, 1, 16, 16\]"):
        grad_cam(evidence, np.zeros((2, 1, 16, 16), dtype=np.float32), LESION)
    with pytest.raises(ValueError, match="class_index 2 is not one of the model's 2 classes"):
        occlusion(evidence, evidence_input(), 2)


class OutOfMemory(torch.nn.Module):
    """Raises an out-of-memory error as a full GPU would, on calls with more than ``above`` inputs: the first
    ``times`` of them, or every one (``times`` None). Otherwise the model answers, so a map computed through
    it must equal the map computed without it."""

    def __init__(self, inner: torch.nn.Module, error: str, above: int = 0, times: int | None = None) -> None:
        super().__init__()
        self.inner, self.error, self.above, self.times = inner, error, above, times
        self.raised = 0

    def _maybe_raise(self, x: torch.Tensor) -> None:
        if x.shape[0] > self.above and (self.times is None or self.raised < self.times):
            self.raised += 1
            raise OUT_OF_MEMORY_ERRORS[self.error]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._maybe_raise(x)
        return self.inner(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._maybe_raise(x)
        return self.inner.forward_features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.inner.forward_head(features)


OPTIONS = {"occlusion": {"window": 2, "stride": 1}, "ig": {"steps": 64}, "gradcam": {}}


@pytest.mark.parametrize("error", sorted(OUT_OF_MEMORY_ERRORS))
@pytest.mark.parametrize(("method", "first_batch"), [("occlusion", OCCLUSION_BATCH), ("ig", IG_BATCH)])
def test_out_of_memory_once_halves_the_batch_and_the_map_is_the_same(
    evidence: LoadedModel, method: str, first_batch: int, error: str
):
    x = evidence_input()
    expected = METHODS[method](evidence, x, LESION, **OPTIONS[method])
    once = OutOfMemory(evidence.module, error, above=1, times=1)
    run = SaliencyRun(dataclasses.replace(evidence, module=once))
    np.testing.assert_allclose(METHODS[method](run, x, LESION, **OPTIONS[method]), expected, rtol=1e-6, atol=1e-7)
    name = "occlusion" if method == "occlusion" else "integrated gradients"
    halved = f"CUDA ran out of memory; {name} batch {first_batch} -> {first_batch // 2}"
    assert once.raised == 1 and run.notes == [halved]
    assert run.device == evidence.device


def test_a_full_gpu_halves_again_and_keeps_the_size_that_fits_for_the_next_map(evidence: LoadedModel):
    x = evidence_input()
    expected = occlusion(evidence, x, LESION, window=2, stride=1)
    full = OutOfMemory(evidence.module, "cuda.OutOfMemoryError", above=5)
    run = SaliencyRun(dataclasses.replace(evidence, module=full))
    np.testing.assert_allclose(occlusion(run, x, LESION, window=2, stride=1), expected, rtol=1e-6, atol=1e-7)
    halvings = ["32 -> 16", "16 -> 8", "8 -> 4"]
    assert run.notes == [f"CUDA ran out of memory; occlusion batch {h}" for h in halvings]
    raised = full.raised
    np.testing.assert_allclose(occlusion(run, x, LESION, window=2, stride=1), expected, rtol=1e-6, atol=1e-7)
    assert full.raised == raised and len(run.notes) == 3  # the second map starts at the batch that fits


@pytest.mark.parametrize("error", sorted(OUT_OF_MEMORY_ERRORS))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_out_of_memory_on_one_input_moves_to_the_cpu_and_the_map_is_the_same(
    evidence: LoadedModel, method: str, error: str
):
    x = evidence_input()
    expected = METHODS[method](evidence, x, LESION, **OPTIONS[method])
    # "meta" stands for a GPU here: tensors can be put on it without one, and the model never fits on it.
    on_gpu = dataclasses.replace(evidence, module=OutOfMemory(evidence.module, error), device="meta")
    run = SaliencyRun(on_gpu)
    with torch.inference_mode():  # as the window's worker calls it
        saliency = METHODS[method](run, x, LESION, **OPTIONS[method])
    np.testing.assert_allclose(saliency, expected, rtol=1e-6, atol=1e-7)
    assert run.device == "cpu" and run.loaded.sha256 == evidence.sha256  # the same approved file, reloaded
    assert run.batch == {"occlusion": OCCLUSION_BATCH, "integrated gradients": IG_BATCH}  # the GPU no longer bounds
    name = {"gradcam": "Grad-CAM", "occlusion": "occlusion", "ig": "integrated gradients"}[method]
    halvings = [f"CUDA ran out of memory; {name} batch {2**k} -> {2 ** (k - 1)}" for k in range(4, 0, -1)]
    assert run.notes == (halvings if method == "ig" else []) + [
        f"CUDA ran out of memory on one input; {name} fell back to CPU from meta"
    ]


def test_out_of_memory_on_the_cpu_is_a_saliency_error_not_a_model_failure(evidence: LoadedModel):
    never_fits = dataclasses.replace(evidence, module=OutOfMemory(evidence.module, "TorchScript RuntimeError"))
    for method in METHODS:
        with pytest.raises(SaliencyError, match="ran out of memory even on one input on the CPU"):
            METHODS[method](never_fits, evidence_input(), LESION, **OPTIONS[method])


def test_a_model_that_fails_otherwise_is_not_taken_for_out_of_memory(evidence: LoadedModel):
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    run = SaliencyRun(dataclasses.replace(evidence, module=Broken(), device="meta"))
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        occlusion(run, evidence_input(), LESION)
    assert run.notes == [] and run.device == "meta"


def test_a_slides_patches_share_the_fallback_and_say_so(demo_dir: Path, tmp_path: Path):
    from medviewer.ai.slide_run import patch_grid, run_slide
    from medviewer.ai.slide_saliency import explain_top_patches, write_png
    from medviewer.io import open_slide
    from tests.support.patch_models import load_patch_model

    redness = load_patch_model(tmp_path / "redness", mpp=8.0)
    with open_slide(demo_dir / "slide.tiff") as slide:
        result = run_slide(redness, slide, patch_grid(slide, redness.package.spec))
        expected = explain_top_patches(redness, slide, result, 1, "occlusion", count=3)
        full = OutOfMemory(redness.module, "TorchScript RuntimeError")
        on_gpu = dataclasses.replace(redness, module=full, device="meta")
        explained = explain_top_patches(on_gpu, slide, result, 1, "occlusion", count=3)
    np.testing.assert_allclose(explained.image, expected.image, rtol=1e-6, atol=1e-6)
    assert full.raised == 1  # the first patch moved the run to the CPU; the others started there
    assert (expected.device, expected.notes) == ("cpu", ())
    assert explained.device == "cpu"
    assert explained.notes == ("CUDA ran out of memory on one input; occlusion fell back to CPU from meta",)
    georeference = json.loads(write_png(explained, tmp_path / "saliency.png").read_text())
    assert (georeference["device"], georeference["notes"]) == ("cpu", list(explained.notes))
