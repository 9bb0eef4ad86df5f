"""The out-of-distribution guard (``medviewer.ai.ood``) in real runs: the demo models on their own demo data
and on real images, bad references that must not stop a run, and the run paths the guard rides on
(float16 on the CPU, CUDA out-of-memory batch halving).

The small cases use ``EvidenceNet`` (tests/support/models_for_tests.py): its features are the input inside and
outside one square, so a reference made from uniform noise in 0..1 knows what noise in 0..1 looks like, and
an input three times as bright is far from it.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from medviewer.ai import registry
from medviewer.ai.inference import run_slices
from medviewer.ai.ood import (
    COULD_NOT,
    NOT_AVAILABLE,
    NOT_RUN,
    OodReport,
    feature_block,
    intensity_block,
    item_percentiles,
    pool_features,
)
from medviewer.ai.package import LoadedModel, load_module, read_package
from medviewer.ai.slide_run import patch_grid, run_slide
from medviewer.core.volume import Volume
from medviewer.io import open_slide, open_volume
from models.bundle_tools import AssumedMpp
from tests.support.models_for_tests import SIZE, EvidenceNet, load_scripted, metadata
from tests.support.paths import REPO, pydicom_file, real_file
from tests.support.tiny_bundle import METADATA, Exported, write_bundle

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

CT_BUNDLE = REPO / "models" / "ct_slice_lesion" / "bundle"
PATCH_BUNDLE = REPO / "models" / "slide_patch_tumour" / "bundle"


# A small model with a reference made here --------------------------------------------------------------


def noise(count: int, seed: int, gain: float = 1.0) -> np.ndarray:
    """(count, 1, SIZE, SIZE) float32 uniform noise in 0..gain: what EvidenceNet's reference is made of."""
    return (np.random.default_rng(seed).random((count, 1, SIZE, SIZE)) * gain).astype(np.float32)


def evidence_training(**facts: Any) -> dict[str, Any]:
    """A training block for EvidenceNet from noise: 400 training inputs, 400 held-out ones."""
    net = EvidenceNet()
    with torch.no_grad():
        training_x, held_x = noise(400, 1), noise(400, 2)
        training = pool_features(net.forward_features(torch.from_numpy(training_x)))
        held_out = pool_features(net.forward_features(torch.from_numpy(held_x)))
    return {
        **facts,
        "intensity_percentiles": intensity_block(item_percentiles(training_x), item_percentiles(held_x)),
        "features": feature_block(training, held_out),
    }


def evidence_model(folder: Path, training: dict[str, Any] | None) -> LoadedModel:
    meta = metadata()
    if training is not None:
        meta["medviewer"]["training"] = training
    return load_scripted(folder, EvidenceNet(), meta)


def volume_of(x: np.ndarray, modality: str = "", spacing: float = 1.0) -> Volume:
    return Volume(x[:, 0].copy(), (spacing, spacing, 2.0), (0.0, 0.0, 0.0), modality=modality)


@pytest.fixture(scope="module")
def training() -> dict[str, Any]:
    return evidence_training(modality=["CT"], spacing_mm=[0.5, 2.0])


def test_noise_like_the_training_passes_and_bright_inputs_are_flagged(tmp_path: Path, training: dict[str, Any]):
    loaded = evidence_model(tmp_path / "m", training)
    fresh = run_slices(loaded, volume_of(noise(200, 3), "CT"), list(range(200)), batch_size=32)
    report = fresh.ood
    assert report is not None and report.checked and report.why_not == ""
    assert report.scores.shape == (200,) and report.scores.dtype == np.float32 and np.isfinite(report.scores).all()
    assert report.threshold == training["features"]["threshold"]
    assert report.flagged.mean() <= 0.05  # the threshold is the held-out 99th percentile: about 1 % above it
    assert report.image_reasons == ()
    # A few flags by chance are marked but do not call the image outside: no banner, a note saying how it went.
    assert report.level in ("inside", "scattered") and report.banner() == ""
    assert report.note().startswith("Checked against the training data: ")

    bright = run_slices(loaded, volume_of(noise(20, 4, gain=3.0), "CT"), list(range(20))).ood
    assert bright is not None and bright.checked and bright.threshold is not None
    assert bright.feature_flagged.all() and bright.intensity_flagged.all() and bright.flagged.all()
    assert bright.scores.min() > 3 * bright.threshold
    summary = bright.summary()
    assert summary == {
        "checked": True,
        "why_not": "",
        "threshold": bright.threshold,
        "items": 20,
        "flagged": 20,
        "flagged_fraction": 1.0,
        "feature_flagged": 20,
        "intensity_flagged": 20,
        "image_reasons": [],
        "max_score": pytest.approx(float(bright.scores.max())),
        "level": "outside",
    }
    assert bright.note() == ""
    assert bright.banner().startswith("Outside what this model was trained on: 20 of 20 slices (")
    assert "features unlike the training data's on 20 slices" in bright.banner()
    # the probabilities are those of the plain forward: the guard's features-then-head path changes nothing
    with torch.no_grad():
        x = torch.from_numpy(noise(20, 4, gain=3.0))
        direct = torch.softmax(loaded.module(x), 1).numpy()
    np.testing.assert_allclose(
        run_slices(loaded, volume_of(noise(20, 4, gain=3.0)), list(range(20))).probabilities, direct, rtol=1e-5
    )


