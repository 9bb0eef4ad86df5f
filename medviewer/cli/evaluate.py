"""``medviewer evaluate``: how good is an approved model on labelled images the user holds?

The labels file is CSV with ``path,label`` (paths relative to the CSV's folder; ``label`` a class name
of the model). Slice models read single-slice DICOM or NIfTI files, patch models PNG patches, through
the same preprocessing the window uses, so the figures describe what the window will show.

``--model`` is a package path or an approved model's ``name[@version]`` (``model_lookup.resolve_model``).
``--precision float16`` runs under CUDA autocast; elsewhere the run is float32. The report says the device
and precision the figures were measured at, and what went differently from what was asked (float32 for
float16, a smaller batch or the CPU after CUDA ran out of memory), as a run in the window does.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medviewer.ai.inference import Precision, RunInfo
from medviewer.ai.metrics import Evaluation, evaluate_probabilities, write_reliability_plot
from medviewer.ai.model_lookup import add_model_arguments, resolve_model
from medviewer.ai.package import ModelPackage, read_package
from medviewer.core.errors import MedviewerError, UnsupportedFileError

BATCH = 32


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="medviewer evaluate", description="Measure a model on labelled images.")
    add_model_arguments(parser)
    parser.add_argument("--labels", required=True, type=Path, help="CSV with columns path,label")
    parser.add_argument("--plot", type=Path, help="reliability plot PNG (default: beside the labels file)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def evaluate_main(argv: Sequence[str]) -> int:

    args = _parser().parse_args(list(argv))
    try:
        package = read_package(resolve_model(args.model))
        rows = read_labels(args.labels, package)
        evaluation, info = evaluate_model(package, rows, precision=args.precision)
    except MedviewerError as exc:
        print(f"medviewer evaluate: {exc}", file=sys.stderr)
        return 1
    plot = args.plot or args.labels.with_name(f"{args.labels.stem}_reliability.png")
    write_reliability_plot(evaluation, plot)
    if args.json:
        print(json.dumps({**evaluation.as_dict(), "reliability_plot": str(plot), **run_fields(info)}, indent=2))
    else:
        print(summary(evaluation, package, info))
        print(f"reliability plot: {plot}")
    return 0


def run_fields(info: RunInfo) -> dict[str, str | list[str]]:
    """What produced the figures, for the JSON report: ``model`` (its name, as before), its version and
    SHA-256, and the device, precision and notes of the run."""
    return {
        "model": info.model_name,
        "model_version": info.model_version,
        "model_sha256": info.model_hash,
        "device": info.device,
        "precision": info.precision,
        "notes": list(info.notes),
    }


def read_labels(path: Path, package: ModelPackage) -> list[tuple[Path, int]]:
    """(image path, class index) rows; an unknown class or a missing file is an error naming the row."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"path", "label"} <= set(reader.fieldnames):
                raise UnsupportedFileError(path, "a labels file needs the columns path,label")
            raw = list(reader)
    except OSError as exc:
        raise MedviewerError(path, f"cannot be read ({exc.strerror})") from exc
    classes = list(package.spec.classes)
    rows = []
    for line, row in enumerate(raw, start=2):
        if row["label"] not in classes:
            raise MedviewerError(path, f"line {line}: {row['label']!r} is not one of the model's classes {classes}")
        image = (path.parent / row["path"]).resolve()
        if not image.is_file():
            raise MedviewerError(path, f"line {line}: no such file {row['path']}")
        rows.append((image, classes.index(row["label"])))
    if not rows:
        raise MedviewerError(path, "holds no labelled images")
    return rows


def evaluate_model(
    package: ModelPackage,
    rows: list[tuple[Path, int]],
    precision: Precision = "float32",
    device: str | None = None,
) -> tuple[Evaluation, RunInfo]:
    """The figures, and how they were measured (the ``RunInfo`` a run in the window carries: device and
    precision it actually ran at, and notes on what changed). Through the forward passes the window's runs
    use (``inference.forward_in_passes``): the same output checks, activation, float16 autocast and
    out-of-memory fallback, so a model that fails says so as it does in the window. ``device`` defaults to
    the fastest present (``devices.choose_device``)."""
    from medviewer.ai.devices import choose_device
    from medviewer.ai.inference import RunningModel, forward_in_passes, set_torch_threads
    from medviewer.ai.package import load_module

    set_torch_threads()
    run = RunningModel(load_module(package, device=choose_device(device)), precision)
    outputs, size = [], BATCH
    for start in range(0, len(rows), BATCH):
        x = _inputs(package, [image for image, _ in rows[start : start + BATCH]])
        output, size = forward_in_passes(run, x, size)
        outputs.append(output)
    labels = np.array([label for _, label in rows])
    return evaluate_probabilities(np.concatenate(outputs), labels, package.spec.classes), run.info(size)


def _inputs(package: ModelPackage, images: list[Path]) -> np.ndarray:
    """One batch through the window's own preprocessing for the model's target."""
    spec = package.spec
    if spec.target == "slide_patch":
        from PIL import Image

        from medviewer.ai.slide_run import model_input

        patches = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in images])
        return model_input(patches, spec)
    if spec.target == "slice":
        from medviewer.ai.preprocess import slice_batch
        from medviewer.io import open_volume

        batches = []
        for image in images:
            volume = open_volume(image)
            batches.append(slice_batch(volume, [volume.shape[0] // 2], spec))
        return np.concatenate(batches)
    raise MedviewerError(package.source, f"evaluate takes slice or slide_patch models, not {spec.target}")


def summary(evaluation: Evaluation, package: ModelPackage, info: RunInfo | None = None) -> str:
    lines = [f"{package.name} {package.version} on {evaluation.count} images: accuracy {evaluation.accuracy:.3f}"]
    if info is not None:
        lines.append(f"  ran on {info.device} in {info.precision}, SHA-256 {info.model_hash}")
        lines += [f"  note: {note}" for note in info.notes]
    for name, m in evaluation.per_class.items():
        auc = evaluation.roc_auc[name]
        auc_text = f"{auc:.3f}" if auc is not None else "n/a"
        lines.append(
            f"  {name}: precision {m.precision:.3f} recall {m.recall:.3f} F1 {m.f1:.3f} "
            f"ROC AUC {auc_text} (n={m.support})"
        )
    lines.append(f"  confusion (rows true, columns predicted): {evaluation.confusion}")
    lines.append(f"  expected calibration error: {evaluation.expected_calibration_error:.3f}")
    return "\n".join(lines)
