"""Hand-made models whose behaviour is known, packaged, approved and loaded as real ones are.

``EvidenceNet`` looks only at one square: its "lesion" score is the mean of the input over ``SQUARE``, so a
saliency method that works must put its maximum there and nothing on a bright decoy elsewhere.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medviewer.ai import registry
from medviewer.ai.package import LoadedModel, load_module, read_package

SIZE = 16
#: Rows 4..7 and columns 9..12 of a 16 x 16 input: the only place EvidenceNet looks.
SQUARE = (slice(4, 8), slice(9, 13))


class EvidenceNet(torch.nn.Module):
    """Features: the grey input inside SQUARE and outside it, as two channels; head: the inside mean decides."""

    def __init__(self) -> None:
        super().__init__()
        mask = torch.zeros(1, 1, SIZE, SIZE)
        mask[(0, 0, *SQUARE)] = 1
        self.register_buffer("mask", mask)

    @torch.jit.export
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(1, keepdim=True)
        return torch.cat([grey * self.mask, grey * (1 - self.mask)], 1)

    @torch.jit.export
    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        evidence = features[:, 0].sum((1, 2)) / self.mask.sum()
        return torch.stack([torch.zeros_like(evidence), 8.0 * (evidence - 0.5)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class TinyVolumeNet(torch.nn.Module):
    """A 3-D classifier for ``volume`` models: conv, pool, linear."""

    def __init__(self, classes: int = 2) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 3, padding=1)
        self.fc = torch.nn.Linear(2, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3, 4)))


class BoxVolumeNet(torch.nn.Module):
    """A ``volume`` model whose "lesion" evidence is the mean of the input inside BOX_3D and nothing else, so
    its saliency is known: inside the box, and zero outside it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = x[:, :, 1:3, 3:5, 3:5].mean((1, 2, 3, 4))
        return torch.stack([-score, score], 1)


#: Where BoxVolumeNet looks, on its (4, 8, 8) input.
BOX_3D = (slice(1, 3), slice(3, 5), slice(3, 5))


def evidence_input() -> np.ndarray:
    """(1, 1, 16, 16): dim background, a bright decoy first in raster order, and a bright spot inside SQUARE."""
    x = np.full((1, 1, SIZE, SIZE), 0.2, dtype=np.float32)
    x[0, 0, 0:4, 0:4] = 1.0
    x[0, 0, 5:7, 10:12] = 1.0
    return x


def metadata(
    *,
    target: str = "slice",
    shape: list[int] | None = None,
    channels: int = 1,
    classes: list[str] | None = None,
    activation: str = "softmax",
    spacing_mm: list[float] | None = None,
    intensity: dict[str, Any] | None = None,
    explain: bool = True,
) -> dict[str, Any]:
    """The smallest metadata that read_package accepts, with the given medviewer block."""
    model_input: dict[str, Any] = {"shape": shape or [SIZE, SIZE], "channels": channels}
    if spacing_mm is not None:
        model_input["spacing_mm"] = spacing_mm
    if intensity is not None:
        model_input["intensity"] = intensity
    block: dict[str, Any] = {
        "target": target,
        "input": model_input,
        "output": {"activation": activation, "classes": classes or ["normal", "lesion"]},
    }
    if explain:
        block["explain"] = {"features": "forward_features", "head": "forward_head"}
    return {"name": "test model", "version": "1.0", "medviewer": block}


def load_scripted(folder: Path, net: torch.nn.Module, meta: dict[str, Any]) -> LoadedModel:
    """``net`` scripted into a bundle folder with ``meta``, approved as a person would, and loaded."""
    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "configs" / "metadata.json").write_text(json.dumps(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates torch.jit
        torch.jit.script(net.eval()).save(str(folder / "models" / "model.ts"))
    package = read_package(folder)
    registry.approve(package.weights["torchscript"], package)
    return load_module(package)
