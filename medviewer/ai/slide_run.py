"""A ``slide_patch`` model run over the tissue of a whole-slide image, patch by patch, at the model's MPP.

The grid: a patch is the model's input shape at the model's micrometres per pixel, so its side in level-0
pixels is ``shape * spec.mpp / slide.mpp``; a slide that does not record its pixel size cannot be cut at
the right scale and is refused rather than guessed. Patches are read at the most detailed pyramid level
that is no finer than needed (reading level 0 for a 4x coarser model would read 16 times the pixels) and
then shrunk to the input shape. Only patches on tissue are run: tissue is decided once, on the thumbnail's
``tissue_mask``, so bare glass costs nothing.

The run: reading and preprocessing patches is slow (decoding JPEG tiles, resizing) and is not the model's
work, so producer threads prepare the next batches into a bounded prefetch window while the model computes
on the current one; the model then waits for pixels only when reading is slower than computing. The window
is bounded so a fast reader cannot fill memory with a whole slide's patches. A cancel is honoured between
batches, and every producer thread has finished before ``run_slide`` returns or raises, so a cancelled run
leaves nothing reading the slide in the background.

Results keep the grid's level-0 geometry, so heatmaps, CSV rows and QuPath tiles line up with the slide
and its annotations whatever level is displayed. Each result also carries the out-of-distribution guard's
report (``medviewer.ai.ood``): a score and flags per tissue patch, on the same grid, so a heatmap over tissue
the model was never trained on is never shown as a finding.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from medviewer.ai.inference import (
    Cancelled,
    InferenceError,
    Precision,
    Progress,
    RunInfo,
    RunningModel,
    forward_in_passes,
    model_file,
    read_only_float32,
    require_target,
)
from medviewer.ai.ood import OodReport, guard_for, slide_facts
from medviewer.ai.package import LoadedModel, ModelSpec
from medviewer.ai.preprocess import apply_intensity, resize_to
from medviewer.core.errors import CorruptFileError, MedviewerError
from medviewer.core.tissue import tissue_mask
from medviewer.io.atomic_write import write_atomic

if TYPE_CHECKING:
    from medviewer.io.slide import Slide

#: Name prefix of the producer threads, so a test or a debugger can tell them apart from others.
PRODUCER_THREAD_NAME = "medviewer-slide-patches"
#: Thumbnail pixels wanted along a patch's side when deciding tissue: enough to measure a fraction.
TISSUE_PIXELS_PER_PATCH = 4
#: Bounds on the tissue thumbnail's longer side: small slides still get a mask worth the name, and huge
#: slides with small patches do not make a thumbnail as costly as the run.
TISSUE_THUMBNAIL_SIZE = (256, 2048)
#: ITU-R BT.601 luma weights (PIL's "L" conversion) for models that take one grey channel.
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)
#: Fixed, distinct colours per class index (QuPath needs one per classification); repeats after ten.
CLASS_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0, 114, 178),
    (213, 94, 0),
    (0, 158, 115),
    (204, 121, 167),
    (230, 159, 0),
    (86, 180, 233),
    (240, 228, 66),
    (120, 60, 20),
    (100, 100, 100),
    (150, 0, 200),
)


class SlideRunError(MedviewerError):
    """The slide cannot be cut into patches for this model (no pixel size, a region off the slide, no tissue)."""


@dataclass(frozen=True, eq=False)  # holds an array, which does not compare to one bool
class PatchGrid:
    """Where the patches lie: cell (row, column) covers level-0 ``origin + (column, row) * patch_size_level0``.

    ``read_size`` is what is read at ``level`` for each patch before it is resized to the model's input;
    ``tissue[row, column]`` says whether that patch is run."""

    origin: tuple[float, float]
    patch_size_level0: tuple[float, float]
    rows: int
    columns: int
    level: int
    read_size: tuple[int, int]
    tissue: np.ndarray

    def box(self, row: int, column: int) -> tuple[float, float, float, float]:
        """(x, y, width, height) of a cell in level-0 pixels."""
        width, height = self.patch_size_level0
        return self.origin[0] + column * width, self.origin[1] + row * height, width, height

    def location(self, row: int, column: int) -> tuple[int, int]:
        """The cell's top-left corner as the whole level-0 pixel ``read_region`` takes."""
        x, y, _, _ = self.box(row, column)
        return round(x), round(y)

    def tissue_cells(self) -> list[tuple[int, int]]:
        """(row, column) of every patch that is run, in raster order (the order of the CSV and GeoJSON)."""
        return [(int(r), int(c)) for r, c in np.argwhere(self.tissue)]


