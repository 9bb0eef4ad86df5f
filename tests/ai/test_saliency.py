"""Saliency finds the evidence of a model whose evidence is known, and says why Grad-CAM cannot run when not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from medviewer.ai import registry
from medviewer.ai.inference import Cancelled
from medviewer.ai.package import LoadedModel, load_module, read_package
from medviewer.ai.saliency import METHODS, SaliencyError, grad_cam, integrated_gradients, occlusion
from tests.ai.models_for_tests import SQUARE, EvidenceNet, evidence_input, load_scripted, metadata
from tests.ai.tiny_bundle import SHAPE, Exported, write_bundle

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
