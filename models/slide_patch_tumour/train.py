"""Train and export the demo pathology patch classifier ``slide-patch-tumour-demo``.

Run ``python models/slide_patch_tumour/train.py`` from the repository. Everything the model learns from is
made here by the project's own slide phantom (``medviewer.demo.slide_phantom``, the generator behind the demo
slide of ``medviewer demo-data``): no patient data is involved, and the model exists to demonstrate the
viewer, never for diagnosis.

Steps, all seeded so that a rerun with the same software gives the same weights:

1. Training slides (seeds from ``SEED``) are written as real pyramidal TIFFs and opened with
   ``medviewer.io.open_slide``; patches are cut by ``medviewer.ai.slide_run.patch_grid`` at the model's
   2 µm per pixel over the tissue and prepared by ``patch_input``, exactly as a slide run in the viewer
   does, on the grid and on grids shifted by quarter patches. Each patch is labelled from the planted tumour
   polygons (``medviewer.demo.patch_truth``): ``tumour`` when at least 30 % of it is tumour, ``normal`` when
   none is, left out in between. The classes are balanced.
2. A small CNN (``PatchTumourNet``) is trained on 2 CPU threads with deterministic algorithms from the patch
   labels alone: no pixel-level truth is used, so where its Grad-CAM points is the network's own doing.
3. Held-out evaluation on slides from other seeds and on the demo slide itself (``medviewer demo-data``'s
   default seed 0), and the Grad-CAM sanity check on held-out tumour patches that straddle a tumour's edge,
   against the same network with random weights (Adebayo et al., 2018).
4. The out-of-distribution guard's reference (``medviewer.training``, read by ``medviewer.ai.ood``): every
   tissue patch of ``REFERENCE_SLIDES`` training slides (on the grid and the grid shifted by half a patch)
   gives the feature mean and shrinkage covariance and the intensity ranges per channel; every tissue patch
   of the held-out slides gives the threshold, the 99th percentile of their distances.
5. Export into ``bundle/`` with ``models/bundle_tools.py``: TorchScript and torch.export files with the
   metadata, the model card with the measured figures, and the files' SHA-256 in the built-in approvals.
6. The guard measured through the viewer's own run (``run_slide`` on the exported, approved bundle) on the
   demo slide as ``medviewer demo-data`` writes it and on real slides the model has never seen
   (``tests/data/wsi``), for the model card.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the name every PyTorch reader knows
from torch import nn

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere: the medviewer package is the repository's own
    sys.path.insert(0, str(REPO))

from medviewer.ai.package import ExplainSpec, IntensityScale, ModelSpec  # noqa: E402
from medviewer.ai.slide_run import model_input, patch_grid, patch_input, patch_pixels  # noqa: E402
from medviewer.demo.generate import DEMO_SLIDE  # noqa: E402
from medviewer.demo.patch_truth import (  # noqa: E402
    LEFT_OUT,
    PATCH_MPP,
    PATCH_PIXELS,
    TUMOUR,
    TUMOUR_MIN_FRACTION,
    patch_labels,
    patch_mask,
    tumour_fraction,
)
from medviewer.demo.slide_phantom import SlideGeometry, write_demo_slide  # noqa: E402
from medviewer.io import open_slide  # noqa: E402
from models.bundle_tools import (  # noqa: E402
    AssumedMpp,
    ScoreMapClassifier,
    accuracy,
    class_probabilities_output,
    conv_block,
    files_table,
    flag_rates,
    grad_cam,
    item_features,
    metadata_header,
    publish,
    rates_row,
    report_rates,
    run_reproducibly,
    training_reference,
    update_approvals,
)

NAME = "slide-patch-tumour-demo"
VERSION = "1.2.0"
SEED = 61_000  # training slides are seeds SEED, SEED + 1, ...
EVAL_SEED = 62_000  # held-out slides: other seeds
DEMO_SEED = 0  # the demo slide of `medviewer demo-data` (default seed): never trained on
THREADS = 2

BUNDLE = HERE / "bundle"

SHAPE = (PATCH_PIXELS, PATCH_PIXELS)
MPP = PATCH_MPP
CLASSES = ("normal", "tumour")
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # the ImageNet standardisation most patch models use

TRAIN_SLIDE = SlideGeometry(width=10240, height=8192, mpp=0.5)
TRAIN_SLIDES = 20
EVAL_SLIDES = 6
#: Grids shifted along the diagonal by these fractions of a patch: the same tumour seen cut four ways.
SHIFTS = (0.0, 0.25, 0.5, 0.75)
#: Held-out tumour patches whose tumour fraction is below this straddle the tumour's edge: the Grad-CAM
#: check uses only those, since inside a tumour any position is "in the tumour", even a random network's.
EDGE_MAX_FRACTION = 0.7

EPOCHS = 8
BATCH = 64
LEARNING_RATE = 3e-3

#: The guard's reference: every tissue patch of this many training slides (seeds SEED, SEED + 1, ...) on
#: the grid and on the grid shifted by half a patch; its threshold: every tissue patch of the EVAL_SLIDES
#: held-out slides on their grid.
REFERENCE_SLIDES = 6
REFERENCE_SHIFTS = (0.0, 0.5)
#: Real slides the guard is measured on for the card (in the repository's test data, when present), with
#: the micrometres per pixel assumed for a slide that records none (a slide run needs one).
REAL_SLIDES = (
    ("CMU-1-Small-Region.svs", None),
    ("tcga-cr-7395-01a-01-ts1.svs", 0.5),
)
REAL_SLIDE_FOLDER = REPO / "tests" / "data" / "wsi"

SPEC = ModelSpec(
    target="slide_patch",
    shape=SHAPE,
    channels=3,
    spacing_mm=None,
    mpp=MPP,
    intensity=IntensityScale(mean=MEAN, std=STD, max_value=255.0),
    activation="softmax",
    classes=CLASSES,
    explain=ExplainSpec("forward_features", "forward_head"),
    diagnostic_use=False,
)


# --------------------------------------------------------------------------------------------- network


class PatchTumourNet(ScoreMapClassifier):
    """Five conv blocks down to a 16 x 16 feature map (each position sees about 40 µm: several nuclei), scored
    per position for "tumour here" (``ScoreMapClassifier``): a tumour filling a third of the patch is not
    averaged away by the stroma beside it, and the Grad-CAM of ``tumour`` is the score map."""

    def __init__(self) -> None:
        features = nn.Sequential(
            conv_block(3, 16, stride=2),
            conv_block(16, 32),
            conv_block(32, 32, stride=2),
            conv_block(32, 48),
            conv_block(48, 48, dilation=2),
        )
        super().__init__(features, 48, len(CLASSES), CLASSES.index("tumour"))


# ------------------------------------------------------------------------------------------------ data


@dataclass
class PatchSet:
    x: np.ndarray  # (N, 3, H, W) float32, as patch_input makes it
    y: np.ndarray  # (N,) int64, index into CLASSES
    fraction: np.ndarray  # (N,) tumour fraction of each patch
    masks: np.ndarray  # (N, H, W) bool: input pixels inside tumour
    source: list[str]  # "seed/row/column+shift" per patch, for reports


def _write_slide(job: tuple[Path, int, SlideGeometry]) -> list[np.ndarray]:
    """One slide written (in a worker process); returns its tumour polygons."""
    path, seed, geometry = job
    tumours = 3 if geometry.width > TRAIN_SLIDE.width else 2
    return write_demo_slide(path, seed, geometry, tumour_count=tumours, levels=3)


def slide_patches(path: Path, seed: int, polygons: list[np.ndarray], balance_seed: int | None) -> PatchSet:
    """Labelled patches of one slide on its grid and on the grids shifted by SHIFTS, read as a slide run reads
    them; normal patches drawn to match the tumour patches in number (all kept when ``balance_seed`` is
    None)."""
    xs, ys, fractions, masks, source = [], [], [], [], []
    with open_slide(path) as slide:
        side = patch_grid(slide, SPEC).patch_size_level0[0]
        for shift in (side * fraction for fraction in SHIFTS):
            grid = patch_grid(slide, SPEC, region=(shift, shift, slide.dimensions[0], slide.dimensions[1]))
            fraction = tumour_fraction(polygons, grid.origin, grid.patch_size_level0, grid.rows, grid.columns)
            labels = patch_labels(fraction)
            cells = [(r, c) for r, c in grid.tissue_cells() if labels[r, c] != LEFT_OUT]
            for r, c in cells:
                xs.append(patch_input(slide, grid, r, c, SPEC)[0])
                ys.append(int(labels[r, c] == TUMOUR))
                fractions.append(float(fraction[r, c]))
                masks.append(patch_mask(polygons, grid.box(r, c), SHAPE))
                source.append(f"{seed}/{r}/{c}+{shift:g}")
    data = PatchSet(np.stack(xs), np.asarray(ys, np.int64), np.asarray(fractions), np.stack(masks), source)
    return data if balance_seed is None else balanced(data, balance_seed)


def balanced(data: PatchSet, seed: int) -> PatchSet:
    """As many normal patches as tumour patches, drawn at random (all tumour patches kept)."""
    tumour, normal = np.flatnonzero(data.y == 1), np.flatnonzero(data.y == 0)
    rng = np.random.default_rng(seed)
    keep = np.sort(np.concatenate([tumour, rng.choice(normal, min(len(normal), len(tumour)), replace=False)]))
    return subset(data, keep)


def subset(data: PatchSet, keep: np.ndarray) -> PatchSet:
    return PatchSet(data.x[keep], data.y[keep], data.fraction[keep], data.masks[keep], [data.source[i] for i in keep])


def joined(sets: list[PatchSet]) -> PatchSet:
    return PatchSet(
        np.concatenate([s.x for s in sets]),
        np.concatenate([s.y for s in sets]),
        np.concatenate([s.fraction for s in sets]),
        np.concatenate([s.masks for s in sets]),
        [name for s in sets for name in s.source],
    )


def make_patches(folder: Path, seeds: list[int], geometry: SlideGeometry, pool: ProcessPoolExecutor) -> PatchSet:
    jobs = [(folder / f"slide-{seed}.tiff", seed, geometry) for seed in seeds]
    polygons = list(pool.map(_write_slide, jobs))
    sets = [slide_patches(path, seed, found, seed) for (path, seed, _), found in zip(jobs, polygons, strict=True)]
    for path, _, _ in jobs:
        path.unlink()
    return joined(sets)


def tissue_items(net: nn.Module, path: Path, shifts: tuple[float, ...] = (0.0,)) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features and input percentiles of every tissue patch of a slide, on its grid and on the grids
    shifted by ``shifts`` of a patch, read and prepared as ``run_slide`` reads and prepares them."""
    pooled, percentiles = [], []
    with open_slide(path) as slide:
        side = patch_grid(slide, SPEC).patch_size_level0[0]
        for shift in (side * fraction for fraction in shifts):
            grid = patch_grid(slide, SPEC, region=(shift, shift, slide.dimensions[0], slide.dimensions[1]))
            cells = grid.tissue_cells()
            for first in range(0, len(cells), 256):
                pixels = np.stack([patch_pixels(slide, grid, r, c) for r, c in cells[first : first + 256]])
                features, spread = item_features(net, model_input(pixels, SPEC))
                pooled.append(features)
                percentiles.append(spread)
    return np.concatenate(pooled), np.concatenate(percentiles)


