"""Every image format medviewer reads, in one registry, and every decision about formats taken from it.

An entry says what a format is called, the names its files go by, what it opens as, which readers open it,
and how sure its readers can be of a given path. As QuPath's ``ImageServerBuilder``s score a path and the
best score wins, ``classify`` asks every entry and takes the surest. The window's file dialogs, the catalog
import (which files are slides rather than DICOM), de-identified export and the file tokens of the log
(``medviewer.core.logs``, which may not import this layer, receives ``all_suffixes()``) read the same
entries, so that a suffix added here is opened, offered, imported, exported and logged alike.
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from medviewer.core.errors import PathNotFoundError, UnsupportedFileError, reading
from medviewer.io.dicom_series import has_dicom_preamble, read_header
from medviewer.io.slide_dicom import WSI_SOP_CLASS
from medviewer.io.slide_tiff import is_tiff


class ImageKind(enum.Enum):
    VOLUME = "volume"
    SLIDE = "slide"
    #: a segmentation drawn over the volume it was made on, never shown alone
    LABEL_MAP = "label map"


class Support(enum.IntEnum):
    """How sure a format's readers are that they open a path; the surest format wins, a tie the one listed
    first."""

    NONE = 0
    #: the name is the format's but the content is not recognised (or only the reader can tell)
    NAME = 1
    #: the content starts as the format's files do, whatever the name
    CONTENT = 2
    NAME_AND_CONTENT = 3
    #: the header names this very kind of object (a DICOM SOP class)
    HEADER = 4


@dataclass(frozen=True)
class ImageFormat:
    name: str
    kind: ImageKind
    #: lower case, with the dot; a folder has none
    suffixes: tuple[str, ...]
    #: the libraries that read it; for slides, the names ``Slide.backend`` reports
    readers: tuple[str, ...]
    support: Callable[[Path], Support]
    #: why a file named as this format whose content is not refuses to open; None leaves it to the reader
    refusal: str | None = None

    def names(self, path: str | Path) -> bool:
        """Whether the file's name ends with one of the format's suffixes (any case); nothing is read."""
        return os.fspath(path).lower().endswith(self.suffixes)

    def recognises(self, path: Path) -> bool:
        """Whether the file's content is this format's (its name alone is not enough)."""
        return self.support(path) >= Support.CONTENT


DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
#: The names OpenSlide's scanner formats and tiled TIFFs go by; a slide is looked for only in files named so,
#: as OpenSlide's detection opens (and for some vendors parses) every file it is asked about.
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".bif", ".svslide")
#: A NIfTI-1 or NIfTI-2 header's first field (its own size, 348 or 540) in either byte order; gzip's magic.
_NIFTI_STARTS = tuple(struct.pack(order + "i", size) for order in "<>" for size in (348, 540))
_GZIP_START = b"\x1f\x8b"
#: The index file of a DICOM file set (a CD or USB export) has this name and no suffix.
DICOMDIR_NAME = "DICOMDIR"


def _folder_support(path: Path) -> Support:
    """A folder is read as DICOM: its files are scanned and grouped into series."""
    return Support.CONTENT if path.is_dir() else Support.NONE


def _dicom_support(path: Path) -> Support:
    """DICOM Part 10 files start with a 128-byte preamble and "DICM"; files without it are still read
    (pydicom forced after a probe) when named as DICOM."""
    if not path.is_file():
        return Support.NONE
    named, content = path.name.lower().endswith(DICOM_SUFFIXES), has_dicom_preamble(path)
    if content:
        return Support.NAME_AND_CONTENT if named else Support.CONTENT
    return Support.NAME if named else Support.NONE


def _dicom_wsi_support(path: Path) -> Support:
    """The header of a file that is DICOM by its name or content names the WSI SOP class; a damaged header
    raises its typed error, as reading it to open the file would."""
    if _dicom_support(path) is Support.NONE:
        return Support.NONE
    return Support.HEADER if str(read_header(path).get("SOPClassUID", "")) == WSI_SOP_CLASS else Support.NONE


def _nifti_support(path: Path) -> Support:
    """nibabel chooses its reader by the name; the first bytes confirm it (a gzip stream for .nii.gz)."""
    name = path.name.lower()
    if not name.endswith(NIFTI_SUFFIXES) or not path.is_file():
        return Support.NONE
    return Support.NAME_AND_CONTENT if _head(path).startswith(_nifti_starts(name)) else Support.NAME


def _nifti_starts(name: str) -> tuple[bytes, ...]:
    return (_GZIP_START,) if name.endswith(".gz") else _NIFTI_STARTS


def _head(path: Path) -> bytes:
    """The first bytes of a file; none when it cannot be read (the reader then says why)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4)
    except OSError:
        return b""


