"""The catalog records what each series is with the window's own decision (``medviewer.io.dicom_kind``), so
its rows say "segmentation" or "structured report" instead of counting images that are not there."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from medviewer.catalog import Importer, connect
from medviewer.catalog.schema import MIGRATIONS
from medviewer.catalog.search import search
from medviewer.io import list_series
from tests.support.paths import pydicom_file, real_file


def _folder(tmp_path: Path, ct2_dir: Path) -> Path:
    folder = tmp_path / "study"
    shutil.copytree(ct2_dir, folder / "ct")
    shutil.copy(real_file("highdicom/seg_image_ct_binary_overlap.dcm"), folder / "seg.dcm")
    shutil.copy(pydicom_file("test-SR.dcm"), folder / "report.dcm")
    shutil.copy(pydicom_file("dicomdirtests/77654033/CR1/6154"), folder / "cr.dcm")
    shutil.copy(pydicom_file("examples_ybr_color.dcm"), folder / "us.dcm")
    shutil.copy(real_file("dcm_qa_enh/Philips/IM_0027_fMAP.dcm"), folder / "enhanced.dcm")
    return folder


def test_each_catalogued_series_has_the_kind_the_reader_gives_it(tmp_path: Path, ct2_dir: Path):
    folder = _folder(tmp_path, ct2_dir)
    Importer([folder]).run()
    by_uid = {hit.series_uid: hit.kind for hit in search(connect())}
    # the reader's own listing, file by file, is the reference
    expected = {info.series_uid: info.kind for info in list_series(folder)}
    assert by_uid == expected
    assert sorted(by_uid.values()) == sorted(
        ["volume", "volume", "segmentation", "structured report", "image", "cine"]
    )


def test_a_catalog_of_the_second_schema_gains_the_kind_column(tmp_path: Path, ct2_dir: Path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:2]:
        for statement in migration.split(";"):
            if statement.strip():
                old.execute(statement)
    old.execute("PRAGMA user_version = 2")
    old.close()
    conn = connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 3
    columns = [row[1] for row in conn.execute("PRAGMA table_info(series)")]
    assert "kind" in columns
    conn.close()
    Importer([ct2_dir], catalog=path).run()  # a migrated catalog records kinds from then on
    assert {hit.kind for hit in search(connect(path))} == {"volume"}