def guard_reference(net: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``medviewer.training`` block and the guard's flag rates on the held-out patches. The slides are
    written again from their seeds (training deleted them as it went)."""
    reference_seeds = list(range(SEED, SEED + REFERENCE_SLIDES))
    held_seeds = list(range(EVAL_SEED, EVAL_SEED + EVAL_SLIDES))
    with (
        tempfile.TemporaryDirectory(prefix="medviewer-guard-") as scratch,
        ProcessPoolExecutor(THREADS, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        folder = Path(scratch)
        jobs = [(folder / f"slide-{seed}.tiff", seed, TRAIN_SLIDE) for seed in reference_seeds + held_seeds]
        list(pool.map(_write_slide, jobs))
        training = _joined_items([tissue_items(net, path, REFERENCE_SHIFTS) for path, _, _ in jobs[:REFERENCE_SLIDES]])
        held_out = _joined_items([tissue_items(net, path) for path, _, _ in jobs[REFERENCE_SLIDES:]])
    facts = {"modality": None, "body_part": None, "spacing_mm": None, "mpp": [TRAIN_SLIDE.mpp, TRAIN_SLIDE.mpp]}
    block = training_reference(training, held_out, facts)
    rates = {
        "reference_slides": REFERENCE_SLIDES,
        "held_out_slides": EVAL_SLIDES,
        "held_out": flag_rates(block, held_out),
        "training": flag_rates(block, training),
    }
    return block, rates


def _joined_items(items: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([pooled for pooled, _ in items]), np.concatenate([spread for _, spread in items])


def guard_on_slides(package_folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """The guard through ``run_slide`` on the exported, approved bundle: the demo slide as ``medviewer
    demo-data`` writes it (seed 0) and the real slides of REAL_SLIDES, each with its rates."""
    from medviewer.ai.package import load_module, read_package
    from medviewer.ai.slide_run import run_slide

    loaded = load_module(read_package(package_folder))
    measured = []
    with tempfile.TemporaryDirectory(prefix="medviewer-guard-") as scratch:
        demo = Path(scratch) / "slide.tiff"
        write_demo_slide(demo, DEMO_SEED, DEMO_SLIDE)
        slides: list[tuple[str, Path, float | None]] = [("the demo slide (`medviewer demo-data`)", demo, None)]
        for name, mpp in REAL_SLIDES:
            if (REAL_SLIDE_FOLDER / name).is_file():
                assumed = f", no MPP recorded: {mpp:g} µm assumed" if mpp is not None else ""
                slides.append((f"`{name}` (real{assumed})", REAL_SLIDE_FOLDER / name, mpp))
        for name, path, mpp in slides:
            with open_slide(path) if mpp is None else AssumedMpp(path, mpp) as slide:
                result = run_slide(loaded, slide, patch_grid(slide, SPEC))
            assert result.ood is not None
            measured.append((name, report_rates(result.ood)))
    return measured


# -------------------------------------------------------------------------------------------- training


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The eight flips and right-angle turns (tissue has no up), and per-patch stain variation: each channel's
    contrast scaled and shifted a little, as staining and scanners differ."""
    n = x.shape[0]
    turns = int(torch.randint(0, 4, (1,), generator=generator))
    x = torch.rot90(x, turns, dims=(2, 3))
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    gain = 0.9 + 0.2 * torch.rand(n, 3, 1, 1, generator=generator)
    offset = 0.15 * (torch.rand(n, 3, 1, 1, generator=generator) - 0.5)
    return x * gain + offset


def train(data: PatchSet) -> PatchTumourNet:
    """Cross-entropy on the patch labels; AdamW with a one-cycle schedule."""
    torch.manual_seed(SEED)
    net = PatchTumourNet()
    x_all, y_all = torch.from_numpy(data.x), torch.from_numpy(data.y)
    steps_per_epoch = -(-len(y_all) // BATCH)
    optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=LEARNING_RATE, total_steps=EPOCHS * steps_per_epoch, pct_start=0.2
    )
    generator = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        net.train()
        order = torch.randperm(len(y_all), generator=generator)
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            y = y_all[batch]
            logits = net(_augment(x_all[batch], generator))
            loss = F.cross_entropy(logits, y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            net.constrain_signs()
            total += len(batch)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += float(loss.detach()) * len(batch)
        print(f"  epoch {epoch + 1:2d}/{EPOCHS}: loss {loss_sum / total:.4f}, training accuracy {correct / total:.3f}")
    return net.eval()


# ------------------------------------------------------------------------------------------ evaluation


def cam_hits(net: nn.Module, x: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per patch: does the tumour-class Grad-CAM maximum lie on a tumour pixel of the patch?"""
    hits = []
    for i in range(0, len(x), 64):
        cams = grad_cam(net, torch.from_numpy(x[i : i + 64]), CLASSES.index("tumour")).numpy()
        for cam, mask in zip(cams, masks[i : i + 64], strict=True):
            hits.append(bool(mask.flat[int(cam.argmax())]))
    return np.asarray(hits)


def random_copy(seed: int) -> PatchTumourNet:
    """The same network with freshly initialised weights: the randomisation check of Adebayo et al. (2018)."""
    torch.manual_seed(seed)
    return PatchTumourNet().eval()


def unshifted(data: PatchSet) -> PatchSet:
    """The patches of the unshifted grid only: no two overlap, so accuracy counts each piece of tissue once."""
    return subset(data, np.array([i for i, name in enumerate(data.source) if name.endswith("+0")], dtype=np.int64))


def edge_patches(data: PatchSet) -> PatchSet:
    """Tumour patches that straddle a tumour's edge (tumour fraction below EDGE_MAX_FRACTION)."""
    return subset(data, np.flatnonzero((data.y == 1) & (data.fraction < EDGE_MAX_FRACTION)))


# ---------------------------------------------------------------------------------------------- export


def metadata(results: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    return {
        **metadata_header(NAME, VERSION),
        "task": "Classify an H&E-like slide patch as tumour-like or normal texture (demonstration)",
        "description": (
            "A small CNN that says whether a 128 µm patch of an H&E-like slide shows tumour-like texture (dense, "
            "large, dark nuclei in purple cytoplasm) or normal stroma. Trained only on synthetic slides generated "
            "by medviewer (medviewer.demo.slide_phantom), to demonstrate the viewer's slide runs, heatmaps and "
            "saliency overlays."
        ),
        "intended_use": (
            "Demonstration only: trained on synthetic phantoms for demonstration, not for diagnostic use. It has "
            "never seen a real slide and its outputs on real tissue are meaningless."
        ),
        "authors": "medviewer project",
        "data_source": "Synthetic H&E-like slides from medviewer.demo.slide_phantom.write_demo_slide (seeded)",
        "data_type": "pyramidal TIFF slides, generated by the training script",
        "image_classes": "RGB: a 64 x 64 patch at 2 µm per pixel, standardised with the ImageNet mean and std",
        "label_classes": "normal (no tumour in the patch), tumour (at least 30 % of the patch is tumour)",
        "pred_classes": "logits for normal, tumour; apply softmax",
        "eval_metrics": {"held_out_accuracy": round(results["held_out"]["accuracy"], 4)},
        "references": [
            "Selvaraju et al., Grad-CAM, ICCV 2017",
            "Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018",
        ],
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "RGB",
                    "modality": "SM",
                    "num_channels": 3,
                    "spatial_shape": list(SHAPE),
                    "dtype": "float32",
                    "value_range": [0, 255],
                    "is_patch_data": True,
                    "channel_def": {"0": "R", "1": "G", "2": "B"},
                }
            },
            "outputs": class_probabilities_output(CLASSES),
        },
        "medviewer": {
            "target": "slide_patch",
            "input": {
                "shape": list(SHAPE),
                "channels": 3,
                "mpp": MPP,
                "intensity": {"scale": {"mean": list(MEAN), "std": list(STD), "max": 255}},
            },
            "output": {"activation": "softmax", "classes": list(CLASSES)},
            "explain": {"features": "forward_features", "head": "forward_head"},
            "diagnostic_use": False,
            "training": training,
        },
    }


def guard_section(results: dict[str, Any], training: dict[str, Any]) -> str:
    """The model card's section on the out-of-distribution guard: its reference and measured flag rates."""
    features, guard = training["features"], results["guard"]
    intensity = training["intensity_percentiles"]
    rows = "".join(
        rates_row(name, rates)
        for name, rates in (
            (f"held-out slides, every tissue patch ({guard['held_out_slides']} slides)", guard["held_out"]),
            (f"the reference's own training patches ({guard['reference_slides']} slides)", guard["training"]),
            *results["guard_slides"],
        )
    )
    real = [(name, rates) for name, rates in results["guard_slides"] if "real" in name]
    verdicts = [
        f"- {name}: the feature score alone flags {rates['feature']:.1%} of its tissue patches, everything together "
        f"{rates['combined']:.1%}"
        + ("" if rates["combined"] >= 0.9 else " (**below the 90 % the project asks for**)")
        + (
            "; the slide records no pixel size, so the viewer refuses to run a slide_patch model on it at all, and "
            "this is a measurement of the guard only"
            if "assumed" in name
            else ""
        )
        + "."
        for name, rates in real
    ]
    short = any(rates["feature"] < 0.9 for _, rates in real)
    verdict = "\n".join(verdicts) or "No real slide was available to measure it on."
    if short:
        verdict += (
            "\n\nThe feature score alone falls short on real slides: in this small network's feature space many real "
            "patches lie as close to the synthetic ones as held-out synthetic patches do (probably because it was "
            "trained with stain augmentation, to be blind to colour, which is where real slides differ most). The "
            "intensity score sees the colour the features are blind to: not any one channel leaving its range (a "
            "box of per-channel ranges, the first version of this check, passed a fifth of the TCGA slide) but "
            "how the three channels go together."
        )
    return f"""## Out-of-distribution guard

The metadata carries what the model was trained on (`medviewer.training`), and the viewer checks every patch
it runs against it (`medviewer.ai.ood`); a patch outside is flagged on screen, in JSON and in the stored
result, so a heatmap over tissue the model was not made for does not look like a finding.

- **Feature score**: the Mahalanobis distance (Lee et al., NeurIPS 2018) of the patch's `forward_features`
  output, pooled to each channel's spatial mean and standard deviation ({features["dimensions"]} values), from
  the mean of {features["training_items"]} training patches (every tissue patch of {guard["reference_slides"]}
  training slides, on the grid and on the grid shifted by half a patch) under their covariance shrunk by
  Ledoit and Wolf's estimate ({features["shrinkage"]:.3g}). A patch is flagged above
  **{features["threshold"]:.4g}**, the {features["threshold_percentile"]:g}th percentile of the distances of
  {features["held_out_items"]} held-out patches (every tissue patch of {guard["held_out_slides"]} slides of seeds
  {EVAL_SEED} to {EVAL_SEED + EVAL_SLIDES - 1}), not of training patches.
- **Intensity score**: the Mahalanobis distance of the 1st, 50th and 99th percentiles of each colour channel
  of the patch's input (after standardising; {intensity["dimensions"]} values) from those of the same training
  patches, under their shrunk covariance ({intensity["shrinkage"]:.3g}); flagged above
  **{intensity["threshold"]:.4g}**, the {intensity["threshold_percentile"]:g}th percentile over the same held-out
  patches.
- **Image**: the slide's micrometres per pixel against the training slides' {TRAIN_SLIDE.mpp:g} µm (within
  10 %), when the slide records it.

Measured flag rates (feature score alone, intensity alone, image-level reasons, and all together; the rows
from "the demo slide" on are runs of this bundle through `medviewer.ai.slide_run.run_slide` over every tissue
patch):

| Patches of | Count | Feature score | Intensity | Image reasons | Flagged |
|---|---|---|---|---|---|
{rows}
{verdict}

The threshold was set on held-out synthetic patches only, never on these files. A patch the guard passes is
still only as trustworthy as this demonstration model.
"""


def write_card(
    results: dict[str, Any], training: dict[str, Any], files: dict[str, Path], approvals: list[dict[str, str]]
) -> None:
    held, demo = results["held_out"], results["demo_slide"]
    parameters = sum(p.numel() for p in PatchTumourNet().parameters())
    card = f"""# {NAME} {VERSION}: demo pathology patch classifier

**Trained on synthetic phantoms for demonstration, not for diagnostic use.** This model has never seen a real
slide. It exists so that medviewer's slide runs, tumour heatmaps and saliency overlays can be shown on the demo
slide (`medviewer demo-data`) with no patient data and no downloads.

## What it does

Given a patch of an H&E-like slide, it gives the probabilities of `normal` and `tumour`: whether the patch shows
the tumour-like texture that medviewer's slide phantom plants (dense, large, dark nuclei in purple cytoplasm)
or the normal stroma around it (sparse, small, elongated nuclei in pink).

- Input, as `configs/metadata.json` declares it and `medviewer.ai.slide_run` prepares it: RGB, {SHAPE[0]} x
  {SHAPE[1]} pixels at {MPP:g} µm per pixel ({SHAPE[0] * MPP:g} µm square), values / 255 standardised with the
  ImageNet mean {list(MEAN)} and standard deviation {list(STD)}.
- Output: logits for `normal` and `tumour`; the viewer applies softmax.
- Network ({parameters} parameters): five 3x3 convolution blocks with batch norm and ReLU (two with stride 2,
  one dilated) down to a 48-channel 16 x 16 feature map; a 1x1 convolution scores each position for "tumour
  here"; global max pooling takes the patch's highest score, and a linear layer turns it into the two logits.
  The `tumour` logit rises with that score (its weight is kept non-negative during training), so the Grad-CAM
  of `tumour` is the network's own score map. `forward_features` and `forward_head` are exported methods, so
  Grad-CAM runs on the TorchScript file (`models/model.ts`); `models/model.pt2` (torch.export, any batch size)
  keeps only `forward`.

## Training data and training

All synthetic: {TRAIN_SLIDES} slides of {TRAIN_SLIDE.width} x {TRAIN_SLIDE.height} pixels at {TRAIN_SLIDE.mpp} µm
made by `medviewer.demo.slide_phantom.write_demo_slide` (seeds {SEED} to {SEED + TRAIN_SLIDES - 1}), written as
pyramidal TIFFs and read back the way a slide run reads them: patches on the tissue grid at {MPP:g} µm (and on
grids shifted by quarter patches along the diagonal), read at pyramid level 1. Each patch is labelled from the
planted tumour polygons (`medviewer.demo.patch_truth`):

- `tumour`: at least {TUMOUR_MIN_FRACTION:.0%} of the patch lies inside a tumour polygon;
- `normal`: none of it does;
- patches in between are left out of training and evaluation.

Classes are balanced ({results["train_patches"]} patches). The loss is cross-entropy on the patch label only:
no pixel-level truth is used. Augmentation: the eight flips and right-angle turns, and per-channel contrast and
offset changes standing for stain variation. {EPOCHS} epochs of AdamW with a one-cycle schedule, batch {BATCH}.

## Evaluation (held out: never seen in training)

Accuracy is measured on the patches of the unshifted grid (no two overlap; normal patches were drawn to
match the tumour patches in number over the four grids, so the classes are nearly balanced):

| Set | Patches | Accuracy | Sensitivity | Specificity |
|---|---|---|---|---|
| {EVAL_SLIDES} slides of seeds {EVAL_SEED} to {EVAL_SEED + EVAL_SLIDES - 1} | {held["count"]} | \
{held["accuracy"]:.3f} | {held["sensitivity"]:.3f} | {held["specificity"]:.3f} |
| the demo slide of `medviewer demo-data` (seed {DEMO_SEED}, {DEMO_SLIDE.width} x {DEMO_SLIDE.height}) | \
{demo["count"]} | {demo["accuracy"]:.3f} | {demo["sensitivity"]:.3f} | {demo["specificity"]:.3f} |

**Held-out accuracy: {held["accuracy"]:.3f}** (the project requires at least 0.95).

Saliency sanity check (Grad-CAM, Selvaraju et al. 2017; randomisation test, Adebayo et al. 2018): on the
{results["cam_patches"]} held-out `tumour` patches that straddle a tumour's edge (tumour fraction
{TUMOUR_MIN_FRACTION:.0%} to {EDGE_MAX_FRACTION:.0%}, so part of the patch is not tumour; from all four grids, so
each stretch of edge is cut up to four ways), the maximum of the `tumour`
Grad-CAM lies on a tumour pixel for **{results["cam_trained"]:.1%}** of patches; for the same network with random
weights, {results["cam_random"]:.1%}. The network learnt this from patch labels alone.
`tests/ai/test_demo_patch_model.py` repeats both checks on the exported file.

{guard_section(results, training)}
## Retraining

```
python models/slide_patch_tumour/train.py
```

About {results["seconds"] / 60:.0f} minutes on 2 CPU cores. Seeds are fixed, algorithms deterministic and 2
threads used, so a rerun with the same software reproduces the weights. The script rewrites `bundle/`
(weights, metadata, this card) and this model's entries in `resources/approved_models.json`; weights whose
bytes change are new files, which the viewer trusts only through that list.

## Files

| File | Bytes | SHA-256 |
|---|---|---|
{files_table(files, approvals)}
## Limitations

- Synthetic data only: one tissue type, one tumour look, nuclei drawn as ellipses, a smooth stain field. Real
  tumours, inflammation, necrosis, fat, folds, pen marks, blur and every other real finding are unknown to it.
  Not for diagnostic use, nor for any decision about a person.
- It sees 128 µm at a time at {MPP:g} µm per pixel; it cannot grade, and it was never shown patches that only
  graze a tumour (under {TUMOUR_MIN_FRACTION:.0%}), so its answer there is arbitrary.
- Grad-CAM shows where the network's evidence is, not where a finding is.
"""
    (BUNDLE / "docs").mkdir(parents=True, exist_ok=True)
    (BUNDLE / "docs" / "README.md").write_text(card, encoding="utf-8")


# ------------------------------------------------------------------------------------------------ main


def main() -> int:
    started = time.perf_counter()

    with (
        tempfile.TemporaryDirectory(prefix="medviewer-train-") as scratch,
        ProcessPoolExecutor(THREADS, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        folder = Path(scratch)
        print(f"Writing and cutting {TRAIN_SLIDES} training slides (seeds from {SEED}) ...")
        training = make_patches(folder, list(range(SEED, SEED + TRAIN_SLIDES)), TRAIN_SLIDE, pool)
        print(f"  {len(training.y)} balanced patches, {time.perf_counter() - started:.0f} s")
        print(f"Writing and cutting {EVAL_SLIDES} held-out slides (seeds from {EVAL_SEED}) and the demo slide ...")
        held_out = make_patches(folder, list(range(EVAL_SEED, EVAL_SEED + EVAL_SLIDES)), TRAIN_SLIDE, pool)
        demo = make_patches(folder, [DEMO_SEED], DEMO_SLIDE, pool)
        print(f"  {len(held_out.y)} + {len(demo.y)} balanced patches, {time.perf_counter() - started:.0f} s")

    print(f"Training {EPOCHS} epochs ...")
    net = train(training)

    edges = edge_patches(held_out)
    held_once, demo_once = unshifted(held_out), unshifted(demo)
    results: dict[str, Any] = {
        "train_patches": len(training.y),
        "held_out": accuracy(net, held_once.x, held_once.y),
        "demo_slide": accuracy(net, demo_once.x, demo_once.y),
        "cam_trained": float(cam_hits(net, edges.x, edges.masks).mean()),
        "cam_random": float(cam_hits(random_copy(SEED + 1), edges.x, edges.masks).mean()),
        "cam_patches": len(edges.y),
    }
    for key in ("held_out", "demo_slide"):
        r = results[key]
        print(
            f"{key}: accuracy {r['accuracy']:.4f} (sensitivity {r['sensitivity']:.3f}, "
            f"specificity {r['specificity']:.3f}, {r['count']} patches)"
        )
    print(
        f"Grad-CAM maximum on tumour in {len(edges.y)} edge patches: trained {results['cam_trained']:.3f}, "
        f"random {results['cam_random']:.3f}"
    )
    if results["held_out"]["accuracy"] < 0.95:
        print("Held-out accuracy is below the required 0.95: nothing exported.", file=sys.stderr)
        return 1

    print("Out-of-distribution reference: every tissue patch of training and held-out slides ...")
    training, results["guard"] = guard_reference(net)
    features = training["features"]
    print(
        f"  {features['training_items']} reference patches, threshold {features['threshold']:.4g} from "
        f"{features['held_out_items']} held-out patches, shrinkage {features['shrinkage']:.3g}"
    )
    for key in ("held_out", "training"):
        rates = results["guard"][key]
        print(
            f"  flagged on {key}: feature {rates['feature']:.3f}, intensity {rates['intensity']:.3f}, "
            f"combined {rates['combined']:.3f} of {rates['count']} patches"
        )

    example = torch.from_numpy(held_out.x[:2])
    files, approvals = publish(net, metadata(results, training), SPEC, BUNDLE, example, torch.from_numpy(held_out.x))
    print("The guard through run_slide on the demo slide and real slides ...")
    results["guard_slides"] = guard_on_slides(BUNDLE)
    for name, rates in results["guard_slides"]:
        print(
            f"  {name}: feature {rates['feature']:.3f}, intensity {rates['intensity']:.3f}, combined "
            f"{rates['combined']:.3f} of {rates['count']} patches; {'; '.join(rates['reasons']) or 'no image reasons'}"
        )
    results["seconds"] = time.perf_counter() - started
    write_card(results, training, files, approvals)
    update_approvals(BUNDLE, NAME, VERSION)  # the card is written now: approval pins it as it is
    print(f"Done in {results['seconds']:.0f} s; bundle in {BUNDLE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    run_reproducibly(main, THREADS)