@dataclass(frozen=True, eq=False)
class SlideResult:
    """Class probabilities per patch: ``probabilities[row, column, k]`` is class ``classes[k]``, NaN off tissue.

    ``ood`` is the out-of-distribution guard's report on the same (rows, columns) grid; ``run_slide`` always
    fills it (unchecked, saying why, when the model has no usable reference)."""

    grid: PatchGrid
    classes: tuple[str, ...]
    probabilities: np.ndarray
    info: RunInfo
    ood: OodReport | None = None

    def heatmap(self, class_index: int) -> np.ndarray:
        """(rows, columns) probabilities of one class, NaN where no patch was run, for the slide overlay."""
        if not 0 <= class_index < len(self.classes):
            raise ValueError(f"class_index {class_index} is not one of the model's {len(self.classes)} classes")
        return self.probabilities[..., class_index]

    def patch_at(self, x: float, y: float) -> tuple[int, int] | None:
        """The (row, column) of the cell holding level-0 point (x, y), or None outside the grid.

        A cell off tissue is still returned (its probabilities are NaN), so a click there can say so."""
        width, height = self.grid.patch_size_level0
        column = math.floor((x - self.grid.origin[0]) / width)
        row = math.floor((y - self.grid.origin[1]) / height)
        if 0 <= row < self.grid.rows and 0 <= column < self.grid.columns:
            return row, column
        return None


# The grid ------------------------------------------------------------------------------------------------


def patch_size_level0(slide: Slide, spec: ModelSpec) -> tuple[float, float]:
    """(width, height) in level-0 pixels of one model input at the model's MPP."""
    if spec.target != "slide_patch" or spec.mpp is None or len(spec.shape) != 2:
        raise ValueError(f"a patch grid needs a slide_patch model with an mpp and a 2-D shape, not {spec.target}")
    if slide.mpp is None or slide.mpp <= 0:
        raise SlideRunError(
            slide.path,
            f"the slide does not record its pixel size (microns per pixel); a slide_patch model needs the slide's "
            f"pixel size to cut patches at the model's {spec.mpp:g} µm per pixel",
        )
    scale = spec.mpp / slide.mpp
    return spec.shape[1] * scale, spec.shape[0] * scale


def patch_grid(
    slide: Slide,
    spec: ModelSpec,
    region: tuple[float, float, float, float] | None = None,
    min_tissue: float = 0.25,
) -> PatchGrid:
    """The patches of ``region`` (x, y, width, height in level-0 pixels; the whole slide when None).

    The grid starts at the region's corner and covers all of it (the last row and column may reach past
    its edge). A patch is on tissue when at least ``min_tissue`` of the thumbnail pixels it covers are."""
    if not 0.0 <= min_tissue <= 1.0:
        raise ValueError(f"min_tissue is a fraction from 0 to 1, not {min_tissue}")
    width, height = patch_size_level0(slide, spec)
    x0, y0, region_width, region_height = _clipped_region(slide, region)
    columns = max(1, math.ceil(region_width / width - 1e-9))
    rows = max(1, math.ceil(region_height / height - 1e-9))
    level = slide.best_level_for_downsample(spec.mpp / slide.mpp)  # type: ignore[operator]  # both checked above
    downsample = slide.level_downsamples[level]
    read_size = (max(1, round(width / downsample)), max(1, round(height / downsample)))
    grid = PatchGrid((x0, y0), (width, height), rows, columns, level, read_size, np.zeros((rows, columns), bool))
    tissue = _tissue_fraction(slide, grid) >= min_tissue
    tissue.flags.writeable = False
    return PatchGrid(grid.origin, grid.patch_size_level0, rows, columns, level, read_size, tissue)


def _clipped_region(
    slide: Slide, region: tuple[float, float, float, float] | None
) -> tuple[float, float, float, float]:
    """The region cut to the slide, so no patch row or column lies wholly off the slide."""
    slide_width, slide_height = slide.dimensions
    if region is None:
        return 0.0, 0.0, float(slide_width), float(slide_height)
    x, y, w, h = (float(v) for v in region)
    left, top = max(0.0, x), max(0.0, y)
    right, bottom = min(float(slide_width), x + w), min(float(slide_height), y + h)
    if right <= left or bottom <= top:
        raise SlideRunError(
            slide.path,
            f"the region at ({x:g}, {y:g}) of {w:g} x {h:g} pixels does not overlap the slide's "
            f"{slide_width} x {slide_height}",
        )
    return left, top, right - left, bottom - top


