"""What the demo models' ``train.py`` scripts share: reproducible set-up, the score-map classifier both
networks are, the Grad-CAM their checks use, and writing, checking and approving the bundle.

So the demo bundles are all made one way: TorchScript with ``metadata.json`` in its extra files (as MONAI's
``ckpt_export`` writes it), a torch.export ``.pt2`` with a dynamic batch dimension, and the weights files'
SHA-256 in ``resources/approved_models.json``, each pinned with the bundle's metadata.json and card.

Both also carry the out-of-distribution guard's reference (``medviewer.training``, read by
``medviewer.ai.ood``): ``item_features`` pools the trained network's ``forward_features`` over training and
held-out items exactly as a run does, ``training_reference`` makes the block, and ``flag_rates`` says how
often the guard flags a set of items, for the model card.
"""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the name every PyTorch reader knows
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run by a training script from anywhere: medviewer is the repository's own
    sys.path.insert(0, str(REPO))

from medviewer.io.slide import Slide  # noqa: E402

APPROVALS = REPO / "resources" / "approved_models.json"


def run_reproducibly(main: Callable[[], int], threads: int) -> None:
    """Run a training script's ``main`` with fixed string hashing, ``threads`` torch threads and deterministic
    algorithms, and exit with its status.

    TorchScript writes a module's constants in set order, which follows Python's randomised string hashing:
    without ``PYTHONHASHSEED=0`` each run's model.ts (and its SHA-256) differs though the weights agree, so the
    script restarts itself with it."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # NaN-filling every new tensor doubles the time
    sys.exit(main())


def conv_block(inputs: int, outputs: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(inputs, outputs, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(outputs),
        nn.ReLU(inplace=True),
    )


class ScoreMapClassifier(nn.Module):
    """Features, a per-position linear score for "the positive class here", global max pooling of that score,
    and a linear layer to the classes.

    An image is as suspicious as its most suspicious position, so a small finding is not averaged away. The
    positive logit rises with the score and the others fall with it (signs kept by ``constrain_signs`` after
    each training step), so the Grad-CAM of the positive class is the network's own score map. The split at the
    feature map is exported (``forward_features``, ``forward_head``), so Grad-CAM works on the TorchScript file.

    ``features`` is built by the caller before this is constructed, so the order of random initialisation (and
    with it every trained weight) is that of features, score, classifier."""

    def __init__(
        self, features: nn.Sequential, channels: int, classes: int, positive: int, score_bias: float | None = None
    ) -> None:
        super().__init__()
        self.features = features
        self.score = nn.Conv2d(channels, 1, 1)
        if score_bias is not None:
            nn.init.constant_(self.score.bias, score_bias)
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.classifier = nn.Linear(1, classes)
        self.positive = positive
        self.constrain_signs()

    def constrain_signs(self) -> None:
        with torch.no_grad():
            for index in range(self.classifier.out_features):
                if index == self.positive:
                    self.classifier.weight[index].clamp_(min=0.0)
                else:
                    self.classifier.weight[index].clamp_(max=0.0)

    @torch.jit.export
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    @torch.jit.export
    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.score(features)), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def grad_cam(net: nn.Module, x: torch.Tensor, class_index: int) -> torch.Tensor:
    """(N, H, W) Grad-CAM over the input grid through forward_features / forward_head and autograd, for a whole
    batch at once (the viewer's own ``medviewer.ai.saliency.grad_cam`` explains one input)."""
    features = net.forward_features(x).detach().requires_grad_()
    logits = net.forward_head(features)
    (grads,) = torch.autograd.grad(logits[:, class_index].sum(), features)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * features).sum(dim=1, keepdim=True))
    return F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0].detach()


def probabilities(net: nn.Module, x: np.ndarray) -> np.ndarray:
    """Softmax of ``net`` over ``x`` in batches of 256."""
    with torch.no_grad():
        batches = [torch.softmax(net(torch.from_numpy(x[i : i + 256])), 1) for i in range(0, len(x), 256)]
    return torch.cat(batches).numpy()


