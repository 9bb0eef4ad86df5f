"""Window/level presets, read from ``resources/window_presets.json`` so sites can change them as data.

CT presets are fixed width/centre pairs in HU. MR intensities have no absolute scale, so MR presets
name percentiles of the volume's own values, computed when applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from medviewer.core.app_dirs import RESOURCES_DIR
from medviewer.core.volume import Volume, percentile_window

PRESETS_FILE = RESOURCES_DIR / "window_presets.json"
PERCENTILE_SAMPLE = 2_000_000  # voxels sampled for percentile presets: exact enough, fast on big volumes


@dataclass(frozen=True)
class WindowPreset:
    name: str
    width: float | None = None
    centre: float | None = None
    percentiles: tuple[float, float] | None = None

    def window_for(self, volume: Volume) -> tuple[float, float]:
        """(width, centre) this preset gives on ``volume``."""
        if self.percentiles is None:
            return float(self.width), float(self.centre)  # type: ignore[arg-type]
        step = max(1, int(np.ceil(volume.array.size / PERCENTILE_SAMPLE)))
        return percentile_window(volume.array.reshape(-1)[::step], self.percentiles)


@cache
def load_presets(path: Path = PRESETS_FILE) -> dict[str, tuple[WindowPreset, ...]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        modality: tuple(
            WindowPreset(
                name=item["name"],
                width=item.get("width"),
                centre=item.get("centre"),
                percentiles=tuple(item["percentiles"]) if "percentiles" in item else None,
            )
            for item in items
        )
        for modality, items in data.items()
        if not modality.startswith("_")
    }


def presets_for(volume: Volume) -> tuple[WindowPreset, ...]:
    """CT presets for CT; percentile presets for every other modality (MR, PET, NIfTI without one)."""
    presets = load_presets()
    return presets.get(volume.modality) or presets["MR"]
