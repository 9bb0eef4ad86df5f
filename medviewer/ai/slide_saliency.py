"""Saliency over a whole slide: explain the patches a slide run scored highest, stitched into one image.

Explaining every tissue patch would cost one saliency computation per patch (occlusion: hundreds of forward
passes each), so only the ``count`` patches with the highest probability of the chosen class are explained:
they are where a reviewer looks first. Each map is computed on exactly the input the run scored
(``patch_input``) and shrunk to ``pixels_per_patch`` so the stitched image stays small enough to open
anywhere (about ``MAX_SIDE`` pixels on its longer side); patches not explained are 0.

The image covers the run's grid, not the slide: PNG pixel (px, py) starts at level-0
``origin + (px, py) * level0_per_pixel``, so a patch's level-0 box falls on whole PNG pixels and the image
lies over the slide, its annotations and the CSV/GeoJSON tiles without resampling. The grid's last row and
column may reach past the slide's edge, and so may the image. No Qt here: the window can reuse it.

The patches share one ``saliency.SaliencyRun``: when CUDA runs out of memory on one patch, the smaller batch
(or the CPU) carries on to the next rather than failing again on each, and the result says so in ``notes``
and ``device`` (where the maps were finished), which the georeference JSON carries too.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.ai.package import LoadedModel
from medviewer.ai.preprocess import resize_to
from medviewer.ai.saliency import METHODS, SaliencyRun, saliency_run
from medviewer.ai.slide_run import PatchGrid, SlideResult, patch_input
from medviewer.io.atomic_write import write_atomic

if TYPE_CHECKING:
    from medviewer.io.slide import Slide

#: Longest side, in pixels, the stitched image aims for; above it each patch gets fewer pixels.
MAX_SIDE = 4096


@dataclass(frozen=True)
class ExplainedPatch:
    """One explained cell: its place in the grid, its level-0 box (x, y, width, height) and the class's probability."""

    row: int
    column: int
    box_level0: tuple[float, float, float, float]
    probability: float


@dataclass(frozen=True, eq=False)  # holds an array
class SlideSaliency:
    """The stitched maps: ``image[py, px]`` in 0..1, with what it shows and where it lies on the slide."""

    image: np.ndarray
    origin_level0: tuple[float, float]
    level0_per_pixel: tuple[float, float]
    pixels_per_patch: tuple[int, int]
    slide_name: str
    slide_mpp: float | None
    method: str
    class_name: str
    patches: tuple[ExplainedPatch, ...]
    #: Where the maps were finished, and what changed on the way (CUDA out of memory: smaller batches, the CPU).
    device: str = ""
    notes: tuple[str, ...] = ()

    def georeference(self) -> dict[str, Any]:
        """The JSON that places the image on the slide and says what it explains."""
        height, width = self.image.shape
        return {
            "slide": self.slide_name,
            "slide_mpp": self.slide_mpp,
            "image_size": [width, height],
            "origin_level0": list(self.origin_level0),
            "level0_per_pixel": list(self.level0_per_pixel),
            "pixels_per_patch": list(self.pixels_per_patch),
            "method": self.method,
            "class": self.class_name,
            "device": self.device,
            "notes": list(self.notes),
            "patches": [
                {
                    "row": p.row,
                    "column": p.column,
                    "box_level0": [round(v, 3) for v in p.box_level0],
                    "probability": p.probability,
                }
                for p in self.patches
            ],
        }


def top_patches(result: SlideResult, class_index: int, count: int) -> list[tuple[int, int]]:
    """(row, column) of the ``count`` patches most probable for the class, highest first.

    Patches that could not be read (NaN) are never chosen; ties keep raster order, so a run gives the
    same choice every time."""
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    heatmap = result.heatmap(class_index)
    cells = [(r, c) for r, c in result.grid.tissue_cells() if not math.isnan(heatmap[r, c])]
    cells.sort(key=lambda cell: -float(heatmap[cell]))  # sort is stable: ties stay in raster order
    return cells[:count]