def accuracy(net: nn.Module, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy, sensitivity (class 1 found) and specificity (class 0 kept) of a two-class ``net``, and the count."""
    predicted = probabilities(net, x).argmax(1)
    positive, negative = y == 1, y == 0
    return {
        "accuracy": float((predicted == y).mean()),
        "sensitivity": float((predicted[positive] == 1).mean()),
        "specificity": float((predicted[negative] == 0).mean()),
        "count": len(y),
    }


#: What changed in each demo model release, newest first (MONAI's ``changelog``).
CHANGELOG = {
    "1.2.0": "the guard's intensity check is a Gaussian of the input percentiles (colour balance), not per-channel "
    "ranges; same network and weights",
    "1.1.0": "the out-of-distribution guard's reference (medviewer.training); same network and weights",
    "1.0.0": "first demo release",
}


def metadata_header(name: str, version: str) -> dict[str, Any]:
    """The MONAI bundle metadata fields every demo model fills the same way, in MONAI's order."""
    import monai

    changelog = {release: words for release, words in CHANGELOG.items() if _release(release) <= _release(version)}
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "name": name,
        "version": version,
        "changelog": changelog or {version: "first demo release"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {},
    }


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def class_probabilities_output(classes: tuple[str, ...]) -> dict[str, Any]:
    """``network_data_format.outputs`` of a classifier: one logit per class, probabilities after softmax."""
    return {
        "pred": {
            "type": "probabilities",
            "format": "classes",
            "num_channels": len(classes),
            "spatial_shape": [len(classes)],
            "dtype": "float32",
            "value_range": [0, 1],
            "is_onehot": False,
            "channel_def": {str(i): name for i, name in enumerate(classes)},
        }
    }


def export(net: nn.Module, meta: dict[str, Any], bundle: Path, example: torch.Tensor) -> dict[str, Path]:
    """``bundle``/configs/metadata.json, models/model.ts and models/model.pt2 from the trained ``net``."""
    text = metadata_text(meta)
    (bundle / "configs").mkdir(parents=True, exist_ok=True)
    (bundle / "models").mkdir(parents=True, exist_ok=True)
    (bundle / "configs" / "metadata.json").write_text(text, encoding="utf-8")
    ts, pt2 = bundle / "models" / "model.ts", bundle / "models" / "model.pt2"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        torch.jit.save(torch.jit.script(net), str(ts), _extra_files={"metadata.json": text})
    program = torch.export.export(net, (example,), dynamic_shapes={"x": {0: torch.export.Dim("batch")}})
    torch.export.save(program, pt2, extra_files={"metadata.json": text})
    return {"torchscript": ts, "export": pt2}


def metadata_text(meta: dict[str, Any]) -> str:
    """The metadata as JSON indented by two, with lists of numbers kept on one line: the guard's covariance
    is a row per line rather than one number per line."""
    text = json.dumps(meta, indent=2)
    # json.dumps breaks a list over lines only outside strings, and a JSON string never holds a raw newline
    lists = r"\[\n\s*([-+0-9.eE,\s]+?)\n\s*\]"
    return re.sub(lists, lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def check_exports(net: nn.Module, bundle: Path, files: dict[str, Path], spec: object, x: torch.Tensor) -> None:
    """The bundle reads as a package whose spec is the one training used; both files load and agree with the
    trained network for batches of one and many, and ``forward_head(forward_features(x))`` is ``forward(x)``."""
    from medviewer.ai.package import read_package

    declared = read_package(bundle).spec
    if declared != spec:
        raise SystemExit(f"the exported metadata declares {declared}, but training used {spec}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning)
        scripted = torch.jit.load(str(files["torchscript"])).eval()
    exported = torch.export.load(files["export"]).module()
    for n in (1, 5):
        batch = x[:n]
        with torch.no_grad():
            expected = net(batch)
            for name, module in (("TorchScript", scripted), ("torch.export", exported)):
                if not torch.allclose(module(batch), expected, atol=1e-5):
                    raise SystemExit(f"{name} export disagrees with the trained network on a batch of {n}")
            if not torch.allclose(scripted.forward_head(scripted.forward_features(batch)), expected, atol=1e-5):
                raise SystemExit("TorchScript forward_head(forward_features(x)) differs from forward(x)")


def update_approvals(bundle: Path, name: str, version: str) -> list[dict[str, Any]]:
    """This model's entries in the built-in approvals replaced by the bundle's weights, each with the bundle's
    metadata and card pinned as they are now (``ModelPackage.pinned``; other models' entries kept). Called when
    the weights are written and again once the card is; an entry whose weights and pinned files did not change
    keeps its approval date, so a rerun that reproduces the files changes nothing."""
    from medviewer.ai.package import read_package
    from medviewer.ai.registry import sha256_of

    package = read_package(bundle)
    if (package.name, package.version) != (name, version):
        raise SystemExit(f"{bundle} holds {package.name} {package.version}, not {name} {version}")
    stored = json.loads(APPROVALS.read_text(encoding="utf-8")) if APPROVALS.exists() else []
    previous = {entry["sha256"]: entry for entry in stored if entry.get("name") == name}
    today = datetime.now(UTC).isoformat(timespec="seconds")
    ours = []
    for file in package.weights.values():
        digest = sha256_of(file)
        before = previous.get(digest, {})
        unchanged = before.get("version") == version and before.get("pinned") == package.pinned
        ours.append(
            {
                "sha256": digest,
                "name": name,
                "version": version,
                "file_name": file.name,
                "approved_at": before["approved_at"] if unchanged else today,
                "pinned": package.pinned,
            }
        )
    kept = [entry for entry in stored if entry.get("name") != name]
    APPROVALS.write_text(json.dumps(kept + ours, indent=2) + "\n", encoding="utf-8")
    return ours


def files_table(files: dict[str, Path], approvals: list[dict[str, str]]) -> str:
    """The model card's table rows: file, bytes, SHA-256."""
    sizes = file_sizes(files)
    return "".join(
        f"| `models/{entry['file_name']}` | {sizes[entry['file_name']]} | `{entry['sha256']}` |\n"
        for entry in approvals
    )


def file_sizes(files: dict[str, Path]) -> dict[str, int]:
    return {path.name: path.stat().st_size for path in files.values()}


def publish(
    net: nn.Module,
    meta: dict[str, Any],
    spec: object,
    bundle: Path,
    example: torch.Tensor,
    check_inputs: torch.Tensor,
) -> tuple[dict[str, Path], list[dict[str, str]]]:
    """Export, check and approve a trained demo model: the files written and their approval entries, whose sizes
    and hashes are printed."""
    files = export(net, meta, bundle, example)
    check_exports(net, bundle, files, spec, check_inputs)
    approvals = update_approvals(bundle, meta["name"], meta["version"])
    for entry in approvals:
        print(f"  {entry['file_name']}: {file_sizes(files)[entry['file_name']]} bytes, SHA-256 {entry['sha256']}")
    return files, approvals


# The out-of-distribution guard's reference ----------------------------------------------------------------


def item_features(net: nn.Module, x: np.ndarray, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Per item of a prepared batch ``x``: the pooled ``forward_features`` output (``ood.pool_features``, as
    a run pools it) and the input's percentiles per channel (``ood.item_percentiles``)."""
    from medviewer.ai.ood import item_percentiles, pool_features

    pooled, percentiles = [], []
    with torch.no_grad():
        for first in range(0, len(x), batch):
            part = x[first : first + batch]
            pooled.append(pool_features(net.forward_features(torch.from_numpy(part))))
            percentiles.append(item_percentiles(part))
    return np.concatenate(pooled), np.concatenate(percentiles)


def training_reference(
    training: tuple[np.ndarray, np.ndarray], held_out: tuple[np.ndarray, np.ndarray], facts: dict[str, Any]
) -> dict[str, Any]:
    """The ``medviewer.training`` block: the image ``facts`` (modality, body_part, spacing_mm, mpp) and the
    Gaussians of the training items' input percentiles and features, each with its threshold from the
    held-out items (``training`` and ``held_out`` as ``item_features`` gives them)."""
    from medviewer.ai.ood import feature_block, intensity_block

    return {
        **facts,
        "intensity_percentiles": intensity_block(training[1], held_out[1]),
        "features": feature_block(training[0], held_out[0]),
    }


def flag_rates(block: dict[str, Any], items: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """How often the guard with reference ``block`` flags ``items`` (``item_features``): by the feature
    score, by intensity, by either; and the count."""
    from medviewer.ai.ood import intensity_outside, read_reference

    reference = read_reference({"medviewer": {"training": block}}, items[1].shape[2])
    assert reference is not None
    feature = reference.features.outside(items[0])
    intensity = intensity_outside(reference, items[1])
    return {
        "feature": float(feature.mean()),
        "intensity": float(intensity.mean()),
        "combined": float((feature | intensity).mean()),
        "count": len(feature),
    }


class AssumedMpp(Slide):
    """A slide that records no pixel size, given one so that a slide run can cut it: for measuring the guard
    on such a slide (the viewer refuses to run a slide_patch model on it)."""

    def __init__(self, path: Path, mpp: float) -> None:
        super().__init__(path)
        self._assumed_mpp = mpp

    @property
    def mpp(self) -> float | None:
        return self._assumed_mpp


def report_rates(report: Any) -> dict[str, Any]:
    """The same figures from a run's ``OodReport`` (``medviewer.ai.ood``), with its image-level reasons."""
    scored = ~np.isnan(report.scores)
    count = int(scored.sum())
    return {
        "feature": float(report.feature_flagged[scored].mean()) if count else float("nan"),
        "intensity": float(report.intensity_flagged[scored].mean()) if count else float("nan"),
        "combined": float(report.flagged[scored].mean()) if count else float("nan"),
        "count": count,
        "reasons": list(report.image_reasons),
        "checked": report.checked,
    }


def rates_row(name: str, rates: dict[str, Any]) -> str:
    """One row of the model card's flag-rate table."""
    reasons = "; ".join(rates.get("reasons", [])) or "none"
    return (
        f"| {name} | {rates['count']} | {rates['feature']:.1%} | {rates['intensity']:.1%} | "
        f"{reasons} | {rates['combined']:.1%} |\n"
    )
