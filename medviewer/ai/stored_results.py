"""AI results kept on disk, so a study or slide opened again shows what the model said without running it again.

A result is one ``.npz`` file in ``data_dir()/ai_results``: its arrays (probabilities; slice indices, or the
patch grid's tissue mask) and a JSON header with the rest (classes, the run's ``RunInfo``, the grid's geometry,
the model's activation and whether it is cleared for diagnosis, which the display needs even when the model
is no longer installed), and the out-of-distribution guard's verdict (its scores and flags as arrays, the
rest in the header; absent in results kept before the guard existed, which then show that nothing is
known). The catalog's ``ai_results`` row names the file. No pickles: ``np.load`` reads the
file with ``allow_pickle=False``, so a planted file cannot run code.
"""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medviewer.ai.inference import RunInfo, SliceResult, VolumeResult
from medviewer.ai.ood import OodReport
from medviewer.ai.package import ModelPackage
from medviewer.ai.slide_run import PatchGrid, SlideResult
from medviewer.core.app_dirs import data_dir
from medviewer.core.errors import CorruptFileError, MedviewerError
from medviewer.io.atomic_write import write_atomic

RESULTS_FOLDER = "ai_results"
FORMAT = "medviewer-ai-result"
VERSION = 1

ResultKind = Literal["slices", "volume", "slide"]
Result = SliceResult | VolumeResult | SlideResult


@dataclass(frozen=True, eq=False)
class StoredResult:
    """A result as the panel shows it: what was computed, and how the model's outputs are to be read."""

    kind: ResultKind
    result: Result
    activation: str
    diagnostic_use: bool
    #: The image it was computed on: a volume's (z, y, x) shape, or a slide's level-0 (width, height). An image
    #: at the same key that no longer matches (a series re-imported with other slices, a slide replaced) must
    #: not be shown the old result.
    image_shape: tuple[int, ...]


def of_run(kind: ResultKind, result: Result, package: ModelPackage, image: object) -> StoredResult:
    """A fresh run's result, with what the display needs of its model and the image it ran on."""
    spec = package.spec
    return StoredResult(kind, result, spec.activation, spec.diagnostic_use, shape_of(image))


def shape_of(image: object) -> tuple[int, ...]:
    """What identifies an image's grid for a kept result: a slide's level-0 (width, height), a volume's shape."""
    dimensions = getattr(image, "dimensions", None)  # a Slide; a Volume has a shape instead
    return tuple(int(n) for n in (dimensions if dimensions is not None else image.shape))  # type: ignore[attr-defined]


def results_folder() -> Path:
    return data_dir() / RESULTS_FOLDER


def save_result(stored: StoredResult, folder: Path | None = None) -> Path:
    """Write the result to a new file in ``folder`` (default ``results_folder()``) and return its path."""
    folder = folder or results_folder()
    result = stored.result
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "kind": stored.kind,
        "classes": list(result.classes),
        "activation": stored.activation,
        "diagnostic_use": stored.diagnostic_use,
        "image_shape": [int(n) for n in stored.image_shape],
        "info": {**asdict(result.info), "notes": list(result.info.notes)},
    }
    arrays: dict[str, np.ndarray] = {"probabilities": np.asarray(result.probabilities, dtype=np.float32)}
    if isinstance(result, SliceResult):
        arrays["indices"] = np.asarray(result.indices, dtype=np.int64)
    elif isinstance(result, SlideResult):
        grid = result.grid
        header["grid"] = {
            "origin": list(grid.origin),
            "patch_size_level0": list(grid.patch_size_level0),
            "rows": grid.rows,
            "columns": grid.columns,
            "level": grid.level,
            "read_size": list(grid.read_size),
        }
        arrays["tissue"] = np.asarray(grid.tissue, dtype=bool)
    ood = getattr(result, "ood", None)
    if ood is not None:
        header["ood"] = {
            "checked": ood.checked,
            "why_not": ood.why_not,
            "threshold": ood.threshold,
            "image_reasons": list(ood.image_reasons),
        }
        arrays["ood_scores"] = np.asarray(ood.scores, dtype=np.float32)
        arrays["ood_feature_flagged"] = np.asarray(ood.feature_flagged, dtype=bool)
        arrays["ood_intensity_flagged"] = np.asarray(ood.intensity_flagged, dtype=bool)
    buffer = io.BytesIO()
    header_bytes = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    # mypy matches **arrays against savez_compressed's allow_pickle: bool too; no key here is allow_pickle.
    np.savez_compressed(buffer, header=header_bytes, **arrays)  # type: ignore[arg-type]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.npz"
    write_atomic(path, buffer.getvalue())
    return path


