"""Canaries in every place a probe found a leak, and the validity of what is exported.

Real public files (pydicom's CT and MR, the Philips enhanced MR of dcm_qa_enh, every highdicom SEG on CT, a
TCGA DICOM WSI, the dcm_qa_ts mosaic as JPEG lossless, JPEG-LS and JPEG 2000) get a unique canary in every
text value at any depth (code meanings, segment labels and algorithm names included), in free Code String
values, in private tags, in comment and application segments inside their compressed frames and in the
text of an ICC profile. None may reach the export's bytes, in ASCII or UTF-16, and every frame must still
decode to the input's pixels. dciodvfy (dicom3tools) then counts errors: an export may never have more than
its input.
"""

from __future__ import annotations

import datetime
import io
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import ImageCms
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence
from pydicom.uid import JPEG2000Lossless

from medviewer.deid import profile
from medviewer.deid.dicom import UidMap, deidentify
from medviewer.deid.export import export_deidentified
from tests.support.paths import DATA, pydicom_file, real_file

CANARY = "QXLEAK"
WSI = real_file("wsi/pathml_small_dicom.dcm")
SEGS = sorted((DATA / "highdicom").glob("seg_image_ct_*.dcm"))
ENHANCED_MR = "dcm_qa_enh/Philips/IM_0027_fMAP.dcm"
COMPRESSED = {"jpeg-lossless": "dcm_qa_ts/5.dcm", "jpeg-ls": "dcm_qa_ts/7.dcm", "jpeg2000": "dcm_qa_ts/9.dcm"}
#: Code Strings that hold what a person typed, not one of the standard's terms.
FREE_CODE_STRINGS = ("BodyPartExamined", "ContentLabel")
SAFE = profile.SAFE_TEXT


class Canaries:
    """Unique strings, each remembered with where it was planted, so a leak names its place."""

    def __init__(self) -> None:
        self.where: dict[str, str] = {}

    def new(self, place: str) -> str:
        text = f"{CANARY}{len(self.where):04d}"
        self.where[text] = place
        return text

    def plant(self, ds: Dataset, place: str) -> None:
        """Every text, free Code String, date and private value of ``ds``, down every sequence."""
        for element in list(ds):
            at = f"{place}/{element.keyword or element.tag}"
            vr = element.VR
            if vr == "SQ":
                for i, item in enumerate(element.value):
                    self.plant(item, f"{at}[{i}]")
            elif element.tag.is_private and vr in ("OB", "UN", "LO", "SH", "LT", "UT"):
                text = self.new(at)
                element.value = text.encode() if vr in ("OB", "UN") else text
            elif (vr in profile.TEXT_VRS - {"UR"} and int(element.tag) not in SAFE) or (
                element.keyword in FREE_CODE_STRINGS
            ):
                element.value = self.new(at)
            elif vr == "DA":
                day = datetime.date(1901, 1, 1) + datetime.timedelta(days=len(self.where))
                self.where[day.strftime("%Y%m%d")] = at
                element.value = day.strftime("%Y%m%d")

    def leaks(self, data: bytes) -> list[str]:
        return [
            f"{text} ({place})"
            for text, place in self.where.items()
            if text.encode() in data or text.encode("utf-16-be") in data
        ]


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def _frames_with_text(ds: Dataset, canaries: Canaries, name: str) -> list[bytes]:
    """Each frame with canaries where scanners write text: COM and APP segments after a JPEG's SOI, a COM
    segment after a JPEG 2000 codestream's SIZ."""
    frames = []
    for number, frame in enumerate(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1)))):
        comment = canaries.new(f"{name} frame {number} COM").encode()
        if ds.file_meta.TransferSyntaxUID == JPEG2000Lossless:
            siz_end = 4 + int.from_bytes(frame[4:6], "big")
            segment = b"\xff\x64" + (len(comment) + 4).to_bytes(2, "big") + b"\x00\x01" + comment
            frames.append(frame[:siz_end] + segment + frame[siz_end:])
            continue
        app = canaries.new(f"{name} frame {number} APP1").encode()
        com = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        app1 = b"\xff\xe1" + (len(app) + 8).to_bytes(2, "big") + b"Exif\0\0" + app
        frames.append(frame[:2] + com + app1 + frame[2:])
    return frames


