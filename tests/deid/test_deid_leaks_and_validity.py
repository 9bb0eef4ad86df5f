"""Canaries in every place a probe found a leak, and the validity of what is exported.

Real public files (pydicom's CT and MR, the Philips enhanced MR of dcm_qa_enh, highdicom's SEG, a TCGA DICOM
WSI) get canaries in JPEG comment and application segments inside their frames, in segment labels and
algorithm names, in code meanings of standard and local codes, in a Code String (BodyPartExamined) and in
every text value; none may reach the export's bytes. dciodvfy (dicom3tools) then counts errors: an export
may never have more than its input."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.sequence import Sequence

from medviewer.deid.export import export_deidentified
from tests.conftest import pydicom_file, real_file

CANARY = b"QXLEAK"
WSI = real_file("wsi/pathml_small_dicom.dcm")
SEG = "highdicom/seg_image_ct_binary.dcm"
ENHANCED_MR = "dcm_qa_enh/Philips/IM_0027_fMAP.dcm"


def _canary(n: int) -> str:
    return f"{CANARY.decode()}{n:03d}"


def _jpeg_with_text(frame: bytes, n: int) -> bytes:
    """A COM and an APP1 segment holding canaries, inserted after SOI, as scanners write them."""
    text = _canary(n).encode()
    com = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    app1 = b"\xff\xe1" + (len(text) + 8).to_bytes(2, "big") + b"Exif\0\0" + text
    return frame[:2] + com + app1 + frame[2:]


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = value, scheme, meaning
    return code


def _planted(folder: Path) -> dict[str, Path]:
    """Copies of the real files with canaries planted; the originals' names by kind."""
    folder.mkdir()
    n = iter(range(1000))
    ct = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ct.BodyPartExamined = _canary(next(n))
    ct.ProcedureCodeSequence = Sequence(
        [_code("113100", "DCM", _canary(next(n))), _code("X1", "99LOCAL", _canary(next(n)))]
    )
    anatomic = _code("39607008", "SCT", _canary(next(n)))
    anatomic.AnatomicRegionModifierSequence = Sequence([_code("7771000", "SCT", _canary(next(n)))])
    ct.AnatomicRegionSequence = Sequence([anatomic])
    ct.ImageComments = _canary(next(n))
    ct.save_as(folder / "ct.dcm")

    seg = pydicom.dcmread(real_file(SEG))
    for segment in seg.SegmentSequence:
        segment.SegmentLabel = _canary(next(n))
        segment.SegmentAlgorithmName = _canary(next(n))
        segment.SegmentDescription = _canary(next(n))
        segment.SegmentedPropertyTypeCodeSequence[0].CodeMeaning = _canary(next(n))
    seg.save_as(folder / "seg.dcm")

    wsi = pydicom.dcmread(WSI)
    frames = list(generate_frames(wsi.PixelData, number_of_frames=wsi.NumberOfFrames))
    wsi.PixelData = encapsulate([_jpeg_with_text(frame, next(n)) for frame in frames])
    wsi.save_as(folder / "wsi.dcm")
    return {"ct": folder / "ct.dcm", "seg": folder / "seg.dcm", "wsi": folder / "wsi.dcm"}


def test_no_canary_leaves_and_frames_decode_to_the_same_pixels(tmp_path: Path):
    planted = _planted(tmp_path / "in")
    assert all(CANARY in path.read_bytes() for path in planted.values())
    out = tmp_path / "out"
    export_deidentified([tmp_path / "in"], out)
    exported = sorted(out.rglob("*.dcm"))
    assert len(exported) == 3
    leaks = [(path.name, path.read_bytes().count(CANARY)) for path in exported if CANARY in path.read_bytes()]
    assert leaks == []
    by_class = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPClassUID): p for p in exported}
    wsi_out = pydicom.dcmread(by_class["1.2.840.10008.5.1.4.1.1.77.1.6"])
    np.testing.assert_array_equal(wsi_out.pixel_array, pydicom.dcmread(WSI).pixel_array)
    seg_out = pydicom.dcmread(by_class[str(pydicom.dcmread(real_file(SEG)).SOPClassUID)])
    assert [s.SegmentLabel for s in seg_out.SegmentSequence] == [
        f"Segment {s.SegmentNumber}" for s in seg_out.SegmentSequence
    ]
    ct_out = pydicom.dcmread(by_class["1.2.840.10008.5.1.4.1.1.2"])
    assert "BodyPartExamined" not in ct_out
    assert ct_out.AnatomicRegionSequence[0].CodeMeaning != ""  # Type 1: rewritten, not emptied


DCIODVFY = shutil.which("dciodvfy")


def _errors(path: Path) -> int:
    result = subprocess.run([DCIODVFY or "dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    return sum(line.startswith("Error") for line in (result.stdout + result.stderr).splitlines())


@pytest.mark.skipif(
    DCIODVFY is None and not os.environ.get("MEDVIEWER_REQUIRE_TOOLS"),
    reason="dciodvfy (dicom3tools) is not installed; .ci/run installs it and requires it",
)
@pytest.mark.parametrize(
    "kind", ["CT (pydicom CT_small)", "MR (pydicom MR_small)", "enhanced MR (Philips)", "SEG (highdicom)", "WSI"]
)
def test_an_export_is_never_less_valid_than_its_input(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture):
    source = {
        "CT (pydicom CT_small)": pydicom_file("CT_small.dcm"),
        "MR (pydicom MR_small)": pydicom_file("MR_small.dcm"),
        "enhanced MR (Philips)": real_file(ENHANCED_MR),
        "SEG (highdicom)": real_file(SEG),
        "WSI": WSI,
    }[kind]
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(source, folder / "input.dcm")
    out = tmp_path / "out"
    export_deidentified([folder], out, allow_burned_in=True)
    (exported,) = out.rglob("*.dcm")
    before, after = _errors(folder / "input.dcm"), _errors(exported)
    with capsys.disabled():
        print(f"\ndciodvfy errors, {kind}: input {before}, export {after}")
    assert after <= before
