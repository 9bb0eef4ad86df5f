"""Running a model over slices and volumes: probabilities, identity, cancel, out-of-memory, bad models."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from medviewer.ai import registry
from medviewer.ai.inference import Cancelled, InferenceError, run_slices, run_volume, set_torch_threads
from medviewer.ai.package import LoadedModel, load_module, read_package
from medviewer.ai.preprocess import slice_batch, volume_input
from medviewer.core.volume import Volume
from tests.support.gpu_errors import OUT_OF_MEMORY_ERRORS
from tests.support.models_for_tests import TinyVolumeNet, load_scripted, metadata
from tests.support.tiny_bundle import METADATA, Exported, TinyNet, write_bundle

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.fixture
def tiny(exported: Exported, tmp_path: Path) -> LoadedModel:
    """The tiny classifier as MONAI's ckpt_export wrote it, approved and loaded."""
    package = read_package(write_bundle(tmp_path / "tiny", exported))
    registry.approve(package.weights["torchscript"], package)
    return load_module(package)


@pytest.fixture
def ct() -> Volume:
    """Five 40 x 50 slices of CT-like values with known geometry."""
    rng = np.random.default_rng(0)
    array = rng.integers(-1000, 400, size=(5, 40, 50)).astype(np.int16)
    return Volume(array=array, spacing=(0.5, 0.4, 2.0), origin=(-10.0, 5.0, 30.0), modality="CT")


class OutOfMemoryAbove(torch.nn.Module):
    """Raises an out-of-memory error for batches larger than ``limit``, as a full GPU would."""

    def __init__(self, inner: torch.nn.Module, limit: int, error: str = "cuda.OutOfMemoryError") -> None:
        super().__init__()
        self.inner, self.limit, self.error = inner, limit, error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise OUT_OF_MEMORY_ERRORS[self.error]()
        return self.inner(x.cpu())


def test_slice_probabilities_match_the_module_and_carry_the_identity(tiny: LoadedModel, ct: Volume):
    reported: list[tuple[float, str]] = []
    result = run_slices(tiny, ct, [4, 0, 2, 1, 3], batch_size=2, progress=lambda f, w: reported.append((f, w)))
    assert result.indices == (4, 0, 2, 1, 3) and result.classes == ("normal", "lesion")
    assert result.probabilities.shape == (5, 2) and result.probabilities.dtype == np.float32
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-6)
    with torch.no_grad():
        direct = torch.softmax(tiny.module(torch.from_numpy(slice_batch(ct, [4, 0, 2, 1, 3], tiny.package.spec))), 1)
    np.testing.assert_allclose(result.probabilities, direct.numpy(), rtol=1e-5, atol=1e-6)
    assert [f for f, _ in reported] == [0.4, 0.8, 1.0]
    assert reported[-1][1] == "tiny lesion classifier: 5 of 5 slices"
    info = result.info
    assert (info.model_name, info.model_version, info.model_hash) == ("tiny lesion classifier", "0.1.0", tiny.sha256)
    assert (info.device, info.precision, info.batch_size, info.notes) == (tiny.device, "float32", 2, ())
    assert info.duration_s > 0
    row = int(np.argmax(result.probabilities.max(axis=1)))
    column = int(np.argmax(result.probabilities[row]))
    assert result.best() == (result.indices[row], result.classes[column], float(result.probabilities[row, column]))
    with pytest.raises(ValueError):
        result.probabilities[0, 0] = 0.5  # a frozen result's numbers cannot change under it


def test_cancel_between_batches(tiny: LoadedModel, ct: Volume):
    asked: list[int] = []
    batches: list[float] = []

    def cancelled() -> bool:
        asked.append(1)
        return len(asked) > 1

    with pytest.raises(Cancelled):
        run_slices(tiny, ct, list(range(5)), batch_size=2, progress=lambda f, w: batches.append(f), cancelled=cancelled)
    assert batches == [0.4]  # one batch ran, then the cancel took effect


@pytest.mark.parametrize("error", sorted(OUT_OF_MEMORY_ERRORS))
def test_out_of_memory_halves_the_batch_and_says_so(tiny: LoadedModel, ct: Volume, error: str):
    expected = run_slices(tiny, ct, list(range(5)), batch_size=8).probabilities
    full = dataclasses.replace(tiny, module=OutOfMemoryAbove(tiny.module, limit=2, error=error))
    result = run_slices(full, ct, list(range(5)), batch_size=8)
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-6)
    assert result.info.batch_size == 2
    assert result.info.notes == ("CUDA ran out of memory; batch 8 -> 4", "CUDA ran out of memory; batch 4 -> 2")