def load_result(path: Path) -> StoredResult:
    """The result in ``path``; a missing file is a ``MedviewerError``, a damaged one a ``CorruptFileError``."""
    if not path.is_file():
        raise MedviewerError(path, "the stored AI result is missing")
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(bytes(data["header"]).decode("utf-8"))
            arrays = {name: data[name] for name in data.files if name != "header"}
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise ValueError(f"not a version {VERSION} {FORMAT} file")
        return _stored(header, arrays)
    except Exception as exc:  # noqa: BLE001 - a damaged zip or header fails in many ways (zlib, zipfile, json, ...)
        raise CorruptFileError(path, f"the stored AI result cannot be read ({type(exc).__name__}: {exc})") from exc


def _stored(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> StoredResult:
    info = RunInfo(**{**header["info"], "notes": tuple(header["info"]["notes"])})
    classes = tuple(header["classes"])
    probabilities = arrays["probabilities"].astype(np.float32)
    probabilities.flags.writeable = False
    kind = header["kind"]
    dimensions = {"slices": 2, "volume": 1, "slide": 3}
    if kind not in dimensions or probabilities.ndim != dimensions[kind] or probabilities.shape[-1] != len(classes):
        raise ValueError(f"probabilities of shape {probabilities.shape} for a {kind} result of {len(classes)} classes")
    result: Result
    if kind == "slices":
        indices = tuple(int(i) for i in arrays["indices"])
        if not indices or len(indices) != len(probabilities) or min(indices) < 0:
            raise ValueError(f"{len(indices)} slice numbers for {len(probabilities)} rows of probabilities")
        result = SliceResult(indices, classes, probabilities, info, _ood(header, arrays, (len(indices),)))
    elif kind == "volume":
        result = VolumeResult(classes, probabilities, info)
    elif kind == "slide":
        g = header["grid"]
        tissue = arrays["tissue"].astype(bool)
        tissue.flags.writeable = False
        grid = PatchGrid(
            (float(g["origin"][0]), float(g["origin"][1])),
            (float(g["patch_size_level0"][0]), float(g["patch_size_level0"][1])),
            int(g["rows"]),
            int(g["columns"]),
            int(g["level"]),
            (int(g["read_size"][0]), int(g["read_size"][1])),
            tissue,
        )
        if probabilities.shape[:2] != (grid.rows, grid.columns) or tissue.shape != (grid.rows, grid.columns):
            raise ValueError("the probabilities do not match the patch grid")
        result = SlideResult(grid, classes, probabilities, info, _ood(header, arrays, (grid.rows, grid.columns)))
    image_shape = tuple(int(n) for n in header["image_shape"])
    return StoredResult(kind, result, str(header["activation"]), bool(header["diagnostic_use"]), image_shape)


def _ood(header: dict[str, Any], arrays: dict[str, np.ndarray], shape: tuple[int, ...]) -> OodReport | None:
    """The guard's verdict as it was at the run, or None for a result kept before there was a guard."""
    stored = header.get("ood")
    if stored is None:
        return None
    scores = arrays["ood_scores"].astype(np.float32)
    feature, intensity = arrays["ood_feature_flagged"].astype(bool), arrays["ood_intensity_flagged"].astype(bool)
    if not scores.shape == feature.shape == intensity.shape == shape:
        raise ValueError(f"out-of-distribution scores of shape {scores.shape} for {shape} items")
    threshold = stored["threshold"]
    return OodReport(
        checked=bool(stored["checked"]),
        why_not=str(stored["why_not"]),
        scores=scores,
        threshold=None if threshold is None else float(threshold),
        feature_flagged=feature,
        intensity_flagged=intensity,
        image_reasons=tuple(str(reason) for reason in stored["image_reasons"]),
    )
