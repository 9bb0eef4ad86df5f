"""``medviewer infer``: the window's model runs without the window, for scripts and batch review.

It goes through the same package reading, approval check, preprocessing, inference and saliency
functions as the AI panel, so a result on the command line is the result the window shows. Output is
JSON (or a line per class); saliency of a volume is written as NIfTI in the volume's own geometry,
zero away from the explained slice, so any viewer lays it over the image.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medviewer.ai.package import read_package
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medviewer infer", description="Run an approved model on an image and print what it thinks."
    )
    parser.add_argument("--model", required=True, type=Path, help="model bundle folder, .ts or .pt2 file")
    parser.add_argument("path", type=Path, metavar="PATH", help="DICOM file or folder, or NIfTI file")
    parser.add_argument("--target", choices=("slice", "volume"), help="defaults to the model's own target")
    parser.add_argument("--slice", type=int, help="for slice models: only this slice (0-based); default every slice")
    parser.add_argument("--saliency", choices=("gradcam", "occlusion", "ig"), help="explain the top class")
    parser.add_argument("--saliency-out", type=Path, metavar="FILE", help="NIfTI file for the saliency map")
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), help="default: CUDA, then MPS, then CPU")
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def infer_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    if args.saliency and not args.saliency_out:
        print("medviewer infer: --saliency needs --saliency-out FILE", file=sys.stderr)
        return 2
    try:
        report = _infer(args)
    except MedviewerError as exc:
        print(f"medviewer infer: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, value in report["probabilities"].items():
            print(f"{name}: {value:.4f}")
        print(f"model {report['model']['name']} {report['model']['version']} sha256 {report['model']['sha256']}")
    return 0


def _infer(args: argparse.Namespace) -> dict:
    from medviewer.ai.devices import choose_device
    from medviewer.ai.inference import run_slices, run_volume, set_torch_threads
    from medviewer.ai.package import load_module
    from medviewer.io import open_volume

    package = read_package(args.model)
    target = args.target or package.spec.target
    if target != package.spec.target:
        raise MedviewerError(args.model, f"the model's target is {package.spec.target}, not {target}")
    set_torch_threads()
    loaded = load_module(package, device=choose_device(args.device))
    volume = open_volume(args.path)
    report: dict = {"model": {}, "image": str(args.path), "target": target}
    if target == "volume":
        result = run_volume(loaded, volume)
        report["probabilities"] = dict(zip(result.classes, map(float, result.probabilities), strict=True))
        explained = None
    else:
        indices = [args.slice] if args.slice is not None else list(range(volume.shape[0]))
        result = run_slices(loaded, volume, indices)
        index, name, probability = result.best()
        row = list(result.indices).index(index)
        report["probabilities"] = dict(zip(result.classes, map(float, result.probabilities[row]), strict=True))
        report["best"] = {"slice": index, "class": name, "probability": float(probability)}
        report["per_slice"] = {
            str(k): dict(zip(result.classes, map(float, p), strict=True))
            for k, p in zip(result.indices, result.probabilities, strict=True)
        }
        explained = (index, int(np.argmax(result.probabilities[row])))
    info = result.info
    report["model"] = {
        "name": info.model_name,
        "version": info.model_version,
        "sha256": info.model_hash,
        "device": info.device,
        "precision": info.precision,
        "duration_s": round(info.duration_s, 4),
        "notes": list(info.notes),
        "diagnostic_use": package.spec.diagnostic_use,
    }
    if args.saliency:
        if explained is None:
            raise MedviewerError(args.model, "saliency is written for slice models in this version")
        report["saliency"] = _write_saliency(loaded, volume, *explained, args.saliency, args.saliency_out)
    return report


def _write_saliency(loaded: object, volume: Volume, index: int, class_index: int, method: str, out: Path) -> dict:
    """Explain the slice's top class (from the run's own probabilities) and write the map in the volume's
    geometry (NIfTI)."""
    import SimpleITK as sitk

    from medviewer.ai.preprocess import input_to_slice, slice_batch
    from medviewer.ai.saliency import METHODS

    spec = loaded.package.spec
    saliency = METHODS[method](loaded, slice_batch(volume, [index], spec), class_index)
    full = np.zeros(volume.shape, dtype=np.float32)
    full[index] = input_to_slice(saliency, volume, index, spec)
    image = Volume(full, volume.spacing, volume.origin, volume.direction).to_sitk()
    out.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(out))
    return {"file": str(out), "method": method, "class": spec.classes[class_index], "slice": index}
