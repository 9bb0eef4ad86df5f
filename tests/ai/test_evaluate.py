"""``medviewer evaluate`` and its metrics: figures checked against hand-computed cases and the model itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medviewer.ai import registry
from medviewer.ai.metrics import calibration, evaluate_probabilities, roc_auc_score
from medviewer.ai.package import load_module, read_package
from medviewer.ai.preprocess import slice_batch
from medviewer.cli.evaluate import evaluate_main
from medviewer.io import open_volume
from tests.support.tiny_bundle import Exported, write_bundle


def test_roc_auc_is_the_chance_a_positive_outscores_a_negative():
    assert roc_auc_score(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert roc_auc_score(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)  # a tie counts half
    assert roc_auc_score(np.array([1, 1]), np.array([0.2, 0.3])) is None


def test_confusion_precision_recall_and_calibration():
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 1, 1, 1])
    result = evaluate_probabilities(probabilities, labels, ("normal", "lesion"))
    assert result.confusion == [[1, 0], [2, 1]]
    assert result.accuracy == pytest.approx(0.5)
    assert result.per_class["lesion"].precision == pytest.approx(1.0)
    assert result.per_class["lesion"].recall == pytest.approx(1 / 3)
    assert result.per_class["normal"].f1 == pytest.approx(2 * (1 / 3) * 1 / (1 / 3 + 1))
    ece, bins = calibration(np.array([0.95, 0.95, 0.55, 0.55]), np.array([True, True, True, False]))
    assert ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)
    assert [b[2] for b in bins] == [2, 2]


def test_evaluate_command_reports_what_the_model_gives_on_the_labelled_files(
    demo_dir: Path, tmp_path: Path, capsys, exported: Exported
):
    bundle = write_bundle(tmp_path / "tiny", exported)
    package = read_package(bundle)
    for weights in package.weights.values():
        registry.approve(weights, package)
    files = sorted((demo_dir / "ct2").iterdir())[::6]
    labels = tmp_path / "labels.csv"
    names = ["lesion" if i % 2 else "normal" for i in range(len(files))]
    labels.write_text("path,label\n" + "".join(f"{f},{n}\n" for f, n in zip(files, names, strict=True)))
    capsys.readouterr()  # MONAI's export above logs to stdout
    assert evaluate_main(["--model", str(bundle), "--labels", str(labels), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    loaded = load_module(package)
    import torch

    expected = []
    for f in files:
        volume = open_volume(f)
        x = torch.from_numpy(slice_batch(volume, [0], package.spec))
        expected.append(torch.softmax(loaded.module(x), 1).detach().numpy()[0])
    predicted = np.argmax(expected, axis=1)
    truth = np.array([package.spec.classes.index(n) for n in names])
    assert report["count"] == len(files)
    assert report["accuracy"] == pytest.approx(float((predicted == truth).mean()))
    assert np.asarray(report["confusion_matrix"]).sum() == len(files)
    plot = Image.open(report["reliability_plot"])
    assert plot.size == (480, 480)


def test_unknown_labels_and_missing_files_name_the_line(tmp_path: Path, capsys, exported: Exported):
    bundle = write_bundle(tmp_path / "tiny", exported)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\nnowhere.dcm,normal\n")
    assert evaluate_main(["--model", str(bundle), "--labels", str(labels)]) == 1
    assert "line 2: no such file nowhere.dcm" in capsys.readouterr().err
    labels.write_text(f"path,label\n{labels},tumour\n")
    assert evaluate_main(["--model", str(bundle), "--labels", str(labels)]) == 1
    assert "'tumour' is not one of the model's classes" in capsys.readouterr().err


def test_evaluate_finds_an_approved_model_by_name_and_says_the_precision_it_ran_at(
    demo_dir: Path, tmp_path: Path, capsys, exported: Exported
):
    from medviewer.ai.devices import choose_device
    from medviewer.cli import main

    bundle = write_bundle(tmp_path / "tiny", exported)
    assert main(["models", "add", str(bundle), "--yes"]) == 0
    files = sorted((demo_dir / "ct2").iterdir())[::12]
    names = ["normal", "lesion"] * (len(files) // 2)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"{f},{n}\n" for f, n in zip(files, names, strict=True)))
    capsys.readouterr()
    by_name = ["--model", "tiny lesion classifier@0.1.0", "--labels", str(labels), "--json"]
    assert evaluate_main(by_name) == 0
    float32 = json.loads(capsys.readouterr().out)
    device = choose_device()
    assert (float32["precision"], float32["notes"], float32["device"]) == ("float32", [], device)
    assert float32["model"] == "tiny lesion classifier" and float32["model_version"] == "0.1.0"
    assert float32["model_sha256"] == registry.sha256_of(bundle / "models" / "model.ts")
    assert evaluate_main([*by_name, "--precision", "float16"]) == 0
    float16 = json.loads(capsys.readouterr().out)
    if device == "cuda":  # run by hand on a GPU machine (tests/device): autocast, and nothing to say
        assert (float16["precision"], float16["notes"]) == ("float16", [])
    else:
        assert float16["precision"] == "float32"
        assert float16["notes"] == [f"float16 runs only on CUDA; ran in float32 on {device}"]
        assert float16["accuracy"] == float32["accuracy"] and float16["roc_auc"] == float32["roc_auc"]
    assert evaluate_main(by_name[:-1] + ["--precision", "float16"]) == 0
    text = capsys.readouterr().out
    assert f"  ran on {device} in {float16['precision']}, SHA-256 {float32['model_sha256']}" in text
    assert all(f"  note: {note}" in text for note in float16["notes"])


def test_evaluate_names_the_approved_models_when_the_name_is_unknown(tmp_path: Path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n")
    assert evaluate_main(["--model", "no-such-model", "--labels", str(labels)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("medviewer evaluate: no-such-model: no such file or folder, and no approved model")
    assert "approved models: ct-slice-lesion-demo@" in error and error.count("\n") == 1