def _tissue_fraction(slide: Slide, grid: PatchGrid) -> np.ndarray:
    """(rows, columns) fraction of each cell's thumbnail pixels on tissue.

    A pixel belongs to a cell when its centre lies inside it; a cell smaller than a pixel takes the pixel
    under its centre. Cell bounds are separable (rows and columns), so one summed-area table answers all
    cells at once."""
    slide_width, slide_height = slide.dimensions
    longest = max(slide_width, slide_height)
    wanted = TISSUE_PIXELS_PER_PATCH * longest / min(grid.patch_size_level0)
    thumbnail = slide.thumbnail(int(np.clip(math.ceil(wanted), *TISSUE_THUMBNAIL_SIZE)))
    mask = tissue_mask(thumbnail)
    table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    table[1:, 1:] = mask.cumsum(0).cumsum(1)
    x_scale, y_scale = mask.shape[1] / slide_width, mask.shape[0] / slide_height
    width, height = grid.patch_size_level0
    c0, c1 = _pixel_ranges(grid.origin[0], width, grid.columns, x_scale, mask.shape[1])
    r0, r1 = _pixel_ranges(grid.origin[1], height, grid.rows, y_scale, mask.shape[0])
    r0, r1, c0, c1 = r0[:, None], r1[:, None], c0[None, :], c1[None, :]
    on = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
    count = (r1 - r0) * (c1 - c0)
    return on / np.maximum(count, 1)