def pixels_per_patch(result: SlideResult, input_shape: tuple[int, ...], max_side: int = MAX_SIDE) -> tuple[int, int]:
    """(width, height) in image pixels of one patch: the model's input size, shrunk by one factor for both axes
    when the whole grid at that size would be longer than ``max_side``."""
    height, width = input_shape
    grid = result.grid
    factor = min(1.0, max_side / max(grid.columns * width, grid.rows * height))
    return max(1, math.floor(width * factor)), max(1, math.floor(height * factor))


def saliency_on_patch(
    model: LoadedModel | SaliencyRun,
    slide: Slide,
    grid: PatchGrid,
    cell: tuple[int, int],
    method: str,
    class_index: int,
    cancelled: Callable[[], bool] | None = None,
) -> np.ndarray:
    """``method``'s (H, W) map of the class over one patch, computed on exactly the input a slide run scores
    for it (``patch_input``), so it explains the probabilities shown for that patch. Pass a ``SaliencyRun`` to
    read what changed when CUDA ran out of memory (its ``notes``)."""
    x = patch_input(slide, grid, cell[0], cell[1], saliency_run(model).loaded.package.spec)
    return METHODS[method](model, x, class_index, cancelled=cancelled)


def explain_top_patches(
    model: LoadedModel | SaliencyRun,
    slide: Slide,
    result: SlideResult,
    class_index: int,
    method: str,
    count: int = 16,
    max_side: int = MAX_SIDE,
    cancelled: Callable[[], bool] | None = None,
) -> SlideSaliency:
    """Saliency (``saliency.METHODS[method]``) of the class for the ``count`` most probable patches of ``result``,
    stitched over its grid; ``cancelled`` is asked before each patch and each pass of the method, and stops with
    ``inference.Cancelled``. One ``SaliencyRun`` serves every patch (``model`` itself if it is one)."""
    run = saliency_run(model)
    spec = run.loaded.package.spec
    if method not in METHODS:  # fail before any patch is read
        raise KeyError(method)
    grid = result.grid
    cell_width, cell_height = pixels_per_patch(result, spec.shape, max_side)
    image = np.zeros((grid.rows * cell_height, grid.columns * cell_width), dtype=np.float32)
    explained = []
    for row, column in top_patches(result, class_index, count):
        saliency = saliency_on_patch(run, slide, grid, (row, column), method, class_index, cancelled)
        shrunk = resize_to(saliency[None].astype(np.float32), (cell_height, cell_width))[0]
        top, left = row * cell_height, column * cell_width
        image[top : top + cell_height, left : left + cell_width] = np.clip(shrunk, 0.0, 1.0)
        probability = float(result.probabilities[row, column, class_index])
        explained.append(ExplainedPatch(row, column, grid.box(row, column), probability))
    patch_width, patch_height = grid.patch_size_level0
    return SlideSaliency(
        image=image,
        origin_level0=grid.origin,
        level0_per_pixel=(patch_width / cell_width, patch_height / cell_height),
        pixels_per_patch=(cell_width, cell_height),
        slide_name=slide.path.name,
        slide_mpp=slide.mpp,
        method=method,
        class_name=result.classes[class_index],
        patches=tuple(explained),
        device=run.device,
        notes=tuple(run.notes),
    )


def write_png(saliency: SlideSaliency, path: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """The image as an 8-bit grey PNG (0..255 for 0..1) and its georeference as JSON beside it
    (``path`` with the suffix ``.json``), with ``extra`` (such as the model's identity) added; returns the
    JSON's path. Both written atomically, like every file medviewer saves."""
    from PIL import Image

    path = Path(path)
    grey = np.rint(np.clip(saliency.image, 0.0, 1.0) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())
    georeference = {"image": path.name, **saliency.georeference(), **(extra or {})}
    json_path = path.with_suffix(".json")
    write_atomic(json_path, (json.dumps(georeference, indent=2) + "\n").encode("utf-8"))
    return json_path
