"""Damaged and hostile copies of real public files, made at test time, for the mutation corpus test.

Each case is a file (or folder) and whether its damage is *garbage by construction*: a value no scanner
writes (a NaN position, a zero orientation, a negative pixel size). Opening such a case must end in a
typed error or in an image that carries a warning; the other cases (bytes flipped or cut at random) may
open cleanly, fail with a typed error, or warn, but must never hang, exceed the memory budget or raise
anything outside medviewer's error family.
"""

from __future__ import annotations

import gzip
import random
import shutil
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tests.support.dicom_mutations import dicom, save, set_raw

TESTDATA = Path(__file__).resolve().parents[1] / "data"  # the project's copies of the shared real files
NIBABEL_DATA = Path(nibabel.__file__).parent / "tests" / "data"
GE_CT = Path(__file__).resolve().parents[1] / "data" / "dcm_qa_ct_ge"


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    garbage: bool  # a value no real file holds: it must be refused or shown with a warning


HEADER_MUTATIONS: dict[str, tuple[str, str, str, bool]] = {
    # case: (keyword, VR, value as written, garbage)
    "rows-0": ("Rows", "US", "0", True),
    "columns-0": ("Columns", "US", "0", True),
    "rows-65535": ("Rows", "US", "65535", True),
    "bits-allocated-0": ("BitsAllocated", "US", "0", True),
    "bits-allocated-7": ("BitsAllocated", "US", "7", True),
    "bits-allocated-64": ("BitsAllocated", "US", "64", True),
    "samples-0": ("SamplesPerPixel", "US", "0", True),
    "samples-65535": ("SamplesPerPixel", "US", "65535", True),
    "frames-1e9": ("NumberOfFrames", "IS", "1000000000", True),
    "frames-minus-1": ("NumberOfFrames", "IS", "-1", True),
    "frames-0": ("NumberOfFrames", "IS", "0", True),
    "frames-text": ("NumberOfFrames", "IS", "many", True),
    "pixel-representation-7": ("PixelRepresentation", "US", "7", True),
    "photometric-unknown": ("PhotometricInterpretation", "CS", "XYZ", True),
    "position-nan": ("ImagePositionPatient", "DS", "nan\\nan\\nan", True),
    "position-text": ("ImagePositionPatient", "DS", "a\\b\\c", True),
    "position-two-values": ("ImagePositionPatient", "DS", "1\\2", True),
    "position-1e30": ("ImagePositionPatient", "DS", "1e30\\0\\0", True),
    "orientation-zero": ("ImageOrientationPatient", "DS", "0\\0\\0\\0\\0\\0", True),
    "orientation-nan": ("ImageOrientationPatient", "DS", "nan\\0\\0\\0\\1\\0", True),
    "orientation-parallel": ("ImageOrientationPatient", "DS", "1\\0\\0\\1\\0\\0", True),
    "spacing-0": ("PixelSpacing", "DS", "0\\0", True),
    "spacing-negative": ("PixelSpacing", "DS", "-1\\-1", True),
    "spacing-nan": ("PixelSpacing", "DS", "nan\\nan", True),
    "spacing-inf": ("PixelSpacing", "DS", "inf\\1", True),
    "slope-nan": ("RescaleSlope", "DS", "nan", True),
    "slope-inf": ("RescaleSlope", "DS", "inf", True),
    "intercept-nan": ("RescaleIntercept", "DS", "nan", True),
}


def _header_cases(out: Path, source: str) -> list[Case]:
    cases = []
    stem = Path(source).stem
    for name, (keyword, vr, text, garbage) in HEADER_MUTATIONS.items():
        ds = dicom(source)
        set_raw(ds, keyword, vr, text)
        cases.append(Case(f"{stem}/{name}", save(ds, out / f"{stem}-{name}.dcm"), garbage))
    return cases