def _pixel_ranges(
    start: float, size: float, count: int, scale: float, pixels: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """First and past-last thumbnail pixel of each cell along one axis (at least one pixel per cell)."""
    low = start + np.arange(count) * size
    high = np.minimum(low + size, pixels / scale)  # cells past the slide's edge count only their part on it
    first = np.clip(np.ceil(low * scale - 0.5), 0, pixels).astype(np.int64)
    past = np.clip(np.ceil(high * scale - 0.5), 0, pixels).astype(np.int64)
    centre = np.clip(np.floor((low + high) / 2 * scale), 0, pixels - 1).astype(np.int64)
    empty = past <= first
    first[empty], past[empty] = centre[empty], centre[empty] + 1
    return first, past


# Preprocessing -------------------------------------------------------------------------------------------


def patch_input(slide: Slide, grid: PatchGrid, row: int, column: int, spec: ModelSpec) -> np.ndarray:
    """One patch as the model takes it, float32 (1, C, H, W): the input a saliency method explains.

    It goes through the same reading and preprocessing as the patches of ``run_slide``, so the map
    explains the very input whose probabilities are shown."""
    return model_input(patch_pixels(slide, grid, row, column)[None], spec)


def patch_pixels(slide: Slide, grid: PatchGrid, row: int, column: int) -> np.ndarray:
    """One patch's RGB uint8 pixels (h, w, 3) as read for the model, before resizing and intensity: what a
    labelled patch file should hold for ``medviewer evaluate`` to see what a slide run sees."""
    if not (0 <= row < grid.rows and 0 <= column < grid.columns):
        raise ValueError(f"cell ({row}, {column}) is outside the grid's {grid.rows} x {grid.columns}")
    return _rgb(slide.read_region(grid.location(row, column), grid.level, grid.read_size))


def model_input(patches: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """RGB uint8 patches (N, h, w, 3) as a float32 (N, C, H, W) batch: channels, resize, intensity.

    The whole batch goes through each MONAI transform at once (its patches as the channels of one image),
    as in ``preprocess.slice_batch``: one call per batch costs far less than one per patch."""
    if spec.channels not in (1, 3):
        raise ValueError(f"a slide_patch model takes 3 channels (RGB) or 1 (grey), not {spec.channels}")
    count, read_height, read_width, _ = patches.shape
    x = patches.astype(np.float32).transpose(0, 3, 1, 2)
    if spec.channels == 1:
        x = np.tensordot(x, GREY_WEIGHTS, axes=([1], [0]))[:, None]
    channels = x.shape[1]
    x = resize_to(x.reshape(count * channels, read_height, read_width), spec.shape)
    x = x.reshape(count, channels, *spec.shape).transpose(1, 0, 2, 3)  # channel-first for the intensity step
    return np.ascontiguousarray(apply_intensity(x, spec).transpose(1, 0, 2, 3), dtype=np.float32)


def _rgb(rgba: np.ndarray) -> np.ndarray:
    """RGBA from ``read_region`` composited on white, as the thumbnail is: outside the slide is glass."""
    rgb = rgba[..., :3]
    if rgba[..., 3].min() < 255:
        alpha = rgba[..., 3:].astype(np.float32) / 255.0
        rgb = np.rint(rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return rgb


def _check_channels(loaded: LoadedModel, spec: ModelSpec) -> None:
    """Slides are RGB: a model asking for another channel count cannot be fed, whatever its other metadata."""
    if spec.channels not in (1, 3):
        raise InferenceError(
            model_file(loaded),
            f"a slide_patch model takes 3 channels (RGB) or 1 (grey), but the model's metadata says {spec.channels}",
        )


# The run -------------------------------------------------------------------------------------------------


def run_slide(
    loaded: LoadedModel,
    slide: Slide,
    grid: PatchGrid,
    batch_size: int = 32,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    workers: int = 1,
    precision: Precision = "float32",
    guard: bool = True,
) -> SlideResult:
    """Probabilities for every tissue patch of ``grid`` (made by ``patch_grid`` for this model), and the
    out-of-distribution guard's report on each (``guard=False`` leaves the guard out, for measuring what it
    costs; the report then says so).

    ``workers`` producer threads read and preprocess up to ``workers + 1`` batches ahead of the model.
    ``cancelled`` is asked before each batch. When CUDA runs out of memory the batch is split into
    smaller forward passes (and at one patch the model moves to the CPU), as in ``run_slices``. A patch
    whose tiles cannot be decoded is left out (NaN) and counted in the result's notes, so one damaged
    tile does not lose a whole slide's run."""
    spec = loaded.package.spec
    require_target(loaded, "slide_patch")
    _check_channels(loaded, spec)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    _check_grid(loaded, slide, grid)
    cells = grid.tissue_cells()
    if not cells:
        raise SlideRunError(slide.path, "no patch of the grid lies on tissue, so there is nothing to run the model on")
    run = RunningModel(loaded, precision, guard_for(loaded, slide_facts(slide), enabled=guard))
    probabilities = np.full((grid.rows, grid.columns, len(spec.classes)), np.nan, dtype=np.float32)
    was_read = np.zeros(len(cells), dtype=bool)  # per tissue cell, in run order: the guard scores only these
    chunks = [cells[first : first + batch_size] for first in range(0, len(cells), batch_size)]
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=PRODUCER_THREAD_NAME)
    pending: deque[Future[tuple[np.ndarray, np.ndarray] | None]] = deque()
    forward_size, done, unreadable = batch_size, 0, 0
    try:
        for chunk in chunks[: workers + 1]:
            pending.append(pool.submit(_read_batch, slide, grid, chunk, spec, stop))
        for number, chunk in enumerate(chunks):
            if cancelled is not None and cancelled():
                raise Cancelled
            batch = pending.popleft().result()
            following = number + len(pending) + 1
            if following < len(chunks):
                pending.append(pool.submit(_read_batch, slide, grid, chunks[following], spec, stop))
            assert batch is not None  # only a stopped producer returns None, and nothing stops it before here
            x, readable = batch
            output, forward_size = forward_in_passes(run, x, forward_size)
            for (row, column), scores, ok in zip(chunk, output, readable, strict=True):
                if ok:
                    probabilities[row, column] = scores
            was_read[done : done + len(chunk)] = readable
            unreadable += int((~readable).sum())
            done += len(chunk)
            if progress is not None:
                progress(done / len(cells), f"{loaded.package.name}: {done} of {len(cells)} patches")
    finally:
        stop.set()  # producers still reading drop their batch at the next patch
        pool.shutdown(wait=True, cancel_futures=True)
    if unreadable:
        run.notes.append(f"{unreadable} of {len(cells)} patches could not be read (damaged tiles) and were left out")
    positions = np.array([row * grid.columns + column for row, column in cells], dtype=np.int64)
    ood = run.ood((grid.rows, grid.columns), positions, was_read)
    return SlideResult(grid, spec.classes, read_only_float32(probabilities), run.info(forward_size), ood)


def _check_grid(loaded: LoadedModel, slide: Slide, grid: PatchGrid) -> None:
    """A grid cut for another model or slide would feed patches at the wrong scale without any error."""
    expected = patch_size_level0(slide, loaded.package.spec)
    if not np.allclose(expected, grid.patch_size_level0, rtol=1e-6):
        raise InferenceError(
            model_file(loaded),
            f"the patch grid has patches of {grid.patch_size_level0[0]:g} x {grid.patch_size_level0[1]:g} level-0 "
            f"pixels but this model on {slide.path.name} needs {expected[0]:g} x {expected[1]:g}; make the grid "
            "with patch_grid for this model",
        )
    if not 0 <= grid.level < slide.level_count:
        raise ValueError(f"the grid's level {grid.level} is not one of {slide.path.name}'s {slide.level_count}")


def _read_batch(
    slide: Slide, grid: PatchGrid, cells: list[tuple[int, int]], spec: ModelSpec, stop: threading.Event
) -> tuple[np.ndarray, np.ndarray] | None:
    """The producer's work: one batch's model input and which of its patches could be read.

    Returns None when the run stopped meanwhile, checked per patch so a cancel never waits for a batch."""
    width, height = grid.read_size
    pixels = np.empty((len(cells), height, width, 3), dtype=np.uint8)
    readable = np.ones(len(cells), dtype=bool)
    for i, (row, column) in enumerate(cells):
        if stop.is_set():
            return None
        try:
            pixels[i] = _rgb(slide.read_region(grid.location(row, column), grid.level, grid.read_size))
        except CorruptFileError:
            pixels[i], readable[i] = 255, False
    return model_input(pixels, spec), readable


# Export --------------------------------------------------------------------------------------------------


def class_colour(class_index: int) -> tuple[int, int, int]:
    """The fixed colour of a class index, the same in every export and overlay legend."""
    return CLASS_COLOURS[class_index % len(CLASS_COLOURS)]


def write_csv(result: SlideResult, path: str | Path) -> None:
    """One row per tissue patch: row, column, its level-0 box, then each class's probability.

    Written atomically, like every file medviewer saves."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row", "column", "x", "y", "width", "height", *(f"{c} probability" for c in result.classes)])
    for row, column in result.grid.tissue_cells():
        box = result.grid.box(row, column)
        values = result.probabilities[row, column]
        writer.writerow(
            [row, column, *(_number(v) for v in box), *("" if math.isnan(v) else repr(float(v)) for v in values)]
        )
    write_atomic(Path(path), buffer.getvalue().encode("utf-8"))


def write_geojson(result: SlideResult, path: str | Path) -> None:
    """The tissue patches as QuPath tiles: a FeatureCollection, one Feature per line (as
    ``annotations.geojson`` writes annotations), geometry in level-0 pixels, the top class as the
    classification and every class probability in ``measurements``, which QuPath shows in its tables.

    A patch that could not be read has no top class, so it is written without a classification and with
    NaN probabilities as null (QuPath reads null measurements as NaN)."""
    features = [_tile(result, row, column) for row, column in result.grid.tissue_cells()]
    lines = ",\n".join(json.dumps(feature, ensure_ascii=False, allow_nan=False) for feature in features)
    write_atomic(Path(path), ('{"type": "FeatureCollection", "features": [\n' + lines + "\n]}\n").encode("utf-8"))


def _tile(result: SlideResult, row: int, column: int) -> dict[str, object]:
    x, y, width, height = (_number(v) for v in result.grid.box(row, column))
    right, bottom = _number(x + width), _number(y + height)
    ring = [[x, y], [right, y], [right, bottom], [x, bottom], [x, y]]
    values = result.probabilities[row, column]
    properties: dict[str, object] = {"objectType": "tile"}
    if not np.isnan(values).any():
        top = int(np.argmax(values))
        properties["classification"] = {"name": result.classes[top], "color": list(class_colour(top))}
    properties["measurements"] = {
        f"{name} probability": None if math.isnan(v) else float(v)
        for name, v in zip(result.classes, values.tolist(), strict=True)
    }
    return {
        "type": "Feature",
        "id": str(uuid.uuid4()),
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": properties,
    }


def _number(value: float) -> float:
    """Level-0 coordinates to a thousandth of a pixel: exact enough, and files stay readable."""
    return round(float(value), 3)
