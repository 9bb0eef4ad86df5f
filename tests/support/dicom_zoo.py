"""The DICOM zoo: every file of pydicom's test files, the pydicom-data package and nibabel's DICOM test
files, opened as a user would, with what came out checked against pydicom's own decoding.

Shared by ``tests/io/test_dicom_zoo.py`` (which asserts) and ``tests/benchmarks/dicom_zoo.py`` (which
prints the table and its totals).
"""

from __future__ import annotations

import gzip
import shutil
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pydicom.data
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medviewer.core.display import apply_voi_lut as our_voi_lut
from medviewer.core.errors import MedviewerError
from medviewer.core.volume import Volume
from medviewer.io import open_volume
from medviewer.io.dicom_kind import file_kind
from medviewer.io.dicom_mosaic import is_mosaic

PYDICOM_FILES = Path(pydicom.data.__file__).parent / "test_files"
NIBABEL = Path(nibabel.__file__).parent
NIBABEL_DATA = (NIBABEL / "nicom" / "tests" / "data", NIBABEL / "tests" / "data")


def pydicom_data_folder() -> Path:
    """The pydicom-data package's folder (the files pydicom downloads on demand, installed by the dev extra)."""
    import data_store  # the pydicom-data package

    return Path(data_store.__file__).parent / "data"