def _icc_with_canary(canaries: Canaries) -> bytes:
    """LittleCMS's sRGB profile with a canary written over its description (UTF-16 in an mluc tag)."""
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    at = icc.index("sRGB".encode("utf-16-be"))
    text = canaries.new("OpticalPathSequence[0]/ICCProfile desc").encode("utf-16-be")
    icc[at : at + len(text)] = text
    return bytes(icc)


def _write(ds: Dataset, canaries: Canaries, folder: Path, name: str) -> None:
    canaries.plant(ds, name)
    ds.save_as(folder / f"{name}.dcm")


def _planted(folder: Path, canaries: Canaries) -> dict[str, Path]:
    """Copies of the real files with canaries planted; the originals, by the names written."""
    folder.mkdir()
    sources = {
        "ct": pydicom_file("CT_small.dcm"),
        "mr": pydicom_file("MR_small.dcm"),
        "enhanced": real_file(ENHANCED_MR),
    }
    sources |= {f"seg{i}": path for i, path in enumerate(SEGS)}
    sources |= {name: real_file(path) for name, path in COMPRESSED.items()} | {"wsi": WSI}
    for name, source in sources.items():
        ds = pydicom.dcmread(source)
        ds.BodyPartExamined = "HEAD"  # planted over below, as every free Code String
        ds.CodeMeaning = "top-level meaning"  # Philips writes one outside any sequence
        ds.ProcedureCodeSequence = Sequence([_code("113100", "DCM", "x"), _code("X1", "99LOCAL", "x")])
        anatomic = _code("39607008", "SCT", "x")
        anatomic.AnatomicRegionModifierSequence = Sequence([_code("7771000", "SCT", "x")])
        ds.AnatomicRegionSequence = Sequence([anatomic])
        if name == "wsi":
            optical_path = Dataset()
            optical_path.OpticalPathIdentifier = "1"
            optical_path.ICCProfile = _icc_with_canary(canaries)
            ds.OpticalPathSequence = Sequence([optical_path])
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            ds.PixelData = encapsulate(_frames_with_text(ds, canaries, name))
        _write(ds, canaries, folder, name)
    return sources


@pytest.mark.slow
def test_no_canary_leaves_and_frames_decode_to_the_same_pixels(tmp_path: Path):
    canaries = Canaries()
    sources = _planted(tmp_path / "in", canaries)
    planted = b"".join(path.read_bytes() for path in (tmp_path / "in").iterdir())
    assert len(canaries.where) > 1000
    assert len(canaries.leaks(planted)) == len(canaries.where)  # every canary is really in the input
    out = tmp_path / "out"
    assert export_deidentified([tmp_path / "in"], out, allow_burned_in=True).dicom_files == len(sources)
    exported = [pydicom.dcmread(p) for p in sorted(out.rglob("*.dcm"))]
    assert canaries.leaks(b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())) == []

    by_rows = {(str(ds.SOPClassUID), ds.Rows, ds.Columns, int(ds.get("NumberOfFrames", 1))): ds for ds in exported}
    for name in (*COMPRESSED, "wsi"):
        source = pydicom.dcmread(sources[name])
        key = (str(source.SOPClassUID), source.Rows, source.Columns, int(source.get("NumberOfFrames", 1)))
        np.testing.assert_array_equal(by_rows[key].pixel_array, source.pixel_array)
    segs = [ds for ds in exported if ds.Modality == "SEG"]
    assert len(segs) == len(SEGS) >= 4
    for seg in segs:
        assert [s.SegmentLabel for s in seg.SegmentSequence] == [
            f"Segment {s.SegmentNumber}" for s in seg.SegmentSequence
        ]
    ct = next(ds for ds in exported if ds.Modality == "CT" and "PixelData" in ds and ds.Rows == 128)
    assert "BodyPartExamined" not in ct
    assert ct.AnatomicRegionSequence[0].CodeMeaning == "Lung structure (body structure)"  # the standard's words
    assert [c.CodeMeaning for c in ct.ProcedureCodeSequence] == [profile.BASIC_PROFILE_CODE[2], "X1 (99LOCAL)"]
    wsi = next(ds for ds in exported if "OpticalPathSequence" in ds)
    icc = ImageCms.ImageCmsProfile(io.BytesIO(wsi.OpticalPathSequence[0].ICCProfile))
    assert ImageCms.getProfileDescription(icc).strip("X \n") == ""  # kept, colour intact, text blanked


