"""The one entry point, ``medviewer``: the window by default, and subcommands that need no window.

Each subcommand lives in a module of this package and parses, calls ``medviewer.actions`` (as the window
does) and prints. Subcommand modules are imported only when chosen, so ``medviewer --version`` and
``medviewer info`` never load Qt, and the window never waits for torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from medviewer import __version__
from medviewer.ai.saliency_methods import METHOD_NAMES
from medviewer.core.errors import MedviewerError
from medviewer.core.logs import log_unexpected, setup_logging

log = logging.getLogger("medviewer.cli")
PROCESS_START = time.time()


def _gui_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medviewer",
        description="Review DICOM/NIfTI volumes and whole-slide images with AI overlays.",
        epilog="Other commands: 'medviewer demo-data DIR [--seed N] [--eval-set N]', 'medviewer info PATH [--json]', "
        "'medviewer import PATH...', 'medviewer list [--json]', 'medviewer audit verify|show', "
        "'medviewer export --deidentify --out DIR ITEM...', 'medviewer models add PATH [--yes]|list [--json]', "
        "'medviewer infer --model M PATH [--target slice|volume|slide] [--saliency " + "|".join(METHOD_NAMES) + " "
        "--saliency-out FILE] [--json]', "
        "'medviewer evaluate --model M --labels labels.csv [--json]'. "
        "Add --help after a command for its options.",
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or folders to open")
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="FILE",
        help="open PATHs in a 1600x1000 window, wait for loading, save a PNG of it and exit",
    )
    parser.add_argument("--version", action="version", version=f"medviewer {__version__}")
    return parser


def _demo_data(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="medviewer demo-data", description="Write deterministic synthetic demo data into DIR."
    )
    parser.add_argument("dir", type=Path, metavar="DIR")
    parser.add_argument("--seed", type=int, default=0, help="another seed gives another patient (default 0)")
    parser.add_argument(
        "--eval-set",
        type=int,
        metavar="N",
        help="also write N labelled CT slices (eval/ct_slices.csv) and N labelled slide patches (eval/patches.csv), "
        "held out from the demo models' training, for 'medviewer evaluate'",
    )
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error(f"--seed must be 0 or more, not {args.seed}")
    if args.eval_set is not None and args.eval_set < 2:
        parser.error(f"--eval-set needs at least 2 images (one per class), not {args.eval_set}")
    from medviewer.demo.generate import generate_demo_data

    truth = generate_demo_data(args.dir, args.seed)
    print(f"demo data (seed {args.seed}) written to {args.dir} in {truth['seconds']} s")
    if args.eval_set is not None:
        from medviewer.demo.eval_sets import write_eval_sets

        started = time.perf_counter()
        write_eval_sets(args.dir, args.eval_set, args.seed)
        seconds = time.perf_counter() - started
        print(f"evaluation sets of {args.eval_set} images each written to {args.dir / 'eval'} in {seconds:.1f} s")
    return 0


def _format_info(info: dict[str, Any]) -> str:
    lines = [f"{info['path']}: {info['kind']}"]
    if "report" in info:
        return "\n".join(lines + [f"  {line}" for line in info["report"]])
    if "referenced_series" in info:
        drawn_on = ", ".join(info["referenced_series"]) or "no series named"
        return "\n".join([*lines, f"  drawn on    series {drawn_on}"])
    if info["kind"] != "slide" and info.get("presentation", "volume") != "volume":
        size, spacing = info["size"], info["spacing"]
        orientation = info["patient_orientation"]
        pixel = f"{spacing[1]:.4g} x {spacing[0]:.4g} mm" if info["spacing_known"] else "unknown"
        rate = f", {1000 / info['frame_time_ms']:.3g} frames/s" if info["frame_time_ms"] else ""
        window = info["display_window"]
        lines += [
            f"  modality    {info['modality'] or 'unknown'} ({info['photometric']})",
            f"  size        {size[0]} x {size[1]} pixels x {info['frames']} frame(s){rate}",
            f"  pixel size  {pixel}" + (f" ({info['spacing_note']})" if info["spacing_note"] else ""),
            "  orientation " + (f"rows to {orientation[0]}, columns to {orientation[1]}" if orientation else "unknown"),
            f"  window      W {window['width']:g} L {window['centre']:g}"
            + (f" ({info['window_note']})" if info["window_note"] else ""),
        ]
        lines += [f"  warning     {w}" for w in info["warnings"]]
    elif info["kind"] != "slide":
        size, spacing = info["size"], info["spacing"]
        lines += [
            f"  modality    {info['modality'] or 'unknown'} ({info['source']})",
            f"  size        {size[0]} x {size[1]} x {size[2]} voxels, {info['dtype']}",
            f"  spacing     {spacing[0]:.4g} x {spacing[1]:.4g} x {spacing[2]:.4g} mm",
            f"  origin      {', '.join(f'{v:.2f}' for v in info['origin'])} mm (LPS)",
            "  direction   " + "; ".join(" ".join(f"{v:.4g}" for v in row) for row in info["direction"]),
        ]
        lines += [f"  warning     {w}" for w in info["warnings"]]
        stacks = info.get("stacks", [])
        if len(stacks) > 1:
            lines += [
                f"  stack       {s['key']}: {s['orientation']}, {s['slices']} slices of {s['columns']}x{s['rows']}"
                + (f", {s['time_points']} time points" if s["time_points"] > 1 else "")
                + (f" ({s['image_type']})" if s["image_type"] else "")
                for s in stacks
            ]
    else:
        mpp = f"{info['mpp']:.4g} um/pixel" if info["mpp"] else "not recorded in the file"
        if info["mpp"] is None and info["recorded_mpp"] is not None:  # a value no scanner gives is not a size
            mpp = f"unknown (the file's {info['recorded_mpp']:g} is refused)"
        lines += [
            f"  vendor      {info['vendor']} (read by {info['backend']})",
            f"  dimensions  {info['dimensions'][0]} x {info['dimensions'][1]} pixels",
            f"  levels      {info['levels']}: "
            + ", ".join(
                f"{w}x{h} (/{d:g})" for (w, h), d in zip(info["level_dimensions"], info["downsamples"], strict=True)
            ),
            f"  mpp         {mpp}",
            f"  objective   {info['objective_power'] or 'unknown'}",
            f"  associated  {', '.join(info['associated_images']) or 'none'}",
        ]
        lines += [f"  warning     {w}" for w in info["warnings"]]
    return "\n".join(lines)


def _info(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="medviewer info", description="Describe what a file or folder holds.")
    parser.add_argument("path", type=Path, metavar="PATH")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    from medviewer.io import describe

    try:
        info = describe(args.path)
    except MedviewerError as exc:
        print(f"medviewer info: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2) if args.json else _format_info(info))
    return 0


def _gui(argv: Sequence[str]) -> int:
    args = _gui_parser().parse_args(argv)
    from medviewer.ui.app import run_app

    return run_app(args.paths, screenshot=args.screenshot, process_start=PROCESS_START)


def _lazy(module: str, function: str) -> Callable[[Sequence[str]], int]:
    """A subcommand whose module is imported only when it is run."""

    def run(argv: Sequence[str]) -> int:
        import importlib

        return getattr(importlib.import_module(module), function)(list(argv))

    return run


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "demo-data": _demo_data,
    "info": _info,
    "import": _lazy("medviewer.cli.catalog", "import_main"),
    "list": _lazy("medviewer.cli.catalog", "list_main"),
    "audit": _lazy("medviewer.cli.audit", "audit_main"),
    "export": _lazy("medviewer.cli.export", "export_main"),
    "models": _lazy("medviewer.cli.models", "models_main"),
    "infer": _lazy("medviewer.cli.infer", "infer_main"),
    "evaluate": _lazy("medviewer.cli.evaluate", "evaluate_main"),
}


def _unexpected(what: str, log_file: Path) -> str:
    return f"medviewer: an unexpected error occurred ({what}); details are in {log_file}"


@contextmanager
def _one_line_for_the_uncaught(log_file: Path) -> Iterator[None]:
    """What escapes a thread or a Qt slot (a decoder's panic too) is logged with where it was raised, by its
    type and not its text (which may hold a path), and told in one line: Python and Qt would print its
    traceback on the terminal. The hooks are the program's only while ``main`` runs."""

    def report(kind: type[BaseException], where: TracebackType | None) -> None:
        if issubclass(kind, (SystemExit, KeyboardInterrupt)):
            return
        log.error("unexpected error: %s at\n%s", kind.__name__, "".join(traceback.format_tb(where)))
        print(_unexpected(kind.__name__, log_file), file=sys.stderr)

    saved = sys.excepthook, threading.excepthook
    sys.excepthook = lambda kind, _exc, where: report(kind, where)
    threading.excepthook = lambda args: report(args.exc_type, args.exc_traceback)
    try:
        yield
    finally:
        sys.excepthook, threading.excepthook = saved


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # A Rust decoder's panic (pylibjpeg-rle on damaged RLE) is reported as a damaged file; its runtime would
    # also print a stack backtrace to the terminal when a developer's RUST_BACKTRACE asks for one.
    os.environ["RUST_BACKTRACE"] = "0"
    try:
        from medviewer.io.formats import all_suffixes  # the log scrubber hides names ending in any of them

        log_file = setup_logging(file_suffixes=all_suffixes())
    except OSError as exc:
        print(f"medviewer: cannot write the log file ({exc.strerror}: {exc.filename})", file=sys.stderr)
        return 1
    command = SUBCOMMANDS.get(argv[0]) if argv else None
    try:
        with _one_line_for_the_uncaught(log_file):
            return command(argv[1:]) if command else _gui(argv)
    except KeyboardInterrupt:
        return 130
    except BaseException as exc:  # the last line of defence (a decoder's panic too): never a traceback
        if isinstance(exc, SystemExit):
            raise
        log_unexpected(log, "unexpected error")
        print(_unexpected(type(exc).__name__, log_file), file=sys.stderr)
        return 1