def _deep_sequence(out: Path, depth: int) -> Case:
    ds = dicom("CT_small.dcm")
    inner = Dataset()
    inner.CodeValue = "X"
    for _ in range(depth):
        outer = Dataset()
        outer.ReferencedImageSequence = Sequence([inner])
        inner = outer
    ds.ReferencedImageSequence = Sequence([inner])
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, depth * 12))  # pydicom writes nested items by recursion too
    try:
        path = save(ds, out / f"deep-{depth}.dcm")
    finally:
        sys.setrecursionlimit(limit)
    return Case(f"CT_small/sequence-depth-{depth}", path, False)


def _rle_bomb(out: Path) -> Case:
    """A few kB of RLE declaring 65535 x 65535 pixels."""
    ds = dicom("MR_small_RLE.dcm")
    ds.Rows = ds.Columns = 65535
    return Case("MR_small_RLE/declares-65535x65535", save(ds, out / "rle-bomb.dcm"), True)


def _frames_bomb(out: Path) -> Case:
    """1x1 pixels, a billion frames declared."""
    ds = dicom("CT_small.dcm")
    ds.Rows = ds.Columns = 1
    ds.PixelData = b"\0\0"
    ds.NumberOfFrames = 1_000_000_000
    return Case("CT_small/1x1-pixels-1e9-frames", save(ds, out / "frames-bomb.dcm"), True)


def _wsi_cases(out: Path) -> list[Case]:
    source = TESTDATA / "wsi" / "pathml_small_dicom.dcm"
    mutations: dict[str, tuple[Callable[[Dataset], None], bool]] = {
        "matrix-2^32-1": (lambda ds: setattr(ds, "TotalPixelMatrixColumns", 2**32 - 1), True),
        "matrix-rows-0": (lambda ds: setattr(ds, "TotalPixelMatrixRows", 0), True),
        "tile-rows-0": (lambda ds: setattr(ds, "Rows", 0), True),
        "tile-columns-0": (lambda ds: setattr(ds, "Columns", 0), True),
        "frames-1e9": (lambda ds: setattr(ds, "NumberOfFrames", 1_000_000_000), True),
        "frames-0": (lambda ds: setattr(ds, "NumberOfFrames", 0), True),
        "spacing-nan": (lambda ds: _wsi_spacing(ds, "nan\\nan"), True),
        "spacing-0": (lambda ds: _wsi_spacing(ds, "0\\0"), True),
        "spacing-negative": (lambda ds: _wsi_spacing(ds, "-0.25\\-0.25"), True),
    }
    cases = []
    for name, (mutate, garbage) in mutations.items():
        ds = pydicom.dcmread(source)
        mutate(ds)
        cases.append(Case(f"pathml_wsi/{name}", save(ds, out / f"wsi-{name}.dcm"), garbage))
    return cases


def _wsi_spacing(ds: Dataset, text: str) -> None:
    """The pixel size where a conformant WSI keeps it (this instance has none: it is added, damaged)."""
    measures = Dataset()
    set_raw(measures, "PixelSpacing", "DS", text)
    group = Dataset()
    group.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([group])


def _series_cases(out: Path) -> list[Case]:
    """Five real GE CT slices, one of them damaged: the series must not silently take the bad slice."""
    cases = []
    damages: dict[str, tuple[str, str, str]] = {
        "one-slice-position-nan": ("ImagePositionPatient", "DS", "nan\\nan\\nan"),
        "one-slice-orientation-zero": ("ImageOrientationPatient", "DS", "0\\0\\0\\0\\0\\0"),
        "one-slice-position-two-values": ("ImagePositionPatient", "DS", "1\\2"),
        "one-slice-slope-nan": ("RescaleSlope", "DS", "nan"),
    }
    for name, (keyword, vr, text) in damages.items():
        folder = out / f"series-{name}"
        folder.mkdir()
        for number, source in enumerate(sorted(GE_CT.glob("*.dcm.gz"))[:5]):
            ds = pydicom.dcmread(gzip.open(source))
            if number == 2:
                set_raw(ds, keyword, vr, text)
            save(ds, folder / f"{number}.dcm")
        cases.append(Case(f"ge_ct_series/{name}", folder, True))
    return cases


