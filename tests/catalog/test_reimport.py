"""Re-importing changed files: an instance that changed series leaves the old one, and headers replace rows."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pydicom
import pytest

from medviewer.catalog import Importer, connect, search
from tests.support.paths import REPO, pydicom_file


def _edit(path: Path, **values: object) -> None:
    """Change header attributes in place, and the modification time, so the importer sees a changed file."""
    ds = pydicom.dcmread(path)
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.save_as(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _series() -> dict[str, tuple[int, str]]:
    """Each series' instance_count and description, by UID, as the catalog holds them."""
    rows = connect().execute("SELECT series_uid, instance_count, description FROM series")
    return {uid: (count, description) for uid, count, description in rows}


def _counts() -> tuple[int, ...]:
    conn = connect()
    tables = ("patients", "studies", "series", "instances")
    return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables)


@pytest.fixture
def ct2(tmp_path: Path) -> list[Path]:
    """A copy of pydicom's 4-slice CT2 series, free to edit."""
    folder = tmp_path / "ct2"
    shutil.copytree(pydicom_file("dicomdirtests/77654033/CT2/17106").parent, folder)
    return sorted(folder.iterdir())


def test_an_instance_moved_to_another_series_is_counted_there_and_no_longer_in_the_old_one(ct2: list[Path]):
    Importer([ct2[0].parent]).run()
    old_uid = str(pydicom.dcmread(ct2[0]).SeriesInstanceUID)
    assert _series() == {old_uid: (4, pydicom.dcmread(ct2[0]).SeriesDescription)}

    _edit(ct2[0], SeriesInstanceUID="2.25.1001", SeriesDescription="moved")
    report = Importer([ct2[0].parent]).run()
    assert (report.added, report.updated, report.unchanged) == (0, 1, 3)
    series = _series()
    assert series["2.25.1001"] == (1, "moved") and series[old_uid][0] == 3
    assert _counts() == (1, 1, 2, 4)

    for path in ct2[1:]:
        _edit(path, SeriesInstanceUID="2.25.1001", SeriesDescription="moved")
    Importer([ct2[0].parent]).run()
    assert _series() == {"2.25.1001": (4, "moved")}  # the emptied series is gone, not listed with 0
    assert [(h.series_uid, h.instance_count) for h in search(connect())] == [("2.25.1001", 4)]


def test_changed_study_and_series_fields_replace_those_of_the_first_import(ct2: list[Path]):
    Importer([ct2[0].parent]).run()
    changed = {
        "StudyDate": "20240229",
        "StudyTime": "101500",
        "AccessionNumber": "ACC-NEW",
        "StudyDescription": "new study description",
        "Modality": "MR",
        "SeriesDescription": "new series description",
        "SeriesNumber": 77,
        "Rows": 32,
        "Columns": 24,
        "ImageOrientationPatient": [0, 1, 0, 0, 0, -1],
        "PixelSpacing": [0.5, 0.75],
        "SliceThickness": 2.5,
    }
    _edit(ct2[2], **changed)
    assert Importer([ct2[0].parent]).run().updated == 1
    conn = connect()
    study = conn.execute("SELECT study_date, study_time, accession, description FROM studies").fetchall()
    assert study == [("20240229", "101500", "ACC-NEW", "new study description")]
    series = conn.execute(
        "SELECT modality, description, series_number, rows, cols, orientation, spacing, instance_count FROM series"
    ).fetchall()
    assert series == [("MR", "new series description", 77, 32, 24, "0\\1\\0\\0\\0\\-1", "0.5\\0.75\\2.5", 4)]


def test_a_study_and_patient_left_empty_are_removed_and_the_others_kept(ct2: list[Path], tmp_path: Path):
    other = tmp_path / "other.dcm"
    shutil.copy(pydicom_file("CT_small.dcm"), other)
    Importer([ct2[0].parent, other]).run()
    assert _counts() == (2, 2, 2, 5)

    uids = {"StudyInstanceUID": "2.25.2001", "SeriesInstanceUID": "2.25.2002"}
    _edit(other, PatientID="NEW-ID", PatientName="New^Name", **uids)
    Importer([other]).run()
    conn = connect()
    assert _counts() == (2, 2, 2, 5)
    patients = {row[0] for row in conn.execute("SELECT patient_id FROM patients")}
    assert "NEW-ID" in patients and str(pydicom.dcmread(ct2[0]).PatientID) in patients
    assert conn.execute("SELECT count(*) FROM patients WHERE patient_id = '1CT1'").fetchone()[0] == 0
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_a_series_moved_to_another_study_takes_its_study_and_leaves_the_old_one_empty(ct2: list[Path]):
    Importer([ct2[0].parent]).run()
    for path in ct2:
        _edit(path, StudyInstanceUID="2.25.3001", StudyDescription="re-filed")
    Importer([ct2[0].parent]).run()
    joined = (
        "SELECT st.study_uid, st.description, se.instance_count FROM studies st JOIN series se ON se.study_ref = st.id"
    )
    rows = connect().execute(joined).fetchall()
    assert rows == [("2.25.3001", "re-filed", 4)] and _counts() == (1, 1, 1, 4)


@pytest.mark.filterwarnings("ignore:The (value|PN component) length")  # the file's own over-long values, saved
def test_a_dicom_slide_moved_to_another_patient_leaves_no_empty_patient(tmp_path: Path):
    slide = tmp_path / "slide.dcm"
    shutil.copy(REPO / "tests/data/wsi/pathml_small_dicom.dcm", slide)
    assert Importer([slide]).run().slides == 1
    conn = connect()
    assert conn.execute("SELECT count(*) FROM patients").fetchone()[0] == 1
    _edit(slide, PatientID="MOVED", PatientName="Other^Patient")
    assert Importer([slide]).run().slides == 1
    assert conn.execute("SELECT patient_id FROM patients").fetchall() == [("MOVED",)]