def _slide_support(path: Path) -> Support:
    """OpenSlide's detection, or a TIFF header for the tiled and striped TIFFs it refuses (tifffile reads
    them), in a file named as a slide."""
    if not path.name.lower().endswith(SLIDE_SUFFIXES) or not path.is_file():
        return Support.NONE
    import openslide

    detected = openslide.OpenSlide.detect_format(str(path)) is not None or is_tiff(path)
    return Support.NAME_AND_CONTENT if detected else Support.NAME


DICOM_FOLDER = ImageFormat("DICOM folder", ImageKind.VOLUME, (), ("pydicom",), _folder_support)
DICOM = ImageFormat("DICOM", ImageKind.VOLUME, DICOM_SUFFIXES, ("pydicom",), _dicom_support)
DICOM_WSI = ImageFormat(
    "DICOM whole-slide image", ImageKind.SLIDE, DICOM_SUFFIXES, ("openslide", "pydicom"), _dicom_wsi_support
)
NIFTI = ImageFormat("NIfTI", ImageKind.VOLUME, NIFTI_SUFFIXES, ("nibabel",), _nifti_support)
WHOLE_SLIDE = ImageFormat(
    "Whole-slide image (Aperio, Hamamatsu, Leica, MIRAX, Ventana, Sakura, tiled TIFF)",
    ImageKind.SLIDE,
    SLIDE_SUFFIXES,
    ("openslide", "tifffile"),
    _slide_support,
    refusal="not a whole-slide image that OpenSlide or the TIFF reader recognises",
)
#: Label maps are told apart by their reader (``medviewer.io.label_maps``), from the same files as images.
NIFTI_LABEL_MAP = ImageFormat("NIfTI label map", ImageKind.LABEL_MAP, NIFTI_SUFFIXES, ("nibabel",), _nifti_support)
DICOM_LABEL_MAP = ImageFormat(
    "DICOM segmentation or RT structure set", ImageKind.LABEL_MAP, DICOM_SUFFIXES, ("pydicom",), _dicom_support
)

#: Every format, images first; the order breaks ties between equally sure formats and orders the dialogs.
FORMATS = (DICOM_FOLDER, DICOM, DICOM_WSI, NIFTI, WHOLE_SLIDE, NIFTI_LABEL_MAP, DICOM_LABEL_MAP)
IMAGE_FORMATS = tuple(f for f in FORMATS if f.kind in (ImageKind.VOLUME, ImageKind.SLIDE))
LABEL_MAP_FORMATS = tuple(f for f in FORMATS if f.kind is ImageKind.LABEL_MAP)


def classify(path: str | Path) -> ImageKind:
    """Whether ``path`` opens as a volume or a slide: the image format surest of it decides. Raises a typed
    error when no format claims it, or only by a name its content belies."""
    path = Path(path)
    with reading(path):
        if not path.exists():
            raise PathNotFoundError(path)
        chosen, level = best_format(path, IMAGE_FORMATS)
        if level is Support.NONE:
            raise UnsupportedFileError(path, "not a format medviewer opens (DICOM, NIfTI or a whole-slide image)")
        if level is Support.NAME and chosen.refusal is not None:
            raise UnsupportedFileError(path, chosen.refusal)
        return chosen.kind


def best_format(path: Path, formats: Iterable[ImageFormat]) -> tuple[ImageFormat, Support]:
    """The format of ``formats`` surest of ``path`` (the first listed among equals), and how sure it is."""
    scored = [(fmt, fmt.support(path)) for fmt in formats]
    return max(scored, key=lambda pair: pair[1])  # max keeps the first of equal scores


def all_suffixes() -> tuple[str, ...]:
    """Every suffix a format goes by, once each: what log file tokens keep (``medviewer.core.logs``)."""
    return tuple(_unique(s for f in FORMATS for s in f.suffixes))


def open_filter() -> str:
    """The open dialog's filter (Qt's syntax): every image suffix, then any file."""
    return _dialog_filter("Images", IMAGE_FORMATS)


def label_map_filter() -> str:
    """The filter of the dialog that opens a label map over the volume shown."""
    return _dialog_filter("Label maps", LABEL_MAP_FORMATS)


def _dialog_filter(title: str, formats: tuple[ImageFormat, ...]) -> str:
    patterns = " ".join(f"*{suffix}" for suffix in _unique(s for f in formats for s in f.suffixes))
    return f"{title} ({patterns});;All files (*)"


def _unique(suffixes: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(suffixes))


def may_be_dicom(path: Path) -> bool:
    """Whether a file is worth reading as DICOM: by its name or content, or a name without suffix, as PACS
    and scanners often write (``IM0001``)."""
    return DICOM.support(path) is not Support.NONE or not path.suffix


def is_dicomdir_name(path: str | Path) -> bool:
    return os.path.basename(path).upper() == DICOMDIR_NAME
