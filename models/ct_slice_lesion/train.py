"""Train and export the demo CT slice lesion classifier ``ct-slice-lesion-demo``.

Run ``python models/ct_slice_lesion/train.py`` from the repository. Everything the model learns from is made
here by the project's own chest phantom (``medviewer.demo.ct_phantom``): no patient data is involved, and the
model exists to demonstrate the viewer, never for diagnosis.

Steps, all seeded so that a rerun with the same software gives the same files:

1. Training phantoms (seed ``SEED``) at 2.8 mm and 1.4 mm pixels over the demo CTs' 358.4 mm field of view,
   with 0-3 lesions and slice gaps from 2 to 5 mm. Each axial slice is labelled from the phantom's ground
   truth (``slice_truth``): ``lesion`` when it cuts a lesion in a large enough disc with lung around it,
   ``normal`` when no lesion touches it, left out in between. The two classes are balanced.
2. Slices go through ``medviewer.ai.preprocess.slice_batch`` with the spec the metadata declares (resample
   to 2.8 mm, 128 x 128, window [-1000, 400] to 0..1): the network sees what the viewer will give it.
3. A small CNN (``CtSliceLesionNet``) is trained on 2 CPU threads with deterministic algorithms, from the
   slice labels and the phantom's lesion masks.
4. Held-out evaluation on phantoms from another seed, at the training resolutions and at the two demo CTs'
   geometries (``medviewer.demo.generate``), and the Grad-CAM sanity check against the same network with
   random weights (Adebayo et al., 2018).
5. The out-of-distribution guard's reference (``medviewer.training``, read by ``medviewer.ai.ood``): every
   slice of the first ``REFERENCE_PHANTOMS`` training phantoms gives the feature mean and shrinkage
   covariance and the intensity ranges; every slice of ``GUARD_HELD_OUT_PHANTOMS`` held-out phantoms (and of
   phantoms at the demo CTs' geometries) gives the threshold, the 99th percentile of their distances.
6. Export into ``bundle/``: ``models/model.ts`` (TorchScript with metadata.json in its extra files, as MONAI's
   ``ckpt_export`` writes it), ``models/model.pt2`` (torch.export, dynamic batch), ``configs/metadata.json`` and
   the model card ``docs/README.md`` with the measured figures. The weights files' SHA-256 replace this
   model's entries in ``resources/approved_models.json``, so the viewer trusts exactly these files.
7. The guard measured through the viewer's own run (``run_slices`` on the exported, approved bundle) on the
   demo CTs as ``medviewer demo-data`` writes them and on real CTs the model has never seen (the GE head CT
   of ``tests/data/dcm_qa_ct_ge`` and pydicom's ``CT_small.dcm``), for the model card.
"""

from __future__ import annotations

import gzip
import math
import multiprocessing
import shutil
import sys
import tempfile
import time
from concurrent.futures import Executor, ProcessPoolExecutor
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

