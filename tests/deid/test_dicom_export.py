"""De-identified DICOM export: canaries planted in every text, name, date and private value never come out."""

from __future__ import annotations

import datetime
import hashlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from medviewer.catalog import audit
from medviewer.cli.export import export_main
from medviewer.deid import profile
from medviewer.deid.dicom import is_standard_uid
from medviewer.deid.export import BurnedInAnnotationError, export_deidentified
from tests.support.paths import pydicom_file, real_file

CANARY = "ZQCAN"  # every planted text starts with it; AE and SH allow 16 characters
CANARY_TIME = "235958.424242"
SOURCES = ("CT_small.dcm", "MR_small.dcm", "test-SR.dcm")  # CT_small has private blocks; the SR nests sequences


class Planter:
    """Replaces every text value (outside the short safe-keep list) with a unique canary, every date with a
    distinct 1901 date, and remembers all of them and every non-standard UID, for the scan of the output."""

    def __init__(self) -> None:
        self.planted: list[str] = []
        self.uids: set[str] = set()

    def _canary(self) -> str:
        text = f"{CANARY}{len(self.planted):05d}"
        self.planted.append(text)
        return text

    def _date(self) -> str:
        text = (datetime.date(1901, 1, 1) + datetime.timedelta(days=len(self.planted))).strftime("%Y%m%d")
        self.planted.append(text)
        return text

    def plant(self, ds: Dataset) -> None:
        for element in ds.iterall():
            vr, tag = element.VR, int(element.tag)
            if vr in profile.TEXT_VRS and tag not in profile.SAFE_TEXT:
                element.value = self._canary()
            elif vr == "UN" or (element.tag.is_private and vr in ("OB", "UT", "LT")):
                element.value = self._canary().encode()
            elif vr == "DA":
                element.value = self._date()
            elif vr == "DT":
                element.value = self._date() + "120000"
            elif vr == "TM":
                element.value = CANARY_TIME
            elif vr == "UI":
                values = element.value if isinstance(element.value, list) else [element.value]
                self.uids.update(str(v) for v in values if v and not is_standard_uid(str(v)))


def _write_planted(ds: Dataset, planter: Planter, folder: Path, name: str) -> Path:
    planter.plant(ds)
    ds.PatientName = f"{CANARY}FAMILY^{CANARY}GIVEN"
    ds.PatientID = f"{CANARY}PID"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    ds.save_as(path, enforce_file_format=True)
    return path


def _pixel_digests(paths: list[Path]) -> list[str]:
    digests = []
    for path in paths:
        ds = pydicom.dcmread(path)
        if "PixelData" in ds:
            digests.append(hashlib.sha256(ds.PixelData).hexdigest())
    return sorted(digests)


def _assert_clean(out: Path, planter: Planter) -> list[Path]:
    outputs = sorted(p for p in out.rglob("*") if p.is_file())
    for path in outputs:
        data = path.read_bytes()
        name = str(path.relative_to(out))
        assert CANARY not in name
        assert CANARY.encode() not in data, f"{name} holds a planted canary"
        assert CANARY_TIME.encode() not in data
        for planted in planter.planted:
            assert planted.encode() not in data, f"{name} holds planted {planted}"
        for uid in planter.uids:
            assert uid.encode() not in data and uid not in name, f"{name} keeps an original UID"
        ds = pydicom.dcmread(path)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert not any(element.tag.is_private for element in ds.iterall())
    return outputs


def test_canaries_never_leave_and_pixels_are_unchanged(tmp_path: Path):
    planter = Planter()
    folder = tmp_path / f"{CANARY}FOLDER"
    inputs = [
        _write_planted(pydicom.dcmread(pydicom_file(name), force=True), planter, folder, f"{CANARY}-{i}.dcm")
        for i, name in enumerate(SOURCES)
    ]
    assert sum(element.tag.is_private for element in pydicom.dcmread(inputs[0]).iterall()) > 100
    out = tmp_path / "out"
    result = export_deidentified([folder], out)
    assert (result.dicom_files, result.slides, result.skipped) == (3, 0, 0)
    outputs = _assert_clean(out, planter)
    assert len(outputs) == 3
    assert _pixel_digests(outputs) == _pixel_digests(inputs)
    sr = next(pydicom.dcmread(p) for p in outputs if pydicom.dcmread(p).Modality == "SR")
    assert sr.ContentSequence  # nested content is kept, only its identifying values are gone