def _nifti_header_cases(out: Path) -> list[Case]:
    source = NIBABEL_DATA / "anatomical.nii"
    data = source.read_bytes()
    order = ">" if data[:4] == struct.pack(">i", 348) else "<"  # anatomical.nii is big-endian
    edits: dict[str, tuple[int, str, float, bool]] = {
        # name: (byte offset in the NIfTI-1 header, struct format, value, garbage)
        "dim0-minus-1": (40, "<h", -1, True),
        "dim0-8": (40, "<h", 8, False),  # 8 dimensions declared, the extra ones of size 1 or 0
        "dim1-0": (42, "<h", 0, True),
        "dim3-0": (46, "<h", 0, True),
        "dim1-32767": (42, "<h", 32767, True),
        "dim-all-32767": (42, "<hhh", 32767, True),
        "datatype-9999": (70, "<h", 9999, True),
        "bitpix-0": (72, "<h", 0, False),
        "pixdim1-nan": (80, "<f", float("nan"), True),
        "pixdim1-0": (80, "<f", 0.0, True),
        "pixdim1-negative": (80, "<f", -1.0, False),  # NIfTI allows it (the sign is the qfac's job)
        "pixdim1-inf": (80, "<f", float("inf"), True),
        "vox-offset-1e9": (108, "<f", 1e9, True),
        "scl-slope-nan": (112, "<f", float("nan"), False),  # NIfTI: a NaN slope means no scaling
        "scl-slope-inf": (112, "<f", float("inf"), True),
        "xyzt-units-255": (123, "<B", 255, True),
        "qform-code-99": (252, "<h", 99, False),
        "quatern-b-nan": (256, "<f", float("nan"), True),
        "srow-x-nan": (280, "<f", float("nan"), True),
    }
    cases = []
    for name, (offset, fmt, value, garbage) in edits.items():
        edited = bytearray(data)
        count = len(fmt) - 1
        values = [int(value)] * count if "h" in fmt or "B" in fmt else [value]
        struct.pack_into(order + fmt[1:], edited, offset, *values)
        path = out / f"anatomical-{name}.nii"
        path.write_bytes(bytes(edited))
        cases.append(Case(f"anatomical.nii/{name}", path, garbage))
    return cases


def _nifti_gzip_bomb(out: Path) -> Case:
    """A small header (33x41x25 voxels) followed by far more compressed zeros than it declares."""
    header = (NIBABEL_DATA / "anatomical.nii").read_bytes()[:352]
    path = out / "bomb.nii.gz"
    with gzip.open(path, "wb", compresslevel=9) as stream:
        stream.write(header)
        block = bytes(1 << 20)
        for _ in range(2048):  # 2 GiB of zeros, about 2 MB on disk
            stream.write(block)
    return Case("anatomical.nii/gzip-bomb-2GiB", path, True)


def _slide_mpp_cases(out: Path) -> list[Case]:
    """CMU-1 with its Aperio MPP edited in place, the file otherwise intact."""
    source = TESTDATA / "wsi" / "CMU-1-Small-Region.svs"
    data = source.read_bytes()
    marker = b"MPP = 0.4990"
    assert marker in data, "CMU-1's ImageDescription changed; update the corpus"
    cases = []
    for name, text in {"mpp-negative": b"MPP = -1.000", "mpp-inf": b"MPP = inf   ", "mpp-1e308": b"MPP = 1e308 ",
                       "mpp-zero": b"MPP = 0.0000", "mpp-nan": b"MPP = nan   "}.items():
        path = out / f"cmu1-{name}.svs"
        path.write_bytes(data.replace(marker, text))
        cases.append(Case(f"CMU-1/{name}", path, True))
    return cases


