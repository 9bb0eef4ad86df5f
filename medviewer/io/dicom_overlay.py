"""DICOM overlay planes (groups 6000-601E): graphics and text burnt beside the image, not into it.

Scanners and workstations put annotations, markers and regions there (Siemens MR does); a viewer that
ignores them hides what the sender meant to be seen. The planes are decoded by pydicom and placed at
their Overlay Origin on the image grid, so the window can draw them over the pixels and let the user
hide them.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

#: Overlay planes live in the even groups 0x6000 to 0x601E (PS3.5 7.6).
OVERLAY_GROUPS = tuple(range(0x6000, 0x6020, 2))


def overlay_groups(header: Dataset) -> list[int]:
    """Groups that hold overlay data (not the retired planes embedded in unused pixel bits)."""
    return [group for group in OVERLAY_GROUPS if (group << 16 | 0x3000) in header]


def overlay_planes(header: Dataset, frame: int, rows: int, columns: int) -> tuple[np.ndarray | None, list[str]]:
    """Every overlay plane that applies to ``frame`` of the image, or-ed into one (rows, columns) mask."""
    mask: np.ndarray | None = None
    warnings: list[str] = []
    for group in overlay_groups(header):
        try:
            plane = _plane_for_frame(header, group, frame)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
            warnings.append(f"overlay plane {group:04X} is damaged ({type(exc).__name__}) and is not drawn")
            continue
        if plane is None:
            continue
        origin = header.get((group << 16) | 0x0050)
        top, left = (int(origin.value[0]) - 1, int(origin.value[1]) - 1) if origin is not None else (0, 0)
        placed = np.zeros((rows, columns), dtype=bool)
        bottom, right = min(rows, top + plane.shape[0]), min(columns, left + plane.shape[1])
        if bottom <= max(top, 0) or right <= max(left, 0):
            continue
        placed[max(top, 0) : bottom, max(left, 0) : right] = plane[
            max(0, -top) : bottom - top, max(0, -left) : right - left
        ].astype(bool)
        mask = placed if mask is None else mask | placed
    return mask, warnings


def _plane_for_frame(header: Dataset, group: int, frame: int) -> np.ndarray | None:
    """The plane's bits for one image frame; None when a multi-frame overlay does not cover that frame."""
    planes = header.overlay_array(group)
    if planes.ndim == 2:
        return planes
    first = int(header.get((group << 16) | 0x0051, None).value if (group << 16) | 0x0051 in header else 1)
    index = frame + 1 - first
    return planes[index] if 0 <= index < len(planes) else None
