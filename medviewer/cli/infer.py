"""``medviewer infer``: the window's model runs without the window, for scripts and batch review.

It opens, catalogues and runs through the same actions as the window (``medviewer.actions``): the open and
the run are written to the audit trail, a series or slide is listed in the catalog with the run's result
kept under it, so a result on the command line is the result the window shows and is found there later.
Output is JSON (or a line per class); what could not be recorded is said on stderr and ends in status 1.

PATH is told apart as a volume or a whole-slide image by ``medviewer.io.classify``, the decision every
other door into medviewer uses. Volumes run slice or volume models; saliency of a volume is written as
NIfTI in the volume's own geometry (for a slice model zero away from the explained slice; for a volume
model over the whole volume), so any viewer lays it over the image. A slice model's run is summarised per
class (``medviewer.ai.summary``: highest and its slice, mean, slices above 0.5), never by the one most
confident slice of any class; slice numbers are 1-based as the window shows them, with the 0-based
``index`` beside them in the JSON. Each slice and patch carries the out-of-distribution guard's score and
flag (``medviewer.ai.ood``), and its words come before any number. Slides run slide_patch models over
all their tissue (``slide_run``); the report summarises the patches per class (mean, max and where, how
often top) rather than inventing one slide-level probability, and ``--csv``/``--geojson`` write every
patch. A slide's saliency explains the K patches most probable for one class and is written as a PNG over
the patch grid with a JSON georeference beside it (``slide_saliency``). A model and image that do not go
together are refused, naming the file, before anything runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medviewer.actions.catalog_import import import_into_catalog
from medviewer.actions.jobs import no_progress
from medviewer.actions.model_runs import (
    LoadedModels,
    Recorded,
    RunSetup,
    SliceRun,
    VolumeRun,
    VolumeSaliency,
    classify_slices,
    classify_slide,
    classify_volume,
    explain_volume,
)
from medviewer.actions.opening import OpenedForRun, open_image, to_catalog
from medviewer.actions.trail import Problems
from medviewer.ai.model_lookup import add_model_arguments, resolve_model
from medviewer.ai.package import read_package
from medviewer.ai.saliency_methods import METHOD_NAMES, SALIENCY_METHODS
from medviewer.ai.summary import SlideSummary, class_index, slice_number, summarise_slices, summarise_slide
from medviewer.catalog.schema import catalog_path
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.io.slide import Slide

if TYPE_CHECKING:
    from medviewer.ai.inference import RunInfo, SliceResult
    from medviewer.ai.ood import OodReport
    from medviewer.ai.package import LoadedModel, ModelPackage
    from medviewer.ai.slide_run import SlideResult

#: Patches a slide's saliency explains unless --patches says otherwise.
DEFAULT_PATCHES = 16
#: The command line's name for each model target: a slide_patch model runs on a whole slide.
CLI_TARGETS = {"slice": "slice", "volume": "volume", "slide_patch": "slide"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medviewer infer", description="Run an approved model on an image and print what it thinks."
    )
    add_model_arguments(parser)
    parser.add_argument(
        "path", type=Path, metavar="PATH", help="DICOM file or folder, NIfTI file, or whole-slide image"
    )
    parser.add_argument(
        "--target",
        choices=("slice", "volume", "slide"),
        help="defaults to the model's own target (slide for a slide_patch model)",
    )
    parser.add_argument(
        "--slice",
        type=_positive,
        metavar="N",
        help="for slice models: only slice N, counted from 1 as the window counts them; default every slice",
    )
    parser.add_argument(
        "--saliency",
        choices=METHOD_NAMES,
        help="slice models: explain --class on the slice where it is most probable; volume models: the volume's "
        "top class; slides: --class on the top --patches ("
        + ", ".join(f"{name}: {label}" for name, label in SALIENCY_METHODS)
        + ")",
    )
    parser.add_argument(
        "--saliency-out",
        type=Path,
        metavar="FILE",
        help="volumes: a NIfTI file; slides: a .png file, its georeference written beside it as the same name .json",
    )
    parser.add_argument(
        "--class",
        dest="class_name",
        metavar="NAME",
        help="the class the summary leads with and saliency explains; default the model's last class (the "
        "positive one, such as lesion in normal/lesion)",
    )
    parser.add_argument(
        "--patches",
        type=_positive,
        metavar="K",
        help=f"slides: explain the K patches most probable for that class (default {DEFAULT_PATCHES})",
    )
    parser.add_argument("--csv", type=Path, metavar="FILE", help="slides: write one row per tissue patch")
    parser.add_argument("--geojson", type=Path, metavar="FILE", help="slides: write the patches as QuPath tiles")
    parser.add_argument("--device", choices=("cpu", "cuda", "mps"), help="default: CUDA, then MPS, then CPU")
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def infer_main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    if args.saliency and not args.saliency_out:
        print("medviewer infer: --saliency needs --saliency-out FILE", file=sys.stderr)
        return 2
    if not args.saliency and args.patches is not None:
        print("medviewer infer: --patches chooses what --saliency explains; add --saliency", file=sys.stderr)
        return 2
    try:
        report, lines, problems = _infer(args)
    except MedviewerError as exc:
        print(f"medviewer infer: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in lines:
            print(line)
        print(f"model {report['model']['name']} {report['model']['version']} sha256 {report['model']['sha256']}")
    for problem in problems.messages:  # the numbers stand, but the run's record is incomplete: say so, and fail
        print(f"medviewer infer: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _infer(args: argparse.Namespace) -> tuple[dict, list[str], Problems]:
    """The JSON report, the same in lines of text (what a person reads first comes first, with the
    out-of-distribution check's words before any number), and what recording the run ran into. The image is
    opened, catalogued and the run recorded through ``medviewer.actions``, as the window does."""
    from medviewer.io import ImageKind, classify

    args.model = resolve_model(args.model)
    package = read_package(args.model)
    own_target = CLI_TARGETS[package.spec.target]
    target = args.target or own_target
    if target != own_target:
        raise MedviewerError(args.model, f"the model's target is {package.spec.target}, not {target}")
    chosen = class_index(package.spec.classes, args.class_name, args.model)
    is_slide = classify(args.path) is ImageKind.SLIDE
    if is_slide != (target == "slide"):
        raise MedviewerError(args.path, _mismatch(package, is_slide))
    if is_slide:
        return _infer_slide(args, package, chosen)
    slide_options = {"--patches": args.patches, "--csv": args.csv, "--geojson": args.geojson}
    for option, value in slide_options.items():
        if value is not None:
            raise MedviewerError(args.path, f"{option} is for whole-slide images, and this is a volume")
    if target == "volume" and args.slice is not None:
        raise MedviewerError(args.path, "--slice is for slice models, and this is a volume model")
    if args.saliency:
        _check_writable(args.saliency_out)
    models = LoadedModels(args.device)
    models.get(package)  # a model that is not approved is refused before the image is read
    opened = open_image(args.path)
    setup = RunSetup(models, package, opened.identity, args.precision, catalog_path())
    volume = opened.image
    assert isinstance(volume, Volume)
    problems = opened.problems + _catalogue(opened)
    report: dict = {"model": {}, "image": str(args.path), "target": target}
    run: SliceRun | VolumeRun
    if target == "volume":
        run = classify_volume(setup, volume)
        result = run.result
        report["probabilities"] = dict(zip(result.classes, map(float, result.probabilities), strict=True))
        lines = [f"{name}: {value:.4f} for the whole volume" for name, value in report["probabilities"].items()]
        explained: tuple[int | None, int] = (
            None,
            chosen if args.class_name is not None else int(np.argmax(result.probabilities)),
        )
        report["ood"] = None  # a volume model's run has no per-item check; said in the lines below
        lines.insert(0, "a volume model's input is not checked against its training data")
    else:
        if args.slice is not None and args.slice > volume.shape[0]:
            raise MedviewerError(args.path, f"has {volume.shape[0]} slices; there is no slice {args.slice}")
        indices = [args.slice - 1] if args.slice is not None else list(range(volume.shape[0]))
        run = classify_slices(setup, volume, indices)
        summary = summarise_slices(
            run.result.indices, run.result.classes, run.result.probabilities, package.spec.activation, chosen
        )
        report["summary"] = summary.as_json()
        report["per_slice"] = _per_slice(run.result)
        report["ood"] = _ood_json(run.result.ood)
        lines = [summary.headline()] + [summary.line(c) for c in summary.classes if c is not summary.chosen_class]
        lines.insert(0, report["ood"]["banner"])
        explained = (summary.explained_index, chosen)
    problems += run.recorded.problems
    report["model"] = _identity(run.result.info, package)
    report["recorded"] = _recorded_json(run.recorded)
    if args.saliency:
        index, explained_class = explained
        saliency = explain_volume(setup, volume, index, args.saliency, explained_class)
        problems += saliency.recorded.problems
        report["saliency"] = _write_saliency(saliency, index, args.saliency_out)
    return report, [line for line in lines if line], problems


def _catalogue(opened: OpenedForRun) -> Problems:
    """List the image in the catalog, as the window does with what it opens, so the run is listed under it."""
    paths = to_catalog(opened.image, opened.path)
    if not paths:
        return Problems()
    try:
        import_into_catalog(paths, catalog_path())
    except MedviewerError as exc:
        return Problems((f"the image is not in the catalog: {exc}",))
    return Problems()


def _recorded_json(recorded: Recorded) -> dict:
    """Where the run was recorded: the audit trail always; for a series or slide the catalog and result file."""
    return {
        "catalogued": recorded.catalogued,
        "result_file": recorded.result_file.name if recorded.result_file is not None else None,
        "problems": list(recorded.problems.messages),
    }


def _per_slice(result: SliceResult) -> list[dict]:
    """Every slice run: its 1-based number, its 0-based index in the series, its probabilities and, where the
    guard checked it, its out-of-distribution score and flag."""
    rows = []
    for row, (index, values) in enumerate(zip(result.indices, result.probabilities, strict=True)):
        item: dict = {
            "slice": slice_number(index),
            "index": index,
            "probabilities": dict(zip(result.classes, map(float, values), strict=True)),
        }
        if result.ood is not None and result.ood.checked:
            score = float(result.ood.scores[row])
            item["ood_score"] = score if np.isfinite(score) else None
            item["ood"] = bool(result.ood.flagged[row])
        rows.append(item)
    return rows


def _ood_json(ood: OodReport | None) -> dict:
    """The guard's summary with the words a person reads; a run without a report says that nothing was checked."""
    from medviewer.ai.ood import NOT_AVAILABLE

    if ood is None:
        return {"checked": False, "why_not": NOT_AVAILABLE, "banner": NOT_AVAILABLE}
    return {**ood.summary(), "banner": ood.banner() or ood.note()}


def _mismatch(package: ModelPackage, is_slide: bool) -> str:
    """Why this model cannot run on this image, and what would."""
    if is_slide:
        return (
            f"this is a whole-slide image, but {package.name} is a {package.spec.target} model, which runs on "
            "volumes (DICOM or NIfTI); a slide needs a slide_patch model"
        )
    return (
        f"this is a volume, but {package.name} is a slide_patch model, which runs on whole-slide images; a volume "
        "needs a slice or volume model"
    )


def _identity(info: RunInfo, package: ModelPackage) -> dict:
    """What produced the numbers: every report, and every file written beside one, carries it."""
    return {
        "name": info.model_name,
        "version": info.model_version,
        "sha256": info.model_hash,
        "device": info.device,
        "precision": info.precision,
        "duration_s": round(info.duration_s, 4),
        "notes": list(info.notes),
        "diagnostic_use": package.spec.diagnostic_use,
    }


def _infer_slide(
    args: argparse.Namespace, package: ModelPackage, class_index: int
) -> tuple[dict, list[str], Problems]:
    """A slide_patch model over all of a slide's tissue: a summary per class, the patches as CSV/GeoJSON on
    request, and the saliency of the top patches as a georeferenced PNG.

    Everything that can be refused (the saliency class and file, the slide's pixel size, no tissue) is
    checked before the model is loaded, so a mistake costs no run."""
    from medviewer.ai.slide_run import patch_grid, write_csv, write_geojson

    spec = package.spec
    if args.slice is not None:
        raise MedviewerError(args.path, "--slice is for volumes, and this is a whole-slide image")
    if args.saliency and args.saliency_out.suffix.lower() != ".png":
        raise MedviewerError(
            args.saliency_out, "a slide's saliency is written as a PNG (its georeference beside it as .json)"
        )
    for out in (args.csv, args.geojson, args.saliency_out if args.saliency else None):
        if out is not None:
            _check_writable(out)
    opened = open_image(args.path)
    assert isinstance(opened.image, Slide)
    with opened.image as slide:
        grid = patch_grid(slide, spec)
        if not grid.tissue.any():
            raise MedviewerError(args.path, "no patch of the slide lies on tissue, so there is nothing to run on")
        problems = opened.problems + _catalogue(opened)
        setup = RunSetup(LoadedModels(args.device), package, opened.identity, args.precision, catalog_path())
        run = classify_slide(setup, slide, grid=grid)
        result, problems = run.result, problems + run.recorded.problems
        loaded = setup.loaded(no_progress)
        report: dict = {"model": _identity(result.info, package), "image": str(args.path), "target": "slide"}
        report["recorded"] = _recorded_json(run.recorded)
        summary = summarise_slide(result.probabilities, result.grid.tissue, class_index, result.classes)
        if not summary.patches:
            raise MedviewerError(slide.path, "no tissue patch of the slide could be read (damaged tiles)")
        report.update(_slide_summary(result, slide, spec.mpp, summary))
        report["ood"] = _ood_json(result.ood)
        for key, out, write in (("csv", args.csv, write_csv), ("geojson", args.geojson, write_geojson)):
            if out is not None:
                try:
                    write(result, out)
                except OSError as exc:
                    raise MedviewerError(out, f"could not be written ({exc.strerror or exc})") from exc
                report[key] = str(out)
        if args.saliency:
            report["saliency"] = _write_slide_saliency(
                loaded,
                slide,
                result,
                class_index,
                args.saliency,
                args.patches or DEFAULT_PATCHES,
                args.saliency_out,
                report["model"],
            )
    return report, [report["ood"]["banner"], *summary.lines()], problems


def _check_writable(out: Path) -> None:
    """Refuse an output the run could not write, before the run rather than after it."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MedviewerError(out, f"its folder cannot be made ({exc.strerror or exc})") from exc
    if not os.access(out.parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise MedviewerError(out, "cannot be written here (no permission)")


def _slide_summary(result: SlideResult, slide: Slide, model_mpp: float | None, summary: SlideSummary) -> dict:
    """The grid in level-0 pixels, and per class (``summary``): mean and max over the tissue patches that
    were read, how many patches it is the top class of, and the patch where it is most probable."""
    grid = result.grid
    classes, best = {}, {}
    for k, name in enumerate(result.classes):
        classes[name] = {
            "mean": float(summary.mean[k]),
            "max": float(summary.highest[k]),
            "top_patches": int(summary.top[k]),
        }
        row, column = summary.highest_cell[k]
        best[name] = {
            "row": row,
            "column": column,
            "box_level0": [round(v, 3) for v in grid.box(row, column)],
            "probability": float(result.probabilities[row, column, k]),
        }
    return {
        "grid": {
            "origin_level0": list(grid.origin),
            "patch_size_level0": [round(v, 3) for v in grid.patch_size_level0],
            "rows": grid.rows,
            "columns": grid.columns,
            "tissue_patches": int(grid.tissue.sum()),
            "slide_mpp": slide.mpp,
            "model_mpp": model_mpp,
        },
        "classes": classes,
        "best": best,
    }


def _write_slide_saliency(
    loaded: LoadedModel,
    slide: Slide,
    result: SlideResult,
    class_index: int,
    method: str,
    count: int,
    out: Path,
    identity: dict,
) -> dict:
    """Explain the class on the top ``count`` patches and write the PNG and its georeference JSON."""
    from medviewer.ai.slide_saliency import explain_top_patches, write_png

    saliency = explain_top_patches(loaded, slide, result, class_index, method, count)
    try:
        georeference = write_png(saliency, out, {"model": identity})
    except OSError as exc:
        raise MedviewerError(out, f"could not be written ({exc.strerror or exc})") from exc
    return {
        "file": str(out),
        "georeference": str(georeference),
        "method": method,
        "class": saliency.class_name,
        "patches": len(saliency.patches),
        "device": saliency.device,
        "notes": list(saliency.notes),
    }


def _write_saliency(saliency: VolumeSaliency, index: int | None, out: Path) -> dict:
    """The map of a slice model's explained slice ``index`` (0-based; zero elsewhere) or of a volume model's
    whole volume (``index`` None), written as NIfTI in the volume's own geometry (the action laid it there)."""
    import SimpleITK as sitk

    heatmap = saliency.heatmap
    image = Volume(np.nan_to_num(heatmap.array, nan=0.0), heatmap.spacing, heatmap.origin, heatmap.direction)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image.to_sitk(), str(out))
    except (OSError, RuntimeError) as exc:  # SimpleITK reports a failed write as RuntimeError
        raise MedviewerError(out, f"could not be written ({exc})") from exc
    return {
        "file": str(out),
        "method": saliency.method_name,
        "class": saliency.class_name,
        "slice": None if index is None else slice_number(index),
        "index": index,
        "device": saliency.info.device,
        "notes": list(saliency.info.notes),
    }