from medviewer.ai.package import ExplainSpec, IntensityWindow, ModelSpec  # noqa: E402
from medviewer.ai.preprocess import slice_batch  # noqa: E402
from medviewer.core.volume import Volume  # noqa: E402
from medviewer.demo.ct_phantom import CtGeometry, make_chest_phantom  # noqa: E402
from medviewer.demo.ct_truth import (  # noqa: E402
    LESION_MIN_FRACTION,
    LESION_MIN_LUNG_AROUND,
    LESION_MIN_RADIUS_MM,
    Disc,
    slice_truth,
)
from medviewer.demo.generate import MAIN_CT, SECOND_CT, generate_ct_study  # noqa: E402
from models.bundle_tools import (  # noqa: E402
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

NAME = "ct-slice-lesion-demo"
VERSION = "1.2.0"
SEED = 20240601
EVAL_SEED = 777_001  # held-out phantoms: a different seed from training
THREADS = 2

BUNDLE = HERE / "bundle"

#: The model's input: 128 x 128 pixels of 2.8 mm cover the demo CTs' whole 358.4 mm field of view
#: (512 x 0.7 mm and 256 x 1.4 mm), so resampling to the spacing already gives the shape.
SHAPE = (128, 128)
SPACING_MM = (2.8, 2.8)
WINDOW = (-1000.0, 400.0)
CLASSES = ("normal", "lesion")
FIELD_OF_VIEW_MM = 358.4

TRAIN_PHANTOMS = 360
EVAL_PHANTOMS = 60
EPOCHS = 6
BATCH = 64
LEARNING_RATE = 3e-3
#: The lesion-mask loss: without it the slice label alone lets the score peak anywhere that predicts the
#: label (it settled a few pixels beside the lesions), and Grad-CAM would point there.
MAP_LOSS_WEIGHT = 30.0
MAP_POSITIVE_WEIGHT = 10.0

#: The guard's reference: every slice of this many training phantoms (the first of the training jobs).
REFERENCE_PHANTOMS = 60
#: Its threshold: every slice of this many held-out phantoms at the training resolutions, and of
#: GUARD_DEMO_GEOMETRY phantoms at the demo CTs' geometries (main, second), all from EVAL_SEED.
GUARD_HELD_OUT_PHANTOMS = 30
GUARD_DEMO_GEOMETRY = (3, 8)
#: Real CTs the guard is measured on for the card (in the repository's test data, when present).
GE_HEAD_CT = REPO / "tests" / "data" / "dcm_qa_ct_ge"

SPEC = ModelSpec(
    target="slice",
    shape=SHAPE,
    channels=1,
    spacing_mm=SPACING_MM,
    mpp=None,
    intensity=IntensityWindow(*WINDOW),
    activation="softmax",
    classes=CLASSES,
    explain=ExplainSpec("forward_features", "forward_head"),
    diagnostic_use=False,
)


# --------------------------------------------------------------------------------------------- network


class CtSliceLesionNet(ScoreMapClassifier):
    """Five conv blocks down to a 32 x 32 feature map (dilations widen the view to about 160 mm), scored per
    position for "lesion here" (``ScoreMapClassifier``): the Grad-CAM of ``lesion`` is that score map."""

    def __init__(self) -> None:
        features = nn.Sequential(
            conv_block(1, 16, stride=2),
            conv_block(16, 24),
            conv_block(24, 32, stride=2),
            conv_block(32, 32, dilation=2),
            conv_block(32, 32, dilation=4),
        )
        # Lesions are rare: the score starts at "no lesion here" everywhere.
        super().__init__(features, 32, len(CLASSES), CLASSES.index("lesion"), score_bias=-4.0)


# ------------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class PhantomJob:
    seed: int
    index: int
    geometry: CtGeometry
    lesion_count: int
    normals: int  # normal slices to draw besides as many as there are lesion slices (-1: every labelled slice)


@dataclass
class SliceSet:
    x: np.ndarray  # (N, 1, H, W) float32, as slice_batch makes it
    y: np.ndarray  # (N,) int64, index into CLASSES
    discs: list[list[Disc]]  # qualifying lesion discs per slice (empty for normal slices)
    source: list[str]  # "seed/index/k" per slice, for reports


def _phantom_slices(job: PhantomJob) -> tuple[np.ndarray, list[int], list[int], list[list[Disc]]]:
    """One phantom's chosen slices: HU stack, their indices, labels and discs (runs in a worker process)."""
    rng = np.random.default_rng([job.seed, job.index])
    hu, lesions = make_chest_phantom(rng, job.geometry, job.lesion_count)
    truth = [slice_truth(job.geometry, lesions, k, hu[k], SHAPE) for k in range(job.geometry.shape[0])]
    positives = [k for k, (label, _) in enumerate(truth) if label == 1]
    negatives = [k for k, (label, _) in enumerate(truth) if label == 0]
    if job.normals >= 0:
        wanted = min(len(negatives), len(positives) + job.normals)
        negatives = sorted(rng.choice(negatives, size=wanted, replace=False).tolist())
    chosen = positives + negatives
    return hu[chosen], chosen, [truth[k][0] for k in chosen], [truth[k][1] for k in chosen]


def _training_geometry(rng: np.random.Generator) -> CtGeometry:
    """Pixels of 2.8 mm (the model's own) or 1.4 mm (shrunk by slice_batch), slice gaps of 2-5 mm."""
    pixel_mm = float(rng.choice([2.8, 1.4], p=[0.7, 0.3]))
    slice_mm = float(rng.choice([2.0, 2.5, 3.0, 4.0, 5.0]))
    depth = int(round(rng.uniform(240.0, 300.0) / slice_mm))
    size = int(round(FIELD_OF_VIEW_MM / pixel_mm))
    return CtGeometry(shape=(depth, size, size), pixel_mm=pixel_mm, slice_mm=slice_mm)


def phantom_jobs(seed: int, count: int, normals: int = 2) -> list[PhantomJob]:
    rng = np.random.default_rng([seed, 0])
    jobs = []
    for index in range(1, count + 1):
        geometry = _training_geometry(rng)
        lesion_count = int(rng.choice([0, 1, 2, 3], p=[0.1, 0.3, 0.3, 0.3]))
        jobs.append(PhantomJob(seed, index, geometry, lesion_count, normals))
    return jobs


def make_slices(jobs: list[PhantomJob], balance_seed: int | None, pool: Executor | None = None) -> SliceSet:
    """Phantoms made (in ``pool``'s worker processes where given), their slices preprocessed as the metadata
    says, classes balanced by drawing as many normal slices as there are lesion slices (``balance_seed``
    None keeps all)."""
    inputs: list[np.ndarray] = []
    labels: list[int] = []
    discs: list[list[Disc]] = []
    source: list[str] = []
    made = map(_phantom_slices, jobs) if pool is None else pool.map(_phantom_slices, jobs)
    for job, (hu, chosen, job_labels, job_discs) in zip(jobs, made, strict=True):
        if not chosen:
            continue
        geometry = job.geometry
        volume = Volume(hu, (geometry.pixel_mm, geometry.pixel_mm, geometry.slice_mm), geometry.origin)
        inputs.append(slice_batch(volume, list(range(len(chosen))), SPEC))
        labels += job_labels
        discs += job_discs
        source += [f"{job.seed}/{job.index}/{k}" for k in chosen]
    x, y = np.concatenate(inputs), np.asarray(labels, dtype=np.int64)
    if balance_seed is not None:
        positives, negatives = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        count = min(len(positives), len(negatives))
        rng = np.random.default_rng(balance_seed)
        keep = np.sort(
            np.concatenate([rng.choice(positives, count, replace=False), rng.choice(negatives, count, replace=False)])
        )
        x, y = x[keep], y[keep]
        discs, source = [discs[i] for i in keep], [source[i] for i in keep]
    return SliceSet(x, y, discs, source)


def _phantom_volume(job: PhantomJob) -> Volume:
    """Every slice of one phantom as a volume (runs in a worker process)."""
    hu, _ = make_chest_phantom(np.random.default_rng([job.seed, job.index]), job.geometry, job.lesion_count)
    geometry = job.geometry
    return Volume(hu, (geometry.pixel_mm, geometry.pixel_mm, geometry.slice_mm), geometry.origin, modality="CT")


def guard_items(net: nn.Module, jobs: list[PhantomJob], pool: Executor) -> tuple[np.ndarray, np.ndarray]:
    """Pooled features and input percentiles of every slice of the phantoms of ``jobs``, prepared by
    ``slice_batch`` as a run prepares them."""
    pooled, percentiles = [], []
    for volume in pool.map(_phantom_volume, jobs):
        for first in range(0, volume.shape[0], 128):
            indices = list(range(first, min(first + 128, volume.shape[0])))
            features, spread = item_features(net, slice_batch(volume, indices, SPEC))
            pooled.append(features)
            percentiles.append(spread)
    return np.concatenate(pooled), np.concatenate(percentiles)


def guard_reference(net: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``medviewer.training`` block and the guard's flag rates on the held-out slices."""
    reference_jobs = phantom_jobs(SEED, TRAIN_PHANTOMS)[:REFERENCE_PHANTOMS]  # training phantoms, as trained on
    main, second = GUARD_DEMO_GEOMETRY
    demo_jobs = demo_geometry_jobs(EVAL_SEED)
    held_jobs = phantom_jobs(EVAL_SEED, GUARD_HELD_OUT_PHANTOMS)
    geometry_jobs = demo_jobs[:main] + demo_jobs[4 : 4 + second]
    with ProcessPoolExecutor(THREADS, mp_context=multiprocessing.get_context("spawn")) as pool:
        training = guard_items(net, reference_jobs, pool)
        held_out = guard_items(net, held_jobs, pool)
        at_demo_geometry = guard_items(net, geometry_jobs, pool)
    both = (np.concatenate([held_out[0], at_demo_geometry[0]]), np.concatenate([held_out[1], at_demo_geometry[1]]))
    spacings = [job.geometry.pixel_mm for job in reference_jobs + held_jobs + geometry_jobs]
    facts = {"modality": ["CT"], "body_part": ["CHEST"], "spacing_mm": [min(spacings), max(spacings)], "mpp": None}
    block = training_reference(training, both, facts)
    rates = {
        "reference_phantoms": len(reference_jobs),
        "held_out_phantoms": len(held_jobs),
        "geometry_phantoms": len(geometry_jobs),
        "held_out": flag_rates(block, held_out),
        "demo_geometry": flag_rates(block, at_demo_geometry),
        "training": flag_rates(block, training),
    }
    return block, rates


def guard_on_images(package_folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """The guard through ``run_slices`` on the exported, approved bundle: the two demo CTs as ``medviewer
    demo-data`` writes them (DICOM, seed 0) and real CTs, each with its rates."""
    import pydicom.data

    from medviewer.ai.inference import run_slices
    from medviewer.ai.package import load_module, read_package
    from medviewer.io import open_volume

    loaded = load_module(read_package(package_folder))
    measured = []
    with tempfile.TemporaryDirectory(prefix="medviewer-guard-") as scratch:
        folder = Path(scratch)
        images: list[tuple[str, Path]] = []
        demo_cts = ((1, MAIN_CT, 3, "demo CT, 0.7 mm"), (2, SECOND_CT, 1, "demo CT, 1.4 mm"))
        for index, geometry, lesions, name in demo_cts:
            generate_ct_study(folder / f"ct{index}", 0, index, geometry, lesions)
            images.append((f"{name} (`medviewer demo-data`, DICOM)", folder / f"ct{index}"))
        if GE_HEAD_CT.is_dir():
            (folder / "ge").mkdir()
            for packed in sorted(GE_HEAD_CT.glob("*.dcm.gz")):
                with gzip.open(packed) as source, open(folder / "ge" / packed.name[:-3], "wb") as target:
                    shutil.copyfileobj(source, target)
            images.append(("GE HiSpeed head CT (`tests/data/dcm_qa_ct_ge`, real)", folder / "ge"))
        small = pydicom.data.get_testdata_file("CT_small.dcm")
        if small is not None:
            images.append(("pydicom `CT_small.dcm` (real)", Path(small)))
        for name, path in images:
            volume = open_volume(path)
            result = run_slices(loaded, volume, list(range(volume.shape[0])))
            assert result.ood is not None
            measured.append((name, report_rates(result.ood)))
    return measured


# -------------------------------------------------------------------------------------------- training


def disc_masks(discs: list[list[Disc]], shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """(N, 1, H, W) float32: 1 inside each slice's lesion discs, on the input grid."""
    rows, columns = np.mgrid[: shape[0], : shape[1]]
    masks = np.zeros((len(discs), 1, *shape), dtype=np.float32)
    for i, slice_discs in enumerate(discs):
        for d in slice_discs:
            masks[i, 0][(rows - d.row) ** 2 + (columns - d.column) ** 2 <= d.radius**2] = 1.0
    return masks


def _augment(x: torch.Tensor, mask: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror left-right (per slice), shift the batch by up to 6 pixels, blur it a little (as resampling from
    finer pixels does) and scale grey levels (per slice); lesion masks follow the geometric changes."""
    n = x.shape[0]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=generator)

    both = torch.cat([x, mask], 1)
    flip = torch.rand(n, generator=generator) < 0.5
    both = torch.where(flip[:, None, None, None], both.flip(-1), both)
    dy, dx = torch.randint(-6, 7, (2,), generator=generator).tolist()
    h, w = x.shape[-2:]
    both = F.pad(both, (6, 6, 6, 6))[:, :, 6 + dy : 6 + dy + h, 6 + dx : 6 + dx + w]
    x, mask = both[:, :1], both[:, 1:]
    sigma = float(uniform(0.05, 0.9, 1))
    taps = torch.exp(-(torch.arange(-2, 3, dtype=torch.float32) ** 2) / (2 * sigma**2))
    taps = taps / taps.sum()
    # Separable blur as shifted sums: a 1-channel conv2d is far slower than this on CPU.
    padded = F.pad(x, (2, 2, 0, 0), mode="replicate")
    x = sum(float(taps[k]) * padded[..., k : k + w] for k in range(5))
    padded = F.pad(x, (0, 0, 2, 2), mode="replicate")
    x = sum(float(taps[k]) * padded[..., k : k + h, :] for k in range(5))
    gain, offset = uniform(0.93, 1.07, n, 1, 1, 1), uniform(-0.03, 0.03, n, 1, 1, 1)
    return (x * gain + offset).clamp(0.0, 1.0), mask


def train(data: SliceSet) -> CtSliceLesionNet:
    """Cross-entropy on the slice label plus, weighted by ``MAP_LOSS_WEIGHT``, a per-position loss asking the
    per-position score to be high where the phantom planted a lesion and low elsewhere (the phantom gives pixel
    truth)."""
    torch.manual_seed(SEED)
    net = CtSliceLesionNet()
    x_all, y_all = torch.from_numpy(data.x), torch.from_numpy(data.y)
    mask_all = torch.from_numpy(disc_masks(data.discs))
    steps_per_epoch = math.ceil(len(y_all) / BATCH)
    optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=LEARNING_RATE, total_steps=EPOCHS * steps_per_epoch, pct_start=0.2
    )
    generator = torch.Generator().manual_seed(SEED)
    pos_weight = torch.tensor(MAP_POSITIVE_WEIGHT)
    for epoch in range(EPOCHS):
        net.train()
        order = torch.randperm(len(y_all), generator=generator)
        total, correct, loss_sum, map_sum = 0, 0, 0.0, 0.0
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            x, mask = _augment(x_all[batch], mask_all[batch], generator)
            y = y_all[batch]
            features = net.forward_features(x)
            logits = net.forward_head(features)
            target = F.adaptive_avg_pool2d(mask, features.shape[-2:])[:, 0]
            map_loss = F.binary_cross_entropy_with_logits(net.score(features)[:, 0], target, pos_weight=pos_weight)
            class_loss = F.cross_entropy(logits, y)
            loss = class_loss + MAP_LOSS_WEIGHT * map_loss
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            net.constrain_signs()
            total += len(batch)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += float(class_loss.detach()) * len(batch)
            map_sum += float(map_loss.detach()) * len(batch)
        print(
            f"  epoch {epoch + 1:2d}/{EPOCHS}: loss {loss_sum / total:.4f}, map loss {map_sum / total:.4f}, "
            f"training accuracy {correct / total:.3f}"
        )
    return net.eval()


# ------------------------------------------------------------------------------------------ evaluation


def cam_hits(net: nn.Module, x: np.ndarray, discs: list[list[Disc]], margin: float = 1.0) -> np.ndarray:
    """Per lesion slice: does the lesion-class Grad-CAM maximum lie inside a planted lesion's disc (+margin)?"""
    hits = []
    for i in range(0, len(x), 64):
        cams = grad_cam(net, torch.from_numpy(x[i : i + 64]), CLASSES.index("lesion")).numpy()
        for cam, slice_discs in zip(cams, discs[i : i + 64], strict=True):
            row, column = np.unravel_index(int(cam.argmax()), cam.shape)
            hits.append(any(math.hypot(row - d.row, column - d.column) <= d.radius + margin for d in slice_discs))
    return np.asarray(hits)


def random_copy(seed: int) -> CtSliceLesionNet:
    """The same network with freshly initialised weights: the randomisation check of Adebayo et al. (2018)."""
    torch.manual_seed(seed)
    return CtSliceLesionNet().eval()


def demo_geometry_jobs(seed: int) -> list[PhantomJob]:
    """Held-out phantoms at the demo CTs' own geometries (0.7 mm, 2.5 mm slices; 1.4 mm, 5 mm slices)."""
    main = [PhantomJob(seed, 100 + i, MAIN_CT, 3, 2) for i in range(4)]
    second = [PhantomJob(seed, 200 + i, SECOND_CT, 2, 2) for i in range(16)]
    return main + second


# ---------------------------------------------------------------------------------------------- export


def metadata(results: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    return {
        **metadata_header(NAME, VERSION),
        "task": "Classify an axial CT slice as showing a lung lesion or not (demonstration)",
        "description": (
            "A small CNN that says whether an axial chest CT slice cuts a round soft-tissue lesion in the lungs. "
            "Trained only on synthetic chest phantoms generated by medviewer (medviewer.demo.ct_phantom), to "
            "demonstrate the viewer's model runs, probability curves and saliency overlays."
        ),
        "intended_use": (
            "Demonstration only: trained on synthetic phantoms for demonstration, not for diagnostic use. It has "
            "never seen a real CT and its outputs on real patients are meaningless."
        ),
        "authors": "medviewer project",
        "data_source": "Synthetic chest CT phantoms from medviewer.demo.ct_phantom.make_chest_phantom (seeded)",
        "data_type": "numpy arrays in Hounsfield units, generated on the fly",
        "image_classes": (
            "one channel: an axial CT slice resampled to 2.8 mm, 128 x 128, HU window [-1000, 400] mapped to 0..1"
        ),
        "label_classes": "normal (no lesion touches the slice), lesion (the slice cuts a planted lesion)",
        "pred_classes": "logits for normal, lesion; apply softmax",
        "eval_metrics": {"held_out_accuracy": round(results["held_out"]["accuracy"], 4)},
        "references": [
            "Selvaraju et al., Grad-CAM, ICCV 2017",
            "Adebayo et al., Sanity Checks for Saliency Maps, NeurIPS 2018",
        ],
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "hounsfield",
                    "modality": "CT",
                    "num_channels": 1,
                    "spatial_shape": list(SHAPE),
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": False,
                    "channel_def": {"0": "image"},
                }
            },
            "outputs": class_probabilities_output(CLASSES),
        },
        "medviewer": {
            "target": "slice",
            "input": {
                "shape": list(SHAPE),
                "channels": 1,
                "spacing_mm": list(SPACING_MM),
                "intensity": {"window": list(WINDOW)},
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
    low, high = training["spacing_mm"]
    rows = "".join(
        rates_row(name, rates)
        for name, rates in (
            (f"held-out phantoms, every slice ({guard['held_out_phantoms']} phantoms)", guard["held_out"]),
            (f"held-out phantoms at the demo CTs' geometries ({guard['geometry_phantoms']})", guard["demo_geometry"]),
            (f"the reference's own training slices ({guard['reference_phantoms']} phantoms)", guard["training"]),
            *results["guard_images"],
        )
    )
    real = [rates for name, rates in results["guard_images"] if "real" in name]
    short = [name for name, rates in results["guard_images"] if "real" in name and rates["feature"] < 0.9]
    verdict = (
        "On every real CT listed the feature score alone flags at least 90 % of the slices."
        if real and not short
        else f"The feature score alone flags fewer than 90 % of the slices of: {', '.join(short)}."
        if short
        else "No real CT was available to measure it on."
    )
    return f"""## Out-of-distribution guard

The metadata carries what the model was trained on (`medviewer.training`), and the viewer checks every slice
it runs against it (`medviewer.ai.ood`); a slice outside is flagged on screen, in JSON and in the stored
result, so a run on an image the model was not made for does not look like a finding.

- **Feature score**: the Mahalanobis distance (Lee et al., NeurIPS 2018) of the slice's `forward_features`
  output, pooled to each channel's spatial mean and standard deviation ({features["dimensions"]} values), from
  the mean of {features["training_items"]} training slices (every slice of {guard["reference_phantoms"]} training
  phantoms) under their covariance shrunk by Ledoit and Wolf's estimate ({features["shrinkage"]:.3g}). A slice is
  flagged above **{features["threshold"]:.4g}**, the {features["threshold_percentile"]:g}th percentile of the
  distances of {features["held_out_items"]} held-out slices (every slice of {guard["held_out_phantoms"]} phantoms of
  seed {EVAL_SEED} and {guard["geometry_phantoms"]} at the demo CTs' geometries), not of training slices.
- **Intensity score**: the Mahalanobis distance of the 1st, 50th and 99th percentiles of the slice's input
  (after the window) from those of the same training slices, under their shrunk covariance
  ({intensity["shrinkage"]:.3g}); flagged above **{intensity["threshold"]:.4g}**, the
  {intensity["threshold_percentile"]:g}th percentile over the same held-out slices.
- **Image**: modality {", ".join(training["modality"])}, body part {", ".join(training["body_part"])} (when the
  file records it), in-plane pixel spacing {low:g} to {high:g} mm (the training and held-out phantoms').

Measured flag rates (feature score alone, intensity alone, image-level reasons, and all together; the rows
from "demo CT" on are runs of this bundle through `medviewer.ai.inference.run_slices`):

| Slices of | Count | Feature score | Intensity | Image reasons | Flagged |
|---|---|---|---|---|---|
{rows}
{verdict}
The threshold was set on held-out synthetic slices only, never on these files. The guard cannot see
everything: a real chest CT at the training geometry looks more like the phantoms than a head CT does, and a
slice the guard passes is still only as trustworthy as this demonstration model.
"""


def write_card(
    results: dict[str, Any], training: dict[str, Any], files: dict[str, Path], approvals: list[dict[str, str]]
) -> None:
    held, demo = results["held_out"], results["demo_geometry"]
    parameters = sum(p.numel() for p in CtSliceLesionNet().parameters())
    rows = files_table(files, approvals)
    card = f"""# {NAME} {VERSION}: demo CT slice lesion classifier

**Trained on synthetic phantoms for demonstration, not for diagnostic use.** This model has never seen a real
CT scan. It exists so that medviewer's model runs, per-slice probability curves and saliency overlays can be
shown on the demo data (`medviewer demo-data`) with no patient data and no downloads.

## What it does

Given one axial chest CT slice, it gives the probabilities of `normal` and `lesion`: whether the slice cuts one
of the round soft-tissue lesions that medviewer's chest phantom plants in the lungs.

- Input, as `configs/metadata.json` declares it and `medviewer.ai.preprocess.slice_batch` prepares it: one
  channel; the slice resampled to {SPACING_MM[0]} mm pixels, {SHAPE[0]} x {SHAPE[1]}; Hounsfield units clipped to
  [{WINDOW[0]:.0f}, {WINDOW[1]:.0f}] and mapped to 0..1. The demo CTs (512 pixels of 0.7 mm, 256 of 1.4 mm) both
  cover {FIELD_OF_VIEW_MM} mm, exactly {SHAPE[0]} pixels of {SPACING_MM[0]} mm.
- Output: logits for `normal` and `lesion`; the viewer applies softmax.
- Network ({parameters} parameters): five 3x3 convolution blocks with batch norm and ReLU (two with stride 2,
  two dilated) down to a 32-channel 32 x 32 feature map; a 1x1 convolution scores each position for "lesion
  here"; global max pooling takes the slice's highest score, and a linear layer turns it into the two logits.
  The `lesion` logit rises with that score (its weight is kept non-negative during training), so the Grad-CAM
  of `lesion` is the network's own lesion score map (the Grad-CAM of `normal` only marks where that score is
  lowest).
  `forward_features` and `forward_head` are exported methods, so Grad-CAM runs on the TorchScript file
  (`models/model.ts`); `models/model.pt2` (torch.export, any batch size) keeps only `forward`.

## Training data and training

All synthetic, made by `medviewer.demo.ct_phantom.make_chest_phantom` with seed {SEED}: {TRAIN_PHANTOMS} phantoms
at 2.8 mm or 1.4 mm pixels over a {FIELD_OF_VIEW_MM} mm field of view, slice gaps of 2-5 mm, 0-3 lesions each
(radius 5-12 mm, 20-60 HU, in the lungs). Each slice is labelled from the phantom's ground truth:

- `lesion`: the slice cuts a lesion in a disc of radius at least {LESION_MIN_FRACTION} x the lesion's radius and
  at least {LESION_MIN_RADIUS_MM} mm (the phantom's vessels reach 3.5 mm), with lung (below -500 HU) in at least
  {LESION_MIN_LUNG_AROUND:.0%} of a ring 1.5-4 mm around the disc: the phantom can draw the heart over a lung,
  and a lesion there has the heart's density and cannot be seen;
- `normal`: no lesion touches the slice;
- any other slice is left out of training and evaluation.

Classes are balanced ({results["train_slices"]} slices). The loss is cross-entropy on the slice label plus a
per-position loss (weight {MAP_LOSS_WEIGHT:g}) asking the score map to be high on the planted lesion's disc and low
elsewhere: the phantom gives pixel truth, and without it the score settled a few pixels beside the lesions.
Augmentation: left-right mirroring, shifts of up to 6 pixels, slight blur, grey-level gain and offset.
{EPOCHS} epochs of AdamW with a one-cycle schedule, batch {BATCH}.

## Evaluation (held out: phantoms generated with seed {EVAL_SEED}, never seen in training)

| Set | Slices (balanced) | Accuracy | Sensitivity | Specificity |
|---|---|---|---|---|
| {EVAL_PHANTOMS} phantoms at the training resolutions | {held["count"]} | {held["accuracy"]:.3f} | \
{held["sensitivity"]:.3f} | {held["specificity"]:.3f} |
| 20 phantoms at the demo CTs' geometries (0.7 mm and 2.5 mm slices; 1.4 mm and 5 mm) | {demo["count"]} | \
{demo["accuracy"]:.3f} | {demo["sensitivity"]:.3f} | {demo["specificity"]:.3f} |

**Held-out accuracy: {held["accuracy"]:.3f}** (the project requires at least 0.95).

Saliency sanity check (Grad-CAM, Selvaraju et al. 2017; randomisation test, Adebayo et al. 2018): on the
{results["cam_slices"]} held-out `lesion` slices, the maximum of the `lesion` Grad-CAM lies inside a planted
lesion's disc (1 pixel margin) for **{results["cam_trained"]:.1%}** of slices; for the same network with random
weights, {results["cam_random"]:.1%}. `tests/ai/test_demo_ct_model.py` repeats both checks on the exported file.

{guard_section(results, training)}
## Retraining

```
python models/ct_slice_lesion/train.py
```

About {results["seconds"] / 60:.0f} minutes on 2 CPU cores (the script prints its own time). Seeds are fixed,
algorithms deterministic and 2 threads used, so a rerun with the same software reproduces the weights. The
script rewrites `bundle/` (weights, metadata, this card) and this model's entries in
`resources/approved_models.json`; weights whose bytes change are new files, which the viewer trusts only through
that list.

## Files

| File | Bytes | SHA-256 |
|---|---|---|
{rows}
## Limitations

- Synthetic data only: smooth ellipse anatomy, perfectly round lesions of uniform density, Gaussian noise.
  Real nodules, vessels seen end-on, atelectasis, motion, contrast, metal and every other real finding are
  unknown to it. Not for diagnostic use, nor for any decision about a person.
- Lesions are only ever in the lungs and 5-12 mm in radius. Slices that graze a lesion (a disc smaller than
  {LESION_MIN_RADIUS_MM} mm in radius or half the lesion's radius) or where the lesion is hidden in the heart were
  left out, so its answer there is arbitrary.
- One slice at a time at {SPACING_MM[0]} mm pixels, without the neighbouring slices: a lesion cut smaller than
  about three pixels across cannot be told from a vessel, and a chain of touching vessels can look like a small
  lesion and raise the `lesion` probability on many slices of one scan (the second CT of
  `medviewer demo-data --seed 1` has one; the default seed 0 does not).
- Grad-CAM shows where the network's evidence is, not where a finding is; this network was trained to put its
  evidence on the lesion, which real models usually are not.
"""
    (BUNDLE / "docs").mkdir(parents=True, exist_ok=True)
    (BUNDLE / "docs" / "README.md").write_text(card, encoding="utf-8")


# ------------------------------------------------------------------------------------------------ main


def main() -> int:
    started = time.perf_counter()

    # Phantoms are made in fresh worker processes (numpy only); torch stays in this one.
    with ProcessPoolExecutor(THREADS, mp_context=multiprocessing.get_context("spawn")) as pool:
        print(f"Making {TRAIN_PHANTOMS} training phantoms (seed {SEED}) ...")
        training = make_slices(phantom_jobs(SEED, TRAIN_PHANTOMS), SEED, pool)
        print(f"  {len(training.y)} balanced slices, {time.perf_counter() - started:.0f} s")
        print(f"Making {EVAL_PHANTOMS} held-out phantoms (seed {EVAL_SEED}) and 20 at the demo CTs' geometries ...")
        held_out = make_slices(phantom_jobs(EVAL_SEED, EVAL_PHANTOMS), EVAL_SEED, pool)
        demo = make_slices(demo_geometry_jobs(EVAL_SEED), EVAL_SEED, pool)
        print(f"  {len(held_out.y)} + {len(demo.y)} balanced slices, {time.perf_counter() - started:.0f} s")

    print(f"Training {EPOCHS} epochs ...")
    net = train(training)

    lesion = held_out.y == 1
    lesion_discs = [discs for discs, positive in zip(held_out.discs, lesion, strict=True) if positive]
    results: dict[str, Any] = {
        "train_slices": len(training.y),
        "held_out": accuracy(net, held_out.x, held_out.y),
        "demo_geometry": accuracy(net, demo.x, demo.y),
        "cam_trained": float(cam_hits(net, held_out.x[lesion], lesion_discs).mean()),
        "cam_random": float(cam_hits(random_copy(SEED + 1), held_out.x[lesion], lesion_discs).mean()),
        "cam_slices": int(lesion.sum()),
    }
    for key in ("held_out", "demo_geometry"):
        r = results[key]
        print(
            f"{key}: accuracy {r['accuracy']:.4f} (sensitivity {r['sensitivity']:.3f}, "
            f"specificity {r['specificity']:.3f}, {r['count']} slices)"
        )
    print(f"Grad-CAM maximum in the lesion: trained {results['cam_trained']:.3f}, random {results['cam_random']:.3f}")
    if results["held_out"]["accuracy"] < 0.95:
        print("Held-out accuracy is below the required 0.95: nothing exported.", file=sys.stderr)
        return 1

    print("Out-of-distribution reference: every slice of training and held-out phantoms ...")
    training, results["guard"] = guard_reference(net)
    features = training["features"]
    print(
        f"  {features['training_items']} reference slices, threshold {features['threshold']:.4g} from "
        f"{features['held_out_items']} held-out slices, shrinkage {features['shrinkage']:.3g}"
    )
    for key in ("held_out", "demo_geometry", "training"):
        rates = results["guard"][key]
        print(
            f"  flagged on {key}: feature {rates['feature']:.3f}, intensity {rates['intensity']:.3f}, "
            f"combined {rates['combined']:.3f} of {rates['count']} slices"
        )

    example = torch.rand(2, 1, *SHAPE, generator=torch.Generator().manual_seed(SEED))
    files, approvals = publish(net, metadata(results, training), SPEC, BUNDLE, example, torch.from_numpy(held_out.x))
    print("The guard through run_slices on the demo CTs and real CTs ...")
    results["guard_images"] = guard_on_images(BUNDLE)
    for name, rates in results["guard_images"]:
        print(
            f"  {name}: feature {rates['feature']:.3f}, intensity {rates['intensity']:.3f}, combined "
            f"{rates['combined']:.3f} of {rates['count']} slices; {'; '.join(rates['reasons']) or 'no image reasons'}"
        )
    results["seconds"] = time.perf_counter() - started
    write_card(results, training, files, approvals)
    update_approvals(BUNDLE, NAME, VERSION)  # the card is written now: approval pins it as it is
    print(f"Done in {results['seconds']:.0f} s; bundle in {BUNDLE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    run_reproducibly(main, THREADS)
