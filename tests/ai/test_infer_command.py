"""``medviewer infer``: the panel's run without the window, JSON out, saliency as NIfTI in the image's geometry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.ai import registry
from medviewer.ai.devices import choose_device
from medviewer.ai.infer_command import infer_main
from medviewer.ai.package import read_package
from medviewer.io import open_volume
from tests.ai.models_for_tests import BoxVolumeNet, load_scripted, metadata
from tests.ai.tiny_bundle import Exported, write_bundle


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
    assert sum(report["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert len(report["per_slice"]) == 48
    volume = open_volume(demo_dir / "ct2")
    image = sitk.ReadImage(str(out))
    assert image.GetSize() == (256, 256, 48)
    np.testing.assert_allclose(image.GetOrigin(), volume.origin, atol=1e-3)
    np.testing.assert_allclose(image.GetSpacing(), volume.spacing, atol=1e-5)
    values = sitk.GetArrayFromImage(image)
    explained = report["saliency"]["slice"]
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
