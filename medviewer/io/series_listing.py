"""What a folder, DICOMDIR or file holds, for a person to choose from: each stack of images with a
thumbnail, and the objects that are not images (segmentations, structure sets, reports) after them.

Opening "the largest series" of a folder silently showed a segmentation as a grey square; listing first
lets the window open a folder's only series at once and ask when there is more than one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medviewer.core.errors import MedviewerError
from medviewer.io.dicom_kind import DicomKind
from medviewer.io.dicom_stacks import SeriesInfo
from medviewer.io.open_path import list_series
from medviewer.io.thumbnails import ThumbnailCache

#: Thumbnails are made for at most this many stacks; a folder of hundreds lists the rest without one.
MAX_ICONS = 48


@dataclass
class SeriesListing:
    path: Path
    series: list[SeriesInfo]
    #: Thumbnails by stack key (the middle image); missing when it could not be made.
    icons: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def images(self) -> list[SeriesInfo]:
        return [info for info in self.series if DicomKind(info.kind).shows_pixels]

    @property
    def needs_choice(self) -> bool:
        """Whether a person must choose: more than one stack of images, or images and objects beside them."""
        return len(self.series) > 1


def listing_with_icons(path: Path, cache: ThumbnailCache | None = None) -> SeriesListing:
    """The series under ``path``, each image stack with a thumbnail; from headers and one file per stack."""
    listing = SeriesListing(Path(path), list_series(path))
    cache = cache or ThumbnailCache()
    for info in listing.images[:MAX_ICONS]:
        try:
            listing.icons[info.key] = cache.series_thumbnail(info.files)
        except MedviewerError:
            continue  # the list still names the stack; opening it reports what is wrong
    return listing
