"""Opening an image together with the small preview the patient panel shows for it.

Both happen in a loader thread, so the window only receives finished, displayable results.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviewer.core.display import display_frame, shrink_to_fit
from medviewer.core.volume import Volume
from medviewer.io.open_path import open_path, open_volume_files
from medviewer.io.slide import Slide

SLIDE_OVERVIEW_SIZE = 2048
ICON_SIZE = 96


@dataclass
class OpenedImage:
    path: Path
    image: Volume | Slide
    #: uint8 preview: the middle slice windowed for display, or the slide's overview (RGB).
    preview: np.ndarray
    icon: np.ndarray


def volume_preview(volume: Volume) -> np.ndarray:
    return display_frame(volume, volume.shape[0] // 2, *volume.display_window())


def series_with_preview(files: list[Path], series_uid: str) -> OpenedImage:
    """A catalog series, opened from exactly its recorded files (its folder may hold other series)."""
    volume = open_volume_files(files, series_uid)
    preview = volume_preview(volume)
    return OpenedImage(files[0].parent, volume, preview, shrink_to_fit(preview, ICON_SIZE))


def open_with_preview(path: str | Path) -> OpenedImage:
    image = open_path(path)
    if isinstance(image, Slide):
        try:
            preview = image.thumbnail(SLIDE_OVERVIEW_SIZE)
        except Exception:
            image.close()
            raise
    else:
        preview = volume_preview(image)
    return OpenedImage(Path(path), image, preview, shrink_to_fit(preview, ICON_SIZE))
