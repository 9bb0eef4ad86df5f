"""``medviewer infer``: the panel's run without the window, JSON out, saliency as NIfTI in the image's geometry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.ai import registry
from medviewer.ai.devices import choose_device
from medviewer.ai.package import read_package
from medviewer.cli.infer import infer_main
from medviewer.io import open_volume
from tests.support.models_for_tests import BoxVolumeNet, load_scripted, metadata
from tests.support.paths import REPO
from tests.support.tiny_bundle import Exported, write_bundle

DEMO_CT_MODEL = REPO / "models" / "ct_slice_lesion" / "bundle"


@pytest.fixture
def bundle(tmp_path: Path, exported: Exported) -> Path:
    return write_bundle(tmp_path / "tiny", exported)


def test_infer_prints_probabilities_identity_and_writes_saliency_in_the_volume_geometry(
    bundle: Path, demo_dir: Path, tmp_path: Path, capsys
):
    package = read_package(bundle)
    for weights in package.weights.values():
        registry.approve(weights, package)
    out = tmp_path / "saliency.nii.gz"
    code = infer_main(
        ["--model", str(bundle), str(demo_dir / "ct2"), "--json", "--saliency", "gradcam", "--saliency-out", str(out)]
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"]["sha256"] == registry.sha256_of(package.weights["torchscript"])
    assert report["model"]["device"] == choose_device() and report["model"]["diagnostic_use"] is False
    rows = report["per_slice"]
    assert [row["slice"] for row in rows] == list(range(1, 49)) and [row["index"] for row in rows] == list(range(48))
    assert all(sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5) for row in rows)
    volume = open_volume(demo_dir / "ct2")
    image = sitk.ReadImage(str(out))
    assert image.GetSize() == (256, 256, 48)
    np.testing.assert_allclose(image.GetOrigin(), volume.origin, atol=1e-3)
    np.testing.assert_allclose(image.GetSpacing(), volume.spacing, atol=1e-5)
    values = sitk.GetArrayFromImage(image)
    explained = report["saliency"]["index"]
    assert report["saliency"]["slice"] == explained + 1 == report["summary"]["slice"]
    assert values[explained].max() > 0.9  # normalised to 1 at the model input, then resized onto the slice
    assert not np.delete(values, explained, axis=0).any()


def test_an_unapproved_model_is_refused_with_its_hash(bundle: Path, demo_dir: Path, capsys):
    assert infer_main(["--model", str(bundle), str(demo_dir / "ct2")]) == 1
    error = capsys.readouterr().err
    assert "model.ts" in error and registry.sha256_of(bundle / "models" / "model.ts") in error


def test_a_volume_models_saliency_covers_the_volume_where_the_model_looks(demo_dir: Path, tmp_path: Path, capsys):
    meta = metadata(target="volume", shape=[4, 8, 8], intensity={"window": [-1000, 400]}, explain=False)
    loaded = load_scripted(tmp_path / "box", BoxVolumeNet(), meta)
    out = tmp_path / "volume-saliency.nii.gz"
    model = str(loaded.package.source)
    arguments = ["--model", model, str(demo_dir / "ct2"), "--json", "--saliency", "ig", "--saliency-out", str(out)]
    assert infer_main(arguments) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["saliency"]["slice"] is None and report["target"] == "volume"
    volume = open_volume(demo_dir / "ct2")
    image = sitk.ReadImage(str(out))
    assert image.GetSize() == (256, 256, 48)
    np.testing.assert_allclose(image.GetOrigin(), volume.origin, atol=1e-3)
    values = sitk.GetArrayFromImage(image)
    # The box is input voxels z 1-2, y and x 3-4: volume z 12-36, y and x 96-160 (12 slices, 32 pixels each).
    z, y, x = np.unravel_index(int(values.argmax()), values.shape)
    assert 12 <= z < 36 and 96 <= y < 160 and 96 <= x < 160
    outside = np.ones(values.shape, bool)
    outside[12 - 12 : 36 + 12, 96 - 32 : 160 + 32, 96 - 32 : 160 + 32] = False  # the box and one input voxel round
    assert values.max() > 0.9 and not values[outside].any()


@pytest.mark.slow
def test_a_ct_with_lesions_is_summarised_per_class_and_the_lesion_is_explained_where_it_peaks(
    demo_dir: Path, ground_truth: dict, tmp_path: Path, capsys
):
    """The first version printed the most confident slice of any class ("normal 0.9993, lesion 0.0007") on
    this CT, which has lesions: a script reading the headline concluded "no lesion"."""
    out = tmp_path / "lesion.nii.gz"
    ct = str(demo_dir / "ct")
    arguments = ["--model", str(DEMO_CT_MODEL), ct, "--saliency", "gradcam", "--saliency-out", str(out)]
    assert infer_main([*arguments, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = report["per_slice"]
    summary = report["summary"]
    assert summary["class"] == "lesion" and summary["slices"] == 120
    for name in ("normal", "lesion"):
        values = np.array([row["probabilities"][name] for row in rows])
        numbers = summary["classes"][name]
        assert numbers["max"] == pytest.approx(values.max(), abs=1e-6)
        assert numbers["max_index"] == int(values.argmax()) and numbers["max_slice"] == int(values.argmax()) + 1
        assert numbers["mean"] == pytest.approx(values.mean(), abs=1e-6)
        assert numbers["slices_above_0_5"] == int((values > 0.5).sum())
    assert summary["classes"]["lesion"]["max"] > 0.9 and summary["classes"]["lesion"]["slices_above_0_5"] >= 5
    # The lesion's peak is on a slice that cuts a planted lesion, and that slice is the one explained.
    volume = open_volume(demo_dir / "ct")
    peak = summary["classes"]["lesion"]["max_index"]
    cut = [
        abs(volume.world_to_index(lesion["center_lps_mm"])[0] - peak) * volume.spacing[2] <= lesion["radius_mm"]
        for lesion in ground_truth["ct"]["lesions"]
    ]
    assert any(cut)
    assert summary["index"] == peak == report["saliency"]["index"] and report["saliency"]["class"] == "lesion"
    values = sitk.GetArrayFromImage(sitk.ReadImage(str(out)))
    assert values[peak].max() > 0.5 and not np.delete(values, peak, axis=0).any()
    # The text says the same, the guard's words first, then the lesion class and where it peaks (1-based).
    assert infer_main(arguments) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == report["ood"]["banner"] and report["ood"]["level"] in ("inside", "scattered")
    assert lines[0].startswith("Checked against the training data: ")
    lesion_summary = summary["classes"]["lesion"]
    assert lines[1] == (
        f"lesion: highest {lesion_summary['max']:.4f} on slice {peak + 1}, mean {lesion_summary['mean']:.4f}, "
        f"above 0.5 on {lesion_summary['slices_above_0_5']} of 120 slices"
    )
    assert lines[2].startswith("normal: highest ")


@pytest.mark.slow
def test_one_slice_is_chosen_by_its_1_based_number(demo_dir: Path, capsys):
    ct2 = str(demo_dir / "ct2")
    assert infer_main(["--model", str(DEMO_CT_MODEL), ct2, "--slice", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(row["slice"], row["index"]) for row in report["per_slice"]] == [(1, 0)]
    assert report["summary"]["slice"] == 1 and report["summary"]["classes"]["lesion"]["slices_above_0_5"] in (0, 1)
    assert infer_main(["--model", str(DEMO_CT_MODEL), ct2, "--slice", "49"]) == 1
    assert "has 48 slices; there is no slice 49" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        infer_main(["--model", str(DEMO_CT_MODEL), ct2, "--slice", "0"])


def test_a_class_the_model_does_not_have_is_refused_before_the_run_naming_its_classes(
    bundle: Path, demo_dir: Path, capsys
):
    # The tiny bundle is not approved: a run would be refused for that; the class is refused first.
    assert infer_main(["--model", str(bundle), str(demo_dir / "ct2"), "--class", "nodule"]) == 1
    error = capsys.readouterr().err
    assert str(bundle) in error and "no class 'nodule'" in error and "normal, lesion" in error
    assert "approved" not in error
