"""Importing DICOMDIRs, folders and slides: counts, incremental re-import, refusals and reasons."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.fileset import FileSet

from medviewer.catalog import Importer, connect
from medviewer.catalog.search import slides
from medviewer.core.app_dirs import data_dir
from tests.support.paths import REPO


def _counts() -> tuple[int, int, int, int]:
    conn = connect()
    try:
        return tuple(
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("patients", "studies", "series", "instances")
        )
    finally:
        conn.close()


def test_dicomdir_import_matches_pydicom_fileset_and_reimport_skips_all(dicomdir_tree: Path):
    fileset = FileSet(pydicom.dcmread(dicomdir_tree))
    expected = (
        len(fileset.find_values("PatientID")),
        len(fileset.find_values("StudyInstanceUID")),
        len(fileset.find_values("SeriesInstanceUID")),
        len(fileset),
    )
    assert expected == (2, 6, 13, 31)  # what pydicom ships; guards the comparison below
    report = Importer([dicomdir_tree]).run()
    assert (report.added, report.updated, report.unchanged, report.unreadable) == (31, 0, 0, [])
    assert _counts() == expected
    counted = connect().execute("SELECT sum(instance_count) FROM series").fetchone()[0]
    assert counted == 31

    again = Importer([dicomdir_tree]).run()
    assert (again.added, again.updated, again.unchanged) == (0, 0, 31)
    # The folder holding the DICOMDIR finds the same files once each (the index is not an image).
    folder = Importer([dicomdir_tree.parent]).run()
    assert (folder.added, folder.unchanged, folder.unreadable) == (0, 31, [])
    assert _counts() == expected


def test_changed_file_is_updated_not_added(dicomdir_tree: Path):
    Importer([dicomdir_tree.parent]).run()
    changed = dicomdir_tree.parent / "77654033" / "CT2" / "17106"
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    report = Importer([dicomdir_tree.parent]).run()
    assert (report.added, report.updated, report.unchanged) == (0, 1, 30)
    assert _counts()[3] == 31


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")  # '..' is not a valid file ID component
def test_dicomdir_entry_escaping_its_folder_is_refused(dicomdir_tree: Path, tmp_path: Path):
    ds = pydicom.dcmread(dicomdir_tree)
    images = [r for r in ds.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    original = images[0].ReferencedFileID
    # Same encoded length as the original, so the records' byte offsets in the DICOMDIR stay valid.
    name = "IM".ljust(len("\\".join(original)) - len("..\\outside\\"), "1")
    (tmp_path / "outside").mkdir()
    shutil.copy(Path(dicomdir_tree.parent, *original), tmp_path / "outside" / name)  # real DICOM: only the escape
    images[0].ReferencedFileID = ["..", "outside", name]
    ds.save_as(dicomdir_tree)

    report = Importer([dicomdir_tree]).run()
    assert report.added == 30
    assert [(Path(u.path).name, u.reason) for u in report.unreadable] == [
        (name, "DICOMDIR entry points outside the DICOMDIR's folder")
    ]
    paths = {row[0] for row in connect().execute("SELECT path FROM instances")}
    assert not any("outside" in p for p in paths)


def test_unreadable_files_are_counted_with_reasons_and_do_not_stop_the_import(generated, tmp_path: Path):
    folder = generated("mixed", 5)
    good = sorted(folder.rglob("*.dcm"))
    (folder / "notes.txt").write_text("not an image")
    (folder / "truncated.dcm").write_bytes(good[0].read_bytes()[:300])
    (folder / "fake.svs").write_bytes(b"\0" * 1000)
    no_uids = pydicom.dcmread(good[1])
    del no_uids.SeriesInstanceUID
    no_uids.save_as(folder / "no_series.dcm")
    report = Importer([folder, tmp_path / "does-not-exist"]).run()
    assert report.added == 5
    reasons = {Path(u.path).name: u.reason for u in report.unreadable}
    assert reasons == {
        "notes.txt": "not a DICOM file",
        "truncated.dcm": "DICOM file without study and series identifiers",  # pydicom stops quietly at the cut
        "fake.svs": "not a whole-slide image OpenSlide or tifffile reads",
        "no_series.dcm": "DICOM file without study and series identifiers",
        "does-not-exist": "cannot be read (No such file or directory)",
    }


def test_slides_are_catalogued_with_vendor_dimensions_and_mpp():
    svs = REPO / "tests/data/wsi/CMU-1-Small-Region.svs"
    report = Importer([svs]).run()
    assert (report.slides, report.added, report.unreadable) == (1, 0, [])
    [entry] = slides(connect())
    assert (entry.vendor, entry.width, entry.height, entry.mpp) == ("aperio", 2220, 2967, 0.499)
    again = Importer([svs]).run()
    assert (again.slides, again.unchanged) == (0, 1)


def test_copy_into_store_keeps_source_for_incremental_import(generated):
    folder = generated("copy", 3)
    report = Importer([folder], copy_to_store=True).run()
    assert report.added == 3
    rows = connect().execute("SELECT path, source_path FROM instances ORDER BY source_path").fetchall()
    store = data_dir() / "store"
    for path, source in rows:
        assert Path(path).is_relative_to(store) and Path(path).read_bytes() == Path(source).read_bytes()
    assert [Path(s).parent.parent.parent for _, s in rows] == [folder] * 3
    assert Importer([folder], copy_to_store=True).run().unchanged == 3


def test_background_import_reports_progress_and_can_be_cancelled(generated):
    folder = generated("many", 600)
    seen = []
    importer = Importer([folder], workers=1, progress=seen.append)
    importer.start()
    report = importer.wait(timeout=60)
    assert report.added == 600 and seen[-1].done == seen[-1].total == 600
    assert seen[0].done == 0 and all(p.files_per_s > 0 for p in seen[1:])

    more = generated("more", 600, first=600)
    cancelling = Importer([more], workers=1)
    cancelling.progress = lambda p: cancelling.cancel() if p.done > 0 else None
    cancelled = cancelling.run()
    assert cancelled.cancelled and cancelled.added == 250  # the first batch was written, then it stopped
    assert Importer([more]).run().added == 350  # a later import picks up where it stopped


def test_process_pool_import_matches_in_thread_import(generated):
    folder = generated("pool", 1200)
    report = Importer([folder], workers=2).run()
    assert report.added == 1200
    assert _counts() == (1, 2, 12, 1200)