DCIODVFY = shutil.which("dciodvfy")


def _errors(path: Path) -> int:
    if DCIODVFY is None:
        pytest.fail("dciodvfy (dicom3tools) is required (MEDVIEWER_REQUIRE_TOOLS=1) but is not on PATH")
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
    return sum(line.startswith("Error") for line in (result.stdout + result.stderr).splitlines())


@pytest.mark.skipif(
    DCIODVFY is None and not os.environ.get("MEDVIEWER_REQUIRE_TOOLS"),
    reason="dciodvfy (dicom3tools) is not installed; .ci/run installs it and requires it",
)
@pytest.mark.parametrize(
    "kind, source",
    [
        ("CT (pydicom CT_small)", "pydicom:CT_small.dcm"),
        ("MR (pydicom MR_small)", "pydicom:MR_small.dcm"),
        ("enhanced MR (Philips)", ENHANCED_MR),
        ("enhanced MR (Siemens XA10)", "dcm_qa_enh/Siemens_XA10/6_1.dcm"),
        *[(f"SEG ({path.name})", f"highdicom/{path.name}") for path in SEGS],
        ("WSI (pathml)", "wsi/pathml_small_dicom.dcm"),
        ("JPEG 2000 MR", COMPRESSED["jpeg2000"]),
    ],
)
def test_an_export_is_never_less_valid_than_its_input(
    tmp_path: Path, kind: str, source: str, capsys: pytest.CaptureFixture
):
    path = pydicom_file(source.removeprefix("pydicom:")) if source.startswith("pydicom:") else real_file(source)
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(path, folder / "input.dcm")
    out = tmp_path / "out"
    export_deidentified([folder], out, allow_burned_in=True)
    (exported,) = out.rglob("*.dcm")
    before, after = _errors(folder / "input.dcm"), _errors(exported)
    with capsys.disabled():
        print(f"\ndciodvfy errors, {kind}: input {before}, export {after}")
    assert after <= before


def test_dimensions_indexed_by_removed_private_tags_leave_every_frame_consistently():
    """Philips indexes frames by two private tags; the export drops those dimensions and their positions."""
    source = pydicom.dcmread(real_file(ENHANCED_MR))
    assert len(source.DimensionIndexSequence) == 4
    deidentify(source, UidMap())
    pointers = [int(item.DimensionIndexPointer) for item in source.DimensionIndexSequence]
    assert pointers == [0x00209056, 0x00209057]  # Stack ID, In-Stack Position Number
    assert not any("DimensionIndexPrivateCreator" in item for item in source.DimensionIndexSequence)
    original = pydicom.dcmread(real_file(ENHANCED_MR))
    for frame, before in zip(
        source.PerFrameFunctionalGroupsSequence, original.PerFrameFunctionalGroupsSequence, strict=True
    ):
        assert list(frame.FrameContentSequence[0].DimensionIndexValues) == list(
            before.FrameContentSequence[0].DimensionIndexValues[:2]
        )
