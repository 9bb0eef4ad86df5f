"""Slide patch models whose answers are known from the pixels, packaged and approved as real ones are.

``RednessNet``'s "tumour" probability is the mean of (red - green) over the patch with values in 0..1, so a
slide run can be checked against the slide's own pixels as well as against the module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from medviewer.ai.package import LoadedModel
from tests.support.models_for_tests import load_scripted, metadata

SHAPE = [64, 64]
MPP = 1.0
CLASSES = ["normal", "tumour"]


class RednessNet(torch.nn.Module):
    """Features: red minus green per pixel; head: its mean, clipped to 0..1, as the tumour probability."""

    @torch.jit.export
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0:1] - x[:, 1:2]

    @torch.jit.export
    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        redness = features.mean((1, 2, 3)).clamp(0.0, 1.0)
        return torch.stack([1.0 - redness, redness], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class RaisingNet(torch.nn.Module):
    """Fails on every input, as a model with a bug would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("the patch model broke")


class ThreeOutputNet(torch.nn.Module):
    """Gives three scores per patch though its metadata names two classes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))


def patch_metadata(
    *, mpp: float = MPP, shape: list[int] | None = None, channels: int = 3, explain: bool = True
) -> dict[str, Any]:
    """slide_patch metadata: RGB 0..255 scaled to 0..1, probabilities as the model gives them."""
    meta = metadata(
        target="slide_patch",
        shape=shape or SHAPE,
        channels=channels,
        classes=CLASSES,
        activation="none",
        intensity={"scale": {"mean": [0.0], "std": [1.0], "max": 255}},
        explain=explain,
    )
    meta["medviewer"]["input"]["mpp"] = mpp
    return meta


def load_patch_model(folder: Path, net: torch.nn.Module | None = None, **kwargs: Any) -> LoadedModel:
    """A slide_patch bundle of ``net`` (RednessNet by default), approved and loaded."""
    explain = net is None
    return load_scripted(folder, net or RednessNet(), patch_metadata(explain=explain, **kwargs))