@pytest.mark.parametrize("error", sorted(OUT_OF_MEMORY_ERRORS))
def test_out_of_memory_at_batch_one_moves_to_the_cpu(tiny: LoadedModel, ct: Volume, error: str):
    # "meta" stands for a GPU here: tensors can be put on it without one, and the model never fits.
    on_gpu = dataclasses.replace(tiny, module=OutOfMemoryAbove(tiny.module, limit=0, error=error), device="meta")
    result = run_slices(on_gpu, ct, [0, 1], batch_size=2, precision="float16")
    assert result.info.device == "cpu" and result.info.precision == "float32"
    assert result.info.notes == (
        "float16 runs only on CUDA; ran in float32 on meta",
        "CUDA ran out of memory; batch 2 -> 1",
        "CUDA ran out of memory at a batch of one; fell back to CPU from meta",
    )
    np.testing.assert_allclose(result.probabilities, run_slices(tiny, ct, [0, 1]).probabilities, rtol=1e-6)


def test_out_of_memory_on_the_cpu_is_an_error(tiny: LoadedModel, ct: Volume):
    never_fits = dataclasses.replace(tiny, module=OutOfMemoryAbove(tiny.module, limit=0))
    with pytest.raises(InferenceError, match="ran out of memory even at a batch of one"):
        run_slices(never_fits, ct, [0], batch_size=1)


def test_float16_is_float32_off_cuda_and_noted(tiny: LoadedModel, ct: Volume):
    info = run_slices(tiny, ct, [0], precision="float16").info
    assert (info.precision, info.notes) == ("float32", ("float16 runs only on CUDA; ran in float32 on cpu",))


def test_output_width_mismatch_names_the_file_and_both_numbers(tmp_path: Path, ct: Volume):
    loaded = load_scripted(tmp_path / "three", TinyNet(classes=3), METADATA)
    with pytest.raises(InferenceError) as raised:
        run_slices(loaded, ct, [0, 1])
    assert str(raised.value) == (
        f"{loaded.package.weights['torchscript']}: the model gives 3 outputs per input but its metadata names "
        "2 classes (normal, lesion)"
    )


def test_wrong_input_channels_name_the_file_and_the_shapes(tmp_path: Path, ct: Volume):
    loaded = load_scripted(tmp_path / "rgb", TinyNet(channels=3), METADATA)
    with pytest.raises(InferenceError) as raised:
        run_slices(loaded, ct, [0, 1])
    message = str(raised.value)
    assert message.startswith(
        f"{loaded.package.weights['torchscript']}: the model failed on an input of shape [2, 1, 16, 16] "
        "(its metadata says 1 channel(s) of [16, 16]): "
    )
    assert "3 channels" in message and "\n" not in message


def test_a_model_of_the_wrong_target_is_refused(tiny: LoadedModel, ct: Volume):
    with pytest.raises(InferenceError, match="is a slice model; it cannot be run on a volume"):
        run_volume(tiny, ct)


def test_volume_probabilities_match_the_module(tmp_path: Path, ct: Volume):
    meta = metadata(
        target="volume", shape=[4, 8, 8], activation="sigmoid", classes=["bleed", "fracture"], explain=False
    )
    torch.manual_seed(0)
    loaded = load_scripted(tmp_path / "volume", TinyVolumeNet(), meta)
    result = run_volume(loaded, ct)
    assert result.classes == ("bleed", "fracture") and result.probabilities.shape == (2,)
    with torch.no_grad():
        direct = torch.sigmoid(loaded.module(torch.from_numpy(volume_input(ct, loaded.package.spec))))[0]
    np.testing.assert_allclose(result.probabilities, direct.numpy(), rtol=1e-5)
    assert (result.info.batch_size, result.info.device, result.info.model_hash) == (1, loaded.device, loaded.sha256)
    with pytest.raises(Cancelled):
        run_volume(loaded, ct, cancelled=lambda: True)


def test_torch_threads_leave_a_core_for_the_window():
    before = torch.get_num_threads()
    try:
        threads = set_torch_threads()
        assert threads == max(1, len(os.sched_getaffinity(0)) - 1) == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
