"""A tiny classifier exported the ways real models are: MONAI's ckpt_export (.ts) and torch.export (.pt2).

The network class must be importable by MONAI's config parser (``_target_``), so it lives in this module
rather than inside a test.
"""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SHAPE = [16, 16]
CLASSES = ["normal", "lesion"]


class TinyNet(torch.nn.Module):
    """conv, pool, linear: one input channel, two classes, split at the features for Grad-CAM."""

    def __init__(self, channels: int = 1, classes: int = 2) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(channels, 4, 3, padding=1)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(4, classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(features), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


METADATA: dict[str, Any] = {
    "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
    "name": "tiny lesion classifier",
    "version": "0.1.0",
    "description": "A 16x16 test classifier with random weights.",
    "intended_use": "Tests of medviewer's model packages only.",
    "network_data_format": {
        "inputs": {"image": {"type": "image", "format": "magnitude", "num_channels": 1, "spatial_shape": SHAPE}},
        "outputs": {
            "pred": {
                "type": "probabilities",
                "format": "classes",
                "num_channels": 2,
                "channel_def": {"0": "normal", "1": "lesion"},
            }
        },
    },
    "medviewer": {
        "target": "slice",
        "input": {"shape": SHAPE, "channels": 1, "spacing_mm": [0.8, 0.8], "intensity": {"window": [-1000, 400]}},
        "output": {"activation": "softmax", "classes": CLASSES},
        "explain": {"features": "forward_features", "head": "forward_head"},
    },
}


@dataclass(frozen=True)
class Exported:
    net: TinyNet
    ts: Path
    pt2: Path


def export_tiny(folder: Path, metadata: dict[str, Any] | None = None) -> Exported:
    """Write model.ts with monai.bundle.ckpt_export and model.pt2 with torch.export.save, the same metadata
    (``metadata``, default METADATA) embedded in both."""
    metadata = METADATA if metadata is None else metadata
    from monai.bundle import ckpt_export

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = TinyNet().eval()
    torch.save(net.state_dict(), folder / "model.pt")
    (folder / "inference.json").write_text(json.dumps({"network_def": {"_target_": f"{__name__}.TinyNet"}}))
    (folder / "metadata.json").write_text(json.dumps(metadata))
    ckpt_export(
        net_id="network_def",
        filepath=str(folder / "model.ts"),
        ckpt_file=str(folder / "model.pt"),
        meta_file=str(folder / "metadata.json"),
        config_file=str(folder / "inference.json"),
    )
    batch = torch.export.Dim("batch")  # batches of any size, as inference runs them
    program = torch.export.export(net, (torch.rand(2, 1, *SHAPE),), dynamic_shapes={"x": {0: batch}})
    torch.export.save(program, folder / "model.pt2", extra_files={"metadata.json": json.dumps(metadata)})
    return Exported(net, folder / "model.ts", folder / "model.pt2")


def write_bundle(folder: Path, exported: Exported, metadata: dict[str, Any] | None = None, card: str = "") -> Path:
    """A MONAI bundle folder around the exported files; ``metadata`` (default METADATA) is its configs/metadata.json."""
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "configs" / "metadata.json").write_text(json.dumps(METADATA if metadata is None else metadata))
    shutil.copy(exported.ts, folder / "models" / "model.ts")
    shutil.copy(exported.pt2, folder / "models" / "model.pt2")
    if card:
        (folder / "docs").mkdir()
        (folder / "docs" / "README.md").write_text(card)
    return folder


def metadata_with(changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of METADATA with each dotted field set to its value, or removed where the value is ``...``."""
    metadata = copy.deepcopy(METADATA)
    for field, value in changes.items():
        *parents, last = field.split(".")
        node = metadata
        for key in parents:
            node = node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value
    return metadata