def test_image_facts_flag_every_slice_and_missing_facts_say_nothing(tmp_path: Path, training: dict[str, Any]):
    loaded = evidence_model(tmp_path / "m", training)
    x = noise(10, 5)
    mr = run_slices(loaded, volume_of(x, "MR"), list(range(10))).ood
    assert mr is not None and mr.image_reasons == ("modality MR; the model was trained on CT",)
    assert mr.flagged.all() and not mr.feature_flagged.any()
    fine = run_slices(loaded, volume_of(x, "MR", spacing=0.25), list(range(10))).ood
    assert fine is not None and fine.image_reasons[1] == "pixel spacing 0.25 mm; trained on 0.5 to 2 mm"
    unknown = run_slices(loaded, volume_of(x, ""), list(range(10))).ood  # no modality recorded: unchecked
    assert unknown is not None and unknown.image_reasons == ()
    assert (unknown.flagged == (unknown.feature_flagged | unknown.intensity_flagged)).all()
    assert unknown.flagged.sum() <= 1


def test_an_item_whose_features_are_not_finite_is_flagged(tmp_path: Path, training: dict[str, Any]):
    loaded = evidence_model(tmp_path / "m", training)
    x = noise(4, 6)
    x[2, 0, 5, 10] = np.nan  # inside EvidenceNet's square: its features are NaN
    report = run_slices(loaded, volume_of(x), list(range(4))).ood
    assert report is not None and report.checked
    assert np.isinf(report.scores[2]) and report.feature_flagged[2] and report.flagged[2]
    assert not report.feature_flagged[[0, 1, 3]].any()
    assert report.summary()["max_score"] == pytest.approx(float(np.max(report.scores[[0, 1, 3]])))


# Bad references -----------------------------------------------------------------------------------------


def _broken(training: dict[str, Any], change: str) -> dict[str, Any]:
    broken = copy.deepcopy(training)
    features = broken["features"]
    if change == "dimensions":  # a reference made for a model with three feature channels, not two
        features["mean"] = features["mean"] + [0.1, 0.2]
        size = len(features["mean"])
        features["covariance"] = np.eye(size).tolist()
        features["dimensions"] = size
    elif change == "singular":
        size = len(features["mean"])
        features["covariance"] = np.ones((size, size)).tolist()
    elif change == "threshold":
        del features["threshold"]
    elif change == "threshold text":
        features["threshold"] = "high"
    elif change == "not finite":
        features["covariance"][0][0] = float("nan")
    elif change == "intensity dimensions":  # percentiles of a three-channel model, for a one-channel one
        intensity = broken["intensity_percentiles"]
        intensity["mean"] = intensity["mean"] * 3
        intensity["covariance"] = np.eye(9).tolist()
        intensity["dimensions"] = 9
    elif change == "intensity threshold":
        del broken["intensity_percentiles"]["threshold"]
    return broken


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("dimensions", "pools to 4 values per item but its training reference has 6 dimensions"),
        ("singular", "medviewer.training.features.covariance is singular"),
        ("threshold", "medviewer.training.features.threshold is missing"),
        ("threshold text", "medviewer.training.features.threshold is 'high', not a positive number"),
        ("not finite", "medviewer.training.features.covariance holds values that are not finite"),
        (
            "intensity dimensions",
            "medviewer.training.intensity_percentiles has 9 dimensions but the model's 1 channel(s) give 3 percentiles",
        ),
        ("intensity threshold", "medviewer.training.intensity_percentiles.threshold is missing"),
    ],
)
def test_a_bad_reference_leaves_the_run_alone_and_says_what_is_wrong(
    tmp_path: Path, training: dict[str, Any], change: str, named: str
):
    good = evidence_model(tmp_path / "good", training)
    bad = evidence_model(tmp_path / "bad", _broken(training, change))
    volume = volume_of(noise(6, 7, gain=3.0))
    result = run_slices(bad, volume, list(range(6)), batch_size=4)
    np.testing.assert_allclose(result.probabilities, run_slices(good, volume, list(range(6))).probabilities)
    report = result.ood
    assert report is not None and not report.checked
    assert report.why_not.startswith(COULD_NOT) and named in report.why_not
    assert np.isnan(report.scores).all() and report.scores.shape == (6,)
    assert not report.flagged.any() and report.banner() == report.why_not
    assert report.summary()["items"] == 0 and report.summary()["flagged_fraction"] is None


