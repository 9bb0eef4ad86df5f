"""``medviewer infer``: the panel's run without the window, JSON out, saliency as NIfTI in the image's geometry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.ai import registry
from medviewer.ai.infer_command import infer_main
from medviewer.ai.package import read_package
from medviewer.io import open_volume
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
    assert report["model"]["device"] == "cpu" and report["model"]["diagnostic_use"] is False
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
