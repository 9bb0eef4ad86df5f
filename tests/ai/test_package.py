"""Model packages are read from MONAI's own exports, without torch, and bad metadata is refused by field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from medviewer.ai import registry
from medviewer.ai.model_card import card_summary
from medviewer.ai.package import (
    ExplainSpec,
    IntensityScale,
    IntensityWindow,
    ModelPackageError,
    read_package,
)
from medviewer.core.errors import PathNotFoundError
from tests.support.paths import REPO
from tests.support.tiny_bundle import CLASSES, METADATA, Exported, TinyNet, export_tiny, metadata_with, write_bundle

# torch 2.13 deprecates torch.jit; the tests still write TorchScript because real bundles ship it.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def test_torchscript_from_ckpt_export_reads_alone(exported: Exported):
    package = read_package(exported.ts)
    assert (package.name, package.version) == ("tiny lesion classifier", "0.1.0")
    assert package.intended_use == METADATA["intended_use"]
    assert package.weights == {"torchscript": exported.ts}
    assert package.card == ""
    spec = package.spec
    assert (spec.target, spec.shape, spec.channels, spec.classes) == ("slice", (16, 16), 1, tuple(CLASSES))
    assert spec.activation == "softmax"
    assert spec.spacing_mm == (0.8, 0.8) and spec.mpp is None
    assert spec.intensity == IntensityWindow(-1000.0, 400.0)
    assert spec.explain == ExplainSpec("forward_features", "forward_head")
    assert spec.diagnostic_use is False


def test_export_program_reads_alone(exported: Exported):
    package = read_package(exported.pt2)
    assert package.weights == {"export": exported.pt2}
    assert package.spec.classes == tuple(CLASSES)


def test_bundle_folder_with_both_formats_and_card(exported: Exported, tmp_path: Path):
    bundle = write_bundle(tmp_path / "tiny", exported, card="# Tiny\nTrained on nothing.\n")
    package = read_package(bundle)
    assert package.source == bundle
    assert package.weights == {"torchscript": bundle / "models/model.ts", "export": bundle / "models/model.pt2"}
    assert package.card.startswith("# Tiny")
    assert package.metadata["network_data_format"]["outputs"]["pred"]["num_channels"] == 2


def test_bundle_with_one_format(exported: Exported, tmp_path: Path):
    bundle = write_bundle(tmp_path / "tiny", exported)
    (bundle / "models/model.ts").unlink()
    assert set(read_package(bundle).weights) == {"export"}


def test_metadata_is_read_without_torch(exported: Exported):
    """The package and its hash are read before torch may touch the file: here torch cannot even be imported."""
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['monai'] = None\n"
        "from pathlib import Path\n"
        "from medviewer.ai.package import read_package\n"
        "from medviewer.ai.registry import sha256_of\n"
        f"package = read_package(Path({str(exported.ts)!r}))\n"
        "print(package.spec.classes, len(sha256_of(package.weights['torchscript'])))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "('normal', 'lesion') 64"


def test_classes_channels_and_shape_come_from_network_data_format(exported: Exported, tmp_path: Path):
    metadata = metadata_with({"medviewer": {"target": "slice", "output": {"activation": "sigmoid"}}})
    package = read_package(write_bundle(tmp_path / "b", exported, metadata))
    assert (package.spec.classes, package.spec.channels, package.spec.shape) == (tuple(CLASSES), 1, (16, 16))
    assert package.spec.intensity is None and package.spec.explain is None


@pytest.mark.parametrize(
    ("pred_type", "pred_format"),
    [("probabilities", "classes"), ("probability", "classification"), ("probabilities", "classification"), (..., ...)],
)
def test_real_bundle_spellings_are_accepted(exported: Exported, tmp_path: Path, pred_type: Any, pred_format: Any):
    pred = "network_data_format.outputs.pred"
    metadata = metadata_with({f"{pred}.type": pred_type, f"{pred}.format": pred_format})
    assert read_package(write_bundle(tmp_path / "b", exported, metadata)).spec.classes == tuple(CLASSES)


def test_slide_patch_scale_and_diagnostic_use(exported: Exported, tmp_path: Path):
    metadata = metadata_with(
        {
            "medviewer.target": "slide_patch",
            "medviewer.input": {"mpp": 0.5, "intensity": {"scale": {"mean": [0.5], "std": [0.25], "max": 255}}},
            "medviewer.diagnostic_use": True,
        }
    )
    spec = read_package(write_bundle(tmp_path / "b", exported, metadata)).spec
    assert (spec.target, spec.mpp, spec.spacing_mm) == ("slide_patch", 0.5, None)
    assert spec.intensity == IntensityScale((0.5,), (0.25,), 255.0)
    assert spec.diagnostic_use is True


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", 5, "name is 5, not a non-empty string"),
        ("version", 1, "version is 1, not a non-empty string"),
        ("medviewer", ..., "medviewer is missing"),
        ("medviewer.target", ..., "medviewer.target is missing"),
        ("medviewer.target", "organ", "medviewer.target is 'organ'; expected one of slice, volume, slide_patch"),
        ("medviewer.target", "volume", "medviewer.input.shape has 2 sizes but a volume model takes 3"),
        ("medviewer.input", 5, "medviewer.input is not an object"),
        ("medviewer.input.channels", 0, "medviewer.input.channels is 0, not a positive whole number"),
        (
            "medviewer.input.channels",
            3,
            "medviewer.input.channels is 3 but network_data_format.inputs.image.num_channels is 1",
        ),
        (
            "medviewer.input.shape",
            [16, 32],
            "medviewer.input.shape is [16, 32] but network_data_format.inputs.image.spatial_shape is [16, 16]",
        ),
        ("medviewer.input.shape", [16, -1], "medviewer.input.shape[1] is -1, not a positive whole number"),
        (
            "medviewer.input.spacing_mm",
            [0.8],
            "medviewer.input.spacing_mm has 1 values but medviewer.input.shape has 2",
        ),
        (
            "medviewer.input.spacing_mm",
            [0.8, 0],
            "medviewer.input.spacing_mm is [0.8, 0]; every value must be positive",
        ),
        ("medviewer.input.mpp", "fine", "medviewer.input.mpp is 'fine', not a positive number"),
        (
            "medviewer.input.intensity",
            {"window": [400, -1000]},
            "medviewer.input.intensity.window is [400, -1000], not [low, high]",
        ),
        ("medviewer.input.intensity", {"window": [0, 1], "scale": {}}, "must hold either window or scale"),
        ("medviewer.input.intensity", {"scale": {"mean": [0.5]}}, "medviewer.input.intensity.scale.std is missing"),
        (
            "medviewer.input.intensity",
            {"scale": {"mean": [1, 2], "std": [1]}},
            "scale.mean has 2 values; expected 1 or one per channel (1)",
        ),
        ("medviewer.output.activation", ..., "medviewer.output.activation is missing"),
        (
            "medviewer.output.activation",
            "relu",
            "medviewer.output.activation is 'relu'; expected one of softmax, sigmoid, none",
        ),
        (
            "medviewer.output.classes",
            ["a", "b"],
            "medviewer.output.classes is ['a', 'b'] but network_data_format.outputs.pred.channel_def names "
            "['normal', 'lesion']",
        ),
        ("medviewer.output.classes", "lesion", "medviewer.output.classes is 'lesion', not a list of class names"),
        (
            "network_data_format.outputs.pred.num_channels",
            3,
            "medviewer.output.classes has 2 names but network_data_format.outputs.pred.num_channels is 3",
        ),
        (
            "network_data_format.outputs.pred.channel_def",
            {"0": "normal", "2": "lesion"},
            "channel_def is {'0': 'normal', '2': 'lesion'}, not names for channels 0, 1",
        ),
        (
            "network_data_format.outputs.pred.type",
            "image",
            "network_data_format.outputs.pred.type is 'image'; a classifier's output is probabilities or probability",
        ),
        ("network_data_format.outputs.pred.format", "segmentation", "format is 'segmentation', a segmentation output"),
        ("network_data_format.outputs.pred.format", "labels", "format is 'labels', a segmentation output"),
        ("network_data_format.outputs.pred.format", "tuples", "format is 'tuples'; expected classes or classification"),
        ("medviewer.explain", {"features": "forward_features"}, "medviewer.explain.head is missing"),
        ("medviewer.diagnostic_use", "yes", "medviewer.diagnostic_use is 'yes', not true or false"),
    ],
)
def test_bad_metadata_names_the_field(exported: Exported, tmp_path: Path, field: str, value: Any, message: str):
    bundle = write_bundle(tmp_path / "b", exported, metadata_with({field: value}))
    with pytest.raises(ModelPackageError, match="configs/metadata.json: ") as raised:
        read_package(bundle)
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"medviewer.input.shape": ..., "network_data_format.inputs.image.spatial_shape": ...},
            "medviewer.input.shape is missing (and so is network_data_format.inputs.image.spatial_shape)",
        ),
        (
            {"medviewer.input.shape": ..., "network_data_format.inputs.image.spatial_shape": ["8*n", "8*n"]},
            "medviewer.input.shape is missing and network_data_format.inputs.image.spatial_shape ['8*n', '8*n'] "
            "is not a list of fixed sizes",
        ),
        (
            {"medviewer.input.channels": ..., "network_data_format.inputs.image.num_channels": ...},
            "medviewer.input.channels is missing",
        ),
        (
            {"medviewer.output.classes": ..., "network_data_format.outputs.pred.channel_def": ...},
            "medviewer.output.classes is missing (and so is network_data_format.outputs.pred.channel_def)",
        ),
        (
            {"medviewer.output.classes": ["lesion"], "network_data_format.outputs.pred": {}},
            "medviewer.output.activation is softmax but there is 1 class",
        ),
        (
            {"medviewer.output.classes": ["a", "a"], "network_data_format.outputs.pred": {}},
            "medviewer.output.classes names a class twice",
        ),
        (
            {"medviewer.target": "slide_patch", "medviewer.input.spacing_mm": ...},
            "medviewer.input.mpp is missing; a slide_patch model needs",
        ),
    ],
)
def test_missing_from_both_sources_or_inconsistent(exported: Exported, tmp_path: Path, changes: dict, message: str):
    with pytest.raises(ModelPackageError) as raised:
        read_package(write_bundle(tmp_path / "b", exported, metadata_with(changes)))
    assert message in str(raised.value)


def test_single_file_error_names_file_and_embedded_metadata(tmp_path: Path):
    torch.manual_seed(0)
    scripted = torch.jit.script(TinyNet())
    bad = metadata_with({"medviewer.output.activation": "relu"})
    torch.jit.save(scripted, tmp_path / "bad.ts", _extra_files={"metadata.json": json.dumps(bad)})
    with pytest.raises(ModelPackageError) as raised:
        read_package(tmp_path / "bad.ts")
    assert str(raised.value).startswith(f"{tmp_path / 'bad.ts'}: metadata.json: medviewer.output.activation is 'relu'")


def test_bundle_weights_from_another_version_are_refused(exported: Exported, tmp_path: Path):
    bundle = write_bundle(tmp_path / "b", exported, metadata_with({"version": "0.2.0"}))
    with pytest.raises(ModelPackageError) as raised:
        read_package(bundle)
    assert (
        "models/model.ts: its embedded metadata.json has version '0.1.0' but configs/metadata.json has '0.2.0'"
        in str(raised.value)
    )


def _torchscript_without_metadata(path: Path) -> None:
    torch.jit.save(torch.jit.script(TinyNet()), path)


def _state_dict(path: Path) -> None:
    torch.save(TinyNet().state_dict(), path)


def _bad_json(path: Path) -> None:
    torch.jit.save(torch.jit.script(TinyNet()), path, _extra_files={"metadata.json": "{not json"})


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (
            lambda p: p.write_text("a CT report, not a model"),
            "is not a model: TorchScript and torch.export files are zip archives",
        ),
        (lambda p: p.write_bytes(b""), "is not a model"),
        (_state_dict, "neither a TorchScript model nor a torch.export program"),
        (_torchscript_without_metadata, "is a TorchScript model without metadata.json in its extra files"),
        (_bad_json, "metadata.json: not valid JSON"),
    ],
)
def test_files_that_are_not_model_packages_are_refused(tmp_path: Path, write: Any, message: str):
    path = tmp_path / "candidate.ts"
    write(path)
    with pytest.raises(ModelPackageError) as raised:
        read_package(path)
    assert str(raised.value).startswith(str(path)) and message in str(raised.value)


def test_folders_that_are_not_bundles_are_refused(exported: Exported, tmp_path: Path):
    with pytest.raises(ModelPackageError, match="no configs/metadata.json"):
        read_package(tmp_path)
    bundle = write_bundle(tmp_path / "b", exported)
    (bundle / "models/model.ts").unlink()
    (bundle / "models/model.pt2").unlink()
    with pytest.raises(ModelPackageError, match="has no weights: neither models/model.ts nor models/model.pt2"):
        read_package(bundle)
    (bundle / "models/model.ts").write_bytes(exported.pt2.read_bytes())
    with pytest.raises(ModelPackageError, match="is a torch.export program, not a TorchScript model"):
        read_package(bundle)
    with pytest.raises(PathNotFoundError):
        read_package(tmp_path / "missing.ts")


def test_a_monai_export_without_a_name_is_named_from_its_task_else_its_file(tmp_path: Path):
    """MONAI's metadata schema does not require ``name`` (model-zoo bundles before 2023 have none): such a
    file written by ckpt_export loads, named from ``task``, else from its file or folder, and says so."""
    tasked = export_tiny(tmp_path / "tasked", metadata_with({"name": ..., "task": "Lesion classification"}))
    package = read_package(tasked.ts)
    assert (package.name, package.name_from) == ("Lesion classification", "task")
    hashes = {file: registry.sha256_of(file) for file in package.weights.values()}
    assert "(the metadata has no name: named from its task)" in card_summary(package, hashes)
    plain = export_tiny(tmp_path / "plain", metadata_with({"name": ...}))
    assert (read_package(plain.ts).name, read_package(plain.ts).name_from) == ("model", "file name")
    bundle = read_package(write_bundle(tmp_path / "chest-xray-classifier", plain, metadata_with({"name": ...})))
    assert (bundle.name, bundle.name_from) == ("chest-xray-classifier", "file name")
    registry.approve(bundle.weights["torchscript"], bundle)  # approved as any named model
    assert registry.is_approved(bundle.weights["torchscript"], bundle)