def test_segmentation_references_follow_its_ct(tmp_path: Path, ct2_dir: Path):
    planter = Planter()
    ct_folder, seg_folder = tmp_path / "ct", tmp_path / "seg"
    cts = [_write_planted(pydicom.dcmread(p), planter, ct_folder, p.name) for p in sorted(ct2_dir.iterdir())]
    _write_planted(pydicom.dcmread(real_file("highdicom/seg_image_ct_binary.dcm")), planter, seg_folder, "seg.dcm")
    out = tmp_path / "out"
    export_deidentified([ct_folder, seg_folder], out)
    outputs = _assert_clean(out, planter)
    datasets = [pydicom.dcmread(p) for p in outputs]
    seg = next(ds for ds in datasets if ds.Modality == "SEG")
    exported_cts = [ds for ds in datasets if ds.Modality == "CT"]
    assert len(exported_cts) == len(cts) == 4
    assert {ds.SeriesInstanceUID for ds in exported_cts} == {seg.ReferencedSeriesSequence[0].SeriesInstanceUID}
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {ds.SOPInstanceUID for ds in exported_cts}
    assert seg.FrameOfReferenceUID == exported_cts[0].FrameOfReferenceUID
    assert seg.StudyInstanceUID == exported_cts[0].StudyInstanceUID
    sources = {
        item.ReferencedSOPInstanceUID
        for frame in seg.PerFrameFunctionalGroupsSequence
        for derivation in frame.DerivationImageSequence
        for item in derivation.SourceImageSequence
    }
    assert sources <= referenced


def _burned_in_copies(folder: Path) -> list[Path]:
    folder.mkdir()
    marked = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    marked.BurnedInAnnotation = "YES"
    marked.save_as(folder / "marked.dcm")
    capture = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    capture.SOPClassUID = capture.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    capture.save_as(folder / "capture.dcm")
    plain = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    plain.SOPInstanceUID = plain.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    plain.save_as(folder / "plain.dcm")
    return [folder / "marked.dcm", folder / "capture.dcm"]


def test_burned_in_annotation_is_refused_before_anything_is_written(tmp_path: Path):
    flagged = _burned_in_copies(tmp_path / "in")
    out = tmp_path / "out"
    with pytest.raises(BurnedInAnnotationError) as caught:
        export_deidentified([tmp_path / "in"], out)
    assert sorted(path for path, _ in caught.value.flagged) == sorted(flagged)
    assert not out.exists()
    assert export_deidentified([tmp_path / "in"], out, allow_burned_in=True).dicom_files == 3


def test_export_command_refuses_lists_and_audits(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    _burned_in_copies(tmp_path / "in")
    out = tmp_path / "out"
    assert export_main(["--deidentify", "--out", str(out), str(tmp_path / "in")]) == 1
    err = capsys.readouterr().err
    assert "marked.dcm" in err and "capture.dcm" in err and "plain.dcm" not in err
    assert export_main(["--deidentify", "--allow-burned-in", "--out", str(out), str(tmp_path / "in")]) == 0
    assert "exported 3 DICOM files" in capsys.readouterr().out
    (event,) = audit.events(10, event="export")
    assert event.details["dicom_files"] == 3 and str(tmp_path) not in event.subject
    assert export_main(["--deidentify", "--out", str(out), str(tmp_path / "in")]) == 1  # not empty any more
    assert "not empty" in capsys.readouterr().err


def test_profile_table_names_real_attributes():
    assert len(profile.ACTIONS) == len(set(profile.ACTIONS)) > 150
    assert all(action in "XZDU" for action in profile.ACTIONS.values())


def test_preamble_binary_blobs_local_code_meanings_and_dicomdirs_do_not_leak(tmp_path: Path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as DicomSequence

    folder = tmp_path / "in"
    folder.mkdir()
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.preamble = b"PATIENT SMITH JOHN MRN12345".ljust(128, b" ")
    ds.EncapsulatedDocument = b"%PDF SMITH JOHN MRN12345"
    icon = Dataset()
    icon.BitsAllocated, icon.PixelData = 8, b"SMITHICON" * 8
    ds.IconImageSequence = DicomSequence([icon])
    local, standard = Dataset(), Dataset()
    local.CodeValue, local.CodingSchemeDesignator, local.CodeMeaning = "X1", "99LOCAL", "Patient SMITH MRN12345"
    standard.CodeValue, standard.CodingSchemeDesignator, standard.CodeMeaning = "113100", "DCM", "Basic profile"
    ds.ProcedureCodeSequence = DicomSequence([local, standard])
    ds.save_as(folder / "ct.dcm")
    dicomdir = pydicom.dcmread(pydicom_file("DICOMDIR"))
    dicomdir.save_as(folder / "DICOMDIR")
    out = tmp_path / "out"
    result = export_deidentified([folder], out)
    assert (result.dicom_files, result.skipped) == (1, 1)  # the DICOMDIR, whose records name files, is left out
    (exported,) = out.rglob("*.dcm")
    data = exported.read_bytes()
    assert b"SMITH" not in data and b"MRN12345" not in data and data[:128] == bytes(128)
    kept = pydicom.dcmread(exported)
    assert "EncapsulatedDocument" not in kept and "IconImageSequence" not in kept
    # meanings are rewritten, never emptied (Type 1): the standard's own words, or the local code itself
    assert [item.CodeMeaning for item in kept.ProcedureCodeSequence] == [
        "X1 (99LOCAL)",
        "Basic Application Confidentiality Profile",
    ]
    np.testing.assert_array_equal(kept.pixel_array, pydicom.dcmread(pydicom_file("CT_small.dcm")).pixel_array)