def _big_tiled_tiff(out: Path) -> Case:
    """A legitimate single-level 30000 x 30000 tiled TIFF, a few MB on disk."""
    import tifffile

    path = out / "single-level-30000.tiff"
    tile = np.full((512, 512, 3), 200, dtype=np.uint8)
    tiles = (tile for _ in range(((30000 + 511) // 512) ** 2))
    tifffile.imwrite(path, tiles, shape=(30000, 30000, 3), dtype=np.uint8, tile=(512, 512),
                     compression="zlib", photometric="rgb")
    return Case("tiff/single-level-30000x30000", path, False)


#: Real files the random damage starts from.
def _random_sources() -> list[Path]:
    return [
        Path(get_testdata_file("CT_small.dcm")),
        Path(get_testdata_file("MR_small_RLE.dcm")),
        Path(get_testdata_file("JPEG2000.dcm")),
        Path(get_testdata_file("SC_rgb_jpeg_dcmtk.dcm")),
        Path(get_testdata_file("image_dfl.dcm")),
        Path(get_testdata_file("MR_small_jpeg_ls_lossless.dcm")),
        Path(get_testdata_file("emri_small.dcm")),
        TESTDATA / "wsi" / "pathml_small_dicom.dcm",
        NIBABEL_DATA / "anatomical.nii",
        NIBABEL_DATA / "example4d.nii.gz",
        TESTDATA / "wsi" / "CMU-1-Small-Region.svs",
        TESTDATA / "wsi" / "openslide-python_small.svs",
    ]


def _random_damage(out: Path, flips: int, cuts: tuple[float, ...]) -> list[Case]:
    """Per source: ``flips`` copies with 16 bytes overwritten (half of them in the first 4 kB, where the
    headers and tables are), and copies cut at each fraction in ``cuts``."""
    rng = random.Random(14)
    cases = []
    for source in _random_sources():
        data = source.read_bytes()
        suffix = "".join(source.suffixes) if source.name.endswith(".nii.gz") else source.suffix
        for n in range(flips):
            damaged = bytearray(data)
            for k in range(16):
                limit = min(len(data), 4096) if k % 2 == 0 else len(data)
                damaged[rng.randrange(132 if source.suffix == ".dcm" else 0, limit)] = rng.randrange(256)
            path = out / f"{source.stem}-flip{n}{suffix}"
            path.write_bytes(bytes(damaged))
            cases.append(Case(f"{source.name}/flip-{n}", path, False))
        for fraction in cuts:
            path = out / f"{source.stem}-cut{int(fraction * 100)}{suffix}"
            path.write_bytes(data[: int(len(data) * fraction)])
            cases.append(Case(f"{source.name}/cut-{fraction:.0%}", path, False))
    return cases


def _rle_pixel_damage(out: Path, count: int) -> list[Case]:
    """RLE segments with their headers and runs damaged: the path to the Rust decoder's panics."""
    rng = random.Random(1414)
    ds = dicom("MR_small_RLE.dcm")
    frame = bytearray(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1).__next__())
    cases = []
    for n in range(count):
        damaged = bytearray(frame)
        for _ in range(8):
            damaged[rng.randrange(0, 64 if n % 2 == 0 else len(damaged))] = rng.randrange(256)
        copy = dicom("MR_small_RLE.dcm")
        copy.PixelData = pydicom.encaps.encapsulate([bytes(damaged)])
        cases.append(Case(f"MR_small_RLE/segments-{n}", save(copy, out / f"rle-damaged-{n}.dcm"), False))
    return cases


def build_corpus(out: Path) -> list[Case]:
    """Every case, written under ``out`` (a few hundred files, about 20 MB)."""
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    out.mkdir(parents=True, exist_ok=True)
    cases = _header_cases(out, "CT_small.dcm") + _header_cases(out, "MR_small_RLE.dcm")
    cases += [_deep_sequence(out, 1000), _deep_sequence(out, 50), _rle_bomb(out), _frames_bomb(out)]
    cases += _wsi_cases(out) + _series_cases(out) + _nifti_header_cases(out) + [_nifti_gzip_bomb(out)]
    cases += _slide_mpp_cases(out) + [_big_tiled_tiff(out)]
    cases += _random_damage(out, flips=10, cuts=(0.05, 0.3, 0.6, 0.95)) + _rle_pixel_damage(out, 12)
    shutil.rmtree(out / "__pycache__", ignore_errors=True)
    return cases