def test_a_model_without_a_training_block_has_no_check(tmp_path: Path):
    loaded = evidence_model(tmp_path / "plain", None)
    report = run_slices(loaded, volume_of(noise(3, 8)), [0, 1, 2]).ood
    assert report is not None and not report.checked and report.why_not == NOT_AVAILABLE
    assert report.banner() == NOT_AVAILABLE and not report.flagged.any()


def test_the_guard_can_be_left_out_for_measuring_it(tmp_path: Path, training: dict[str, Any]):
    loaded = evidence_model(tmp_path / "m", training)
    volume = volume_of(noise(5, 9, gain=3.0))
    off = run_slices(loaded, volume, list(range(5)), guard=False)
    assert off.ood is not None and not off.ood.checked and off.ood.why_not == NOT_RUN
    np.testing.assert_allclose(off.probabilities, run_slices(loaded, volume, list(range(5))).probabilities)


# The run paths the guard rides on -----------------------------------------------------------------------


class OutOfMemoryAbove(torch.nn.Module):
    """EvidenceNet that runs out of CUDA memory in its features for batches above ``limit``."""

    def __init__(self, inner: Any, limit: int) -> None:  # a scripted EvidenceNet, with its exported methods
        super().__init__()
        self.inner, self.limit = inner, limit

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner.forward_features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.inner.forward_head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def test_features_of_halved_batches_line_up_with_their_slices(tmp_path: Path, training: dict[str, Any]):
    loaded = evidence_model(tmp_path / "m", training)
    x = noise(9, 10)
    x[[1, 6]] *= 3  # two bright slices: the flags must land on these two and no others
    volume = volume_of(x)
    expected = run_slices(loaded, volume, list(range(9)), batch_size=9).ood
    full = dataclasses.replace(loaded, module=OutOfMemoryAbove(loaded.module, limit=2))
    result = run_slices(full, volume, list(range(9)), batch_size=8)
    assert result.info.notes == ("CUDA ran out of memory; batch 8 -> 4", "CUDA ran out of memory; batch 4 -> 2")
    assert result.ood is not None and expected is not None and result.ood.checked
    np.testing.assert_allclose(result.ood.scores, expected.scores, rtol=1e-5)
    assert np.flatnonzero(result.ood.feature_flagged).tolist() == [1, 6]


def test_float16_on_the_cpu_runs_float32_and_the_guard_still_checks(tmp_path: Path, training: dict[str, Any]):
    loaded = evidence_model(tmp_path / "m", training)
    volume = volume_of(noise(6, 11))
    half = run_slices(loaded, volume, list(range(6)), precision="float16")
    assert half.info.precision == "float32" and half.info.notes[0].startswith("float16 runs only on CUDA")
    assert half.ood is not None and half.ood.checked
    full = run_slices(loaded, volume, list(range(6))).ood
    assert full is not None
    np.testing.assert_allclose(half.ood.scores, full.scores, rtol=1e-6)


def test_a_torch_export_program_cannot_give_its_features_and_says_so(
    exported: Exported, tmp_path: Path, training: dict[str, Any]
):
    meta = copy.deepcopy(METADATA)
    meta["medviewer"]["training"] = training
    package = read_package(write_bundle(tmp_path / "tiny", exported, meta))
    registry.approve(package.weights["export"], package)
    loaded = load_module(package, prefer="export")
    assert loaded.format == "export"
    result = run_slices(loaded, volume_of(noise(2, 12)), [0, 1])
    assert result.probabilities.shape == (2, 2)
    assert result.ood is not None and not result.ood.checked
    assert result.ood.why_not == (
        COULD_NOT + "the torch.export program has no forward_features or forward_head (it keeps only forward; "
        "the TorchScript file has them)"
    )


