"""Hostile copies of real public DICOM files, made at test time, and a child process to open them in.

A reader that regresses on these files would allocate gigabytes or loop for hours, so they are opened in a
child limited in address space and in time: a regression then fails the test instead of the machine.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from tests.support.child_process import json_from_child
from tests.support.paths import REPO

WSI = REPO / "tests" / "data" / "wsi" / "pathml_small_dicom.dcm"
#: What a child may map: far above what refusing a file needs, far below what the hostile files declare.
CHILD_ADDRESS_SPACE = 3 << 30
CHILD_SECONDS = 120

CHILD = """
import json, resource, sys, time, warnings
from pathlib import Path
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
from medviewer.core.errors import MedviewerError
from medviewer.io import open_volume
from tests.support.memory import peak_resident_mib
from medviewer.io.slide import Slide
started = time.perf_counter()  # the open alone: imports take long on a busy machine
result = {{}}
try:
    if sys.argv[1] == "slide":
        with Slide(Path(sys.argv[2])) as slide:
            slide.read_region((0, 0), slide.level_count - 1, (256, 256))
            result = {{"outcome": "opened", "mpp": slide.mpp, "warnings": slide.warnings}}
    else:
        volume = open_volume(Path(sys.argv[2]))
        result = {{"outcome": "opened", "shape": list(volume.shape), "warnings": volume.warnings}}
except MedviewerError as exc:
    result = {{"outcome": "refused", "type": type(exc).__name__, "path": str(exc.path), "reason": exc.reason}}
print(json.dumps({{**result, "peak_mib": peak_resident_mib(), "seconds": time.perf_counter() - started}}))
"""


def open_in_child(kind: str, path: Path, env: dict[str, str] | None = None) -> dict:
    """How opening ``path`` ends ("volume" or "slide"), its peak memory in MiB and its seconds; an untyped
    error, an out-of-memory or a hang fails here with the child's stderr."""
    return json_from_child(CHILD.format(limit=CHILD_ADDRESS_SPACE), kind, str(path), timeout=CHILD_SECONDS, env=env)


def dicom(name: str) -> Dataset:
    return pydicom.dcmread(get_testdata_file(name))


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=False)
    return path


def set_raw(ds: Dataset, keyword: str, vr: str, text: str) -> None:
    """A value as the bytes a damaged file holds, past pydicom's validation: text for string VRs, a
    little-endian short for US."""
    tag = Tag(pydicom.datadict.tag_for_keyword(keyword))
    value = struct.pack("<H", int(text)) if vr == "US" else (text + " " * (len(text) % 2)).encode("ascii")
    ds._dict[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)


def one_pixel_frames(out: Path, frames: int) -> Path:
    """CT_small cut to 1 x 1 pixels, two bytes of pixel data, declaring ``frames`` frames."""
    ds = dicom("CT_small.dcm")
    ds.Rows = ds.Columns = 1
    ds.PixelData = b"\0\0"
    ds.NumberOfFrames = frames
    return save(ds, out / f"frames-{frames}.dcm")


def rle_declaring(out: Path, size: int) -> Path:
    """MR_small_RLE (6 kB of RLE for 64 x 64 pixels) declaring ``size`` x ``size`` pixels."""
    ds = dicom("MR_small_RLE.dcm")
    ds.Rows = ds.Columns = size
    return save(ds, out / f"rle-{size}.dcm")


def wsi_with(out: Path, name: str, **values: object) -> Path:
    """The pathml DICOM WSI (42 tiles of 500 x 500 pixels) with header values replaced."""
    ds = pydicom.dcmread(WSI)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return save(ds, out / f"wsi-{name}.dcm")


def ct_slices_at(out: Path, heights_mm: list[float]) -> Path:
    """Copies of CT_small (an axial slice) placed at the given heights along its normal, in one series."""
    folder = out / "slices"
    folder.mkdir()
    for number, height in enumerate(heights_mm, start=1):
        ds = dicom("CT_small.dcm")
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, height]
        ds.InstanceNumber = number
        ds.SOPInstanceUID = f"{ds.SOPInstanceUID}.{number}"
        save(ds, folder / f"{number}.dcm")
    return folder