def zoo_files() -> list[Path]:
    """Every file of the three collections (nibabel's: only its DICOM files, gzipped or not)."""
    files = sorted(p for p in PYDICOM_FILES.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc"))
    files += sorted(p for p in pydicom_data_folder().iterdir() if p.is_file() and p.suffix == ".dcm")
    for folder in NIBABEL_DATA:
        files += sorted(p for p in folder.iterdir() if p.name.endswith((".dcm", ".dcm.gz")))
    return files


@dataclass
class ZooRow:
    """What happened to one file: the kind it was shown as (or refused), and how its pixels compared."""

    path: Path
    kind: str  # the DicomKind value, or "not DICOM"
    outcome: str  # "shown", "refused" or "traceback"
    reason: str  # a refusal's message, a traceback's last line, or what the pixels were compared with
    pixels: str  # "equal", "differ", "no reference" (pydicom fails), or "" (not shown, or compared elsewhere)

    @property
    def name(self) -> str:
        return str(self.path.relative_to(self.path.parents[1])) if len(self.path.parents) > 1 else self.path.name


def _plain(path: Path, scratch: Path) -> Path:
    if path.suffix != ".gz":
        return path
    target = scratch / path.name.removesuffix(".gz")
    with gzip.open(path) as packed, open(target, "wb") as plain:
        shutil.copyfileobj(packed, plain)
    return target


def sweep_file(path: Path, scratch: Path) -> ZooRow:
    """Open one file as the window and ``medviewer info`` do; compare what is shown with pydicom's decoding."""
    opened_path = _plain(path, scratch)
    try:
        header = pydicom.dcmread(opened_path, stop_before_pixels=True, force=True)
        kind = file_kind(header).value if "SOPClassUID" in header else "not DICOM"
    except Exception:  # noqa: BLE001 (any file at all: a text file is simply "not DICOM")
        kind = "not DICOM"
    try:
        volume = open_volume(opened_path)
    except MedviewerError as exc:
        return ZooRow(path, kind, "refused", exc.reason, "")
    except Exception as exc:  # noqa: BLE001 (the sweep exists to find these)
        last = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return ZooRow(path, kind, "traceback", last, "")
    shown_as = volume.metadata.get("kind", "volume")
    try:
        reference, equal = _compare_with_pydicom(opened_path, volume)
    except Exception as exc:  # noqa: BLE001 (pydicom's own decoding failing is a fact of the table)
        return ZooRow(path, shown_as, "shown", f"pydicom's own decoding fails ({type(exc).__name__})", "no reference")
    return ZooRow(path, shown_as, "shown", reference, "" if equal is None else "equal" if equal else "differ")


def pydicom_dataset(path: Path) -> pydicom.Dataset:
    """pydicom's own read of a file, forced for files without a preamble as medviewer reads them."""
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:  # no file meta: the encoding pydicom detected, as medviewer does
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if ds.original_encoding[0] else ExplicitVRLittleEndian
    return ds


def _compare_with_pydicom(path: Path, volume: Volume) -> tuple[str, bool | None]:
    """Whether the displayed values equal pydicom's (modality LUT, then VOI LUT; colour through its LUTs).

    Frames may come out reordered by position and a single slice transposed to the nearest patient axes,
    so values are compared as sorted sets when the arrays' shapes differ by that; a Siemens mosaic is
    compared with nibabel in its own test, not here.
    """
    ds = pydicom_dataset(path)
    if "DirectoryRecordSequence" in ds:
        return "a DICOMDIR: the largest series of its file set opened (compared as its own files)", None
    if is_mosaic(ds) and volume.shape[0] > 1:
        return "mosaic: unpacked (compared with nibabel and dcm2niix in test_dicom_kinds)", None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pixels = ds.pixel_array
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames == 1:
        pixels = pixels[None]
    if volume.colour is not None:
        if str(ds.PhotometricInterpretation) == "PALETTE COLOR":
            pixels = apply_color_lut(pixels, ds)
            bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        else:
            bits = int(ds.BitsStored)
        if pixels.dtype != np.uint8:
            pixels = (pixels.astype(np.uint64) >> max(0, bits - 8)).astype(np.uint8)
        expected = pixels
        return "pydicom RGB", _same(volume.colour, expected)
    expected = apply_modality_lut(pixels, ds) if "ModalityLUTSequence" in ds else _rescaled(pixels, ds)
    if "VOILUTSequence" in ds and volume.voi.lut is not None:
        return "pydicom modality + VOI LUT", _same(our_voi_lut(volume.array, volume.voi), apply_voi_lut(expected, ds))
    return "pydicom modality LUT", _same(volume.array, expected)


def _rescaled(pixels: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    """pydicom's stored values with the rescale of each frame (per-frame groups for enhanced objects)."""
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        return _enhanced(pixels, ds)
    return apply_modality_lut(pixels, ds)


def _enhanced(pixels: np.ndarray, ds: pydicom.Dataset) -> np.ndarray:
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    out = np.empty(pixels.shape, np.float64)
    for index, frame in enumerate(pixels):
        slope, intercept = 1.0, 0.0
        for group in (per_frame[index] if index < len(per_frame) else None, shared):
            if group is not None and "PixelValueTransformationSequence" in group:
                item = group.PixelValueTransformationSequence[0]
                slope, intercept = float(item.get("RescaleSlope", 1)), float(item.get("RescaleIntercept", 0))
                break
        out[index] = frame * slope + intercept
    return out


def _same(ours: np.ndarray, theirs: np.ndarray) -> bool:
    """Equal frame for frame, or, where reordering by position or turning to the patient axes moved them,
    equal as sorted values of arrays of the same size."""
    ours, theirs = ours.astype(np.float64), theirs.astype(np.float64)
    if ours.shape == theirs.shape and np.allclose(ours, theirs, rtol=1e-5, atol=1e-3):
        return True
    if sorted(ours.shape) != sorted(theirs.shape):
        return False
    return bool(np.allclose(np.sort(ours, axis=None), np.sort(theirs, axis=None), rtol=1e-5, atol=1e-3))


def totals(rows: list[ZooRow]) -> dict[str, int]:
    counts = Counter(row.outcome for row in rows)
    pixels = Counter(row.pixels for row in rows if row.outcome == "shown")
    return {
        "files": len(rows),
        "shown": counts["shown"],
        "refused": counts["refused"],
        "tracebacks": counts["traceback"],
        "pixels equal to pydicom": pixels["equal"],
        "pixels differ": pixels["differ"],
        "shown, compared elsewhere": pixels[""],
        "shown, pydicom cannot decode": pixels["no reference"],
    }