# The demo models on their own data and on real images ---------------------------------------------------


@pytest.fixture(scope="module")
def ct_model() -> LoadedModel:
    return load_module(read_package(CT_BUNDLE))


def _whole(loaded: LoadedModel, volume: Volume) -> OodReport:
    report = run_slices(loaded, volume, list(range(volume.shape[0]))).ood
    assert report is not None and report.checked, report.why_not if report else None
    return report


@pytest.mark.slow
@pytest.mark.parametrize("study", ["ct", "ct2"])
def test_the_demo_ct_model_passes_a_fresh_demo_ct(ct_model: LoadedModel, demo_dir: Path, study: str):
    report = _whole(ct_model, open_volume(demo_dir / study))
    assert report.image_reasons == ()  # CT, CHEST, 0.7 or 1.4 mm: all as trained
    assert report.flagged.mean() <= 0.05, report.banner()


@pytest.mark.slow
def test_the_demo_ct_model_flags_a_real_head_ct(ct_model: LoadedModel, ge_tilt_dir: Path):
    report = _whole(ct_model, open_volume(ge_tilt_dir))
    assert report.feature_flagged.mean() >= 0.9  # the features alone, not only the header's facts
    assert "body part HEAD; trained on CHEST" in report.image_reasons
    assert report.flagged.all()
    assert report.banner().startswith(f"Outside what this model was trained on: {report.scores.size} of ")


@pytest.mark.slow
def test_the_demo_ct_model_flags_pydicoms_ct_small(ct_model: LoadedModel):
    report = _whole(ct_model, open_volume(pydicom_file("CT_small.dcm")))
    assert report.scores.shape == (1,) and report.feature_flagged.all() and report.flagged.all()
    assert report.scores[0] > 2 * report.threshold  # type: ignore[operator]


@pytest.fixture(scope="module")
def patch_model() -> LoadedModel:
    return load_module(read_package(PATCH_BUNDLE))


@pytest.mark.slow
def test_the_demo_patch_model_passes_the_demo_slide_and_flags_a_real_one(patch_model: LoadedModel, demo_dir: Path):
    spec = patch_model.package.spec
    with open_slide(demo_dir / "slide.tiff") as slide:
        grid = patch_grid(slide, spec, region=(4096.0, 4096.0, 8192.0, 6144.0))
        demo = run_slide(patch_model, slide, grid)
    report = demo.ood
    assert report is not None and report.checked and report.scores.shape == (grid.rows, grid.columns)
    assert np.isnan(report.scores[~grid.tissue]).all() and not np.isnan(report.scores[grid.tissue]).any()
    assert grid.tissue.sum() >= 100 and report.image_reasons == ()
    assert report.flagged[grid.tissue].mean() <= 0.05, report.banner()

    with open_slide(real_file("wsi/CMU-1-Small-Region.svs")) as slide:
        grid = patch_grid(slide, spec)
        real = run_slide(patch_model, slide, grid).ood
    assert real is not None and real.checked and real.image_reasons == ()  # 0.499 µm: as trained
    tissue = grid.tissue
    assert real.flagged[tissue].mean() >= 0.9, real.banner()
    assert real.feature_flagged[tissue].mean() >= 0.5
    assert real.banner().startswith(f"Outside what this model was trained on: {int(real.flagged.sum())} of ")
    assert "patches" in real.banner()


@pytest.mark.slow
def test_the_demo_patch_model_flags_a_real_tcga_slide_by_its_colour(patch_model: LoadedModel):
    """The TCGA frozen section records no pixel size, so a run is given the 0.5 µm its scanner's 20x
    objective gives (the viewer itself refuses to run on it); its features alone pass about a fifth of its
    patches, and its colour balance, not any one channel's range, gives the rest away."""
    path = real_file("wsi/tcga-cr-7395-01a-01-ts1.svs")
    with open_slide(path) as recorded:
        assert recorded.mpp is None
    with AssumedMpp(path, 0.5) as slide:
        grid = patch_grid(slide, patch_model.package.spec)
        real = run_slide(patch_model, slide, grid).ood
    assert real is not None and real.checked and real.image_reasons == ()
    assert real.flagged[grid.tissue].mean() >= 0.9, real.banner()
    assert real.intensity_flagged[grid.tissue].mean() >= 0.9
    assert "intensities unlike the training data's" in real.banner()
