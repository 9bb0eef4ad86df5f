"""What the patient panel reads and records per image: a series' files, annotation files, AI results."""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pydicom
import pytest

from medviewer.catalog import Importer, check_missing, connect
from medviewer.catalog.browse import (
    AiResultEntry,
    AnnotationFileEntry,
    ai_results_for,
    annotation_files_for,
    record_ai_result,
    record_annotation_file,
    series_files,
    series_key,
    slide_key,
)
from medviewer.catalog.schema import MIGRATIONS
from medviewer.catalog.search import slides
from tests.support.paths import REPO, pydicom_file


def test_series_files_are_in_instance_order_without_the_missing_ones(tmp_path: Path):
    folder = tmp_path / "ct2"
    shutil.copytree(pydicom_file("dicomdirtests/77654033/CT2/17106").parent, folder)
    by_name = sorted(folder.iterdir())
    for path, number in zip(by_name, (3, 1, 3, 2), strict=True):  # not the names' order; one tie
        ds = pydicom.dcmread(path)
        ds.InstanceNumber = number
        ds.save_as(path)
    Importer([folder]).run()
    conn = connect()
    uid = str(pydicom.dcmread(by_name[0]).SeriesInstanceUID)
    assert series_files(conn, uid) == [by_name[1], by_name[3], by_name[0], by_name[2]]

    by_name[3].unlink()
    check_missing(conn)
    assert series_files(conn, uid) == [by_name[1], by_name[0], by_name[2]]
    assert series_files(conn, "2.25.404") == []


def test_image_keys():
    assert series_key("1.2.840.1") == "series:1.2.840.1"
    assert slide_key(Path("a/../b/slide.svs")) == os.path.join(os.getcwd(), "b", "slide.svs")


def test_slide_key_is_the_path_the_importer_records(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(REPO / "tests/data")
    relative = Path("wsi/CMU-1-Small-Region.svs")
    Importer([relative]).run()
    [entry] = slides(connect())
    assert slide_key(relative) == entry.path


def _touch(path: Path, seconds: int) -> None:
    path.write_text("{}")
    os.utime(path, ns=(seconds * 1_000_000_000, seconds * 1_000_000_000))


def test_annotation_files_are_upserted_by_path_and_listed_newest_first(tmp_path: Path):
    conn = connect()
    older, newer, elsewhere = tmp_path / "older.geojson", tmp_path / "newer.xml", tmp_path / "other.geojson"
    _touch(older, 1_700_000_000)
    _touch(newer, 1_700_000_600)
    _touch(elsewhere, 1_700_000_900)
    series, slide = series_key("1.2.3"), slide_key(tmp_path / "slide.svs")
    record_annotation_file(conn, older, series, "geojson")
    record_annotation_file(conn, newer, slide, "asap")
    record_annotation_file(conn, elsewhere, series_key("9.9"), "geojson")
    assert annotation_files_for(conn, [series, slide]) == [
        AnnotationFileEntry(str(newer), slide, "asap", "2023-11-14T22:23:20+00:00"),
        AnnotationFileEntry(str(older), series, "geojson", "2023-11-14T22:13:20+00:00"),
    ]

    _touch(older, 1_700_001_000)  # saved again, now for the slide and in another format
    record_annotation_file(conn, older, slide, "qupath")
    assert conn.execute("SELECT count(*) FROM annotation_files").fetchone()[0] == 3
    assert annotation_files_for(conn, [slide]) == [
        AnnotationFileEntry(str(older), slide, "qupath", "2023-11-14T22:30:00+00:00"),
        AnnotationFileEntry(str(newer), slide, "asap", "2023-11-14T22:23:20+00:00"),
    ]
    assert annotation_files_for(conn, [series]) == [] and annotation_files_for(conn, []) == []


def test_ai_results_are_listed_newest_first_for_the_keys_asked(tmp_path: Path):
    conn = connect()
    series, slide = series_key("1.2.3"), slide_key(tmp_path / "slide.svs")
    before = datetime.now(timezone.utc)
    record_ai_result(conn, series, "spleen", "1.0", "ab" * 32, "1 region, 210 ml")
    record_ai_result(conn, slide, "tumour", "2.1", "cd" * 32, "3 regions")
    record_ai_result(conn, series_key("9.9"), "spleen", "1.0", "ab" * 32, "not asked for")
    record_ai_result(conn, series, "spleen", "1.1", "ef" * 32, "1 region, 205 ml")
    found = ai_results_for(conn, [series, slide])
    assert [(r.image_path, r.model_version, r.summary) for r in found] == [
        (series, "1.1", "1 region, 205 ml"),
        (slide, "2.1", "3 regions"),
        (series, "1.0", "1 region, 210 ml"),
    ]
    assert all(isinstance(r, AiResultEntry) and r.model_hash for r in found)
    created = [datetime.fromisoformat(r.created) for r in found]
    assert all(c.utcoffset().total_seconds() == 0 and before <= c for c in created)
    assert created == sorted(created, reverse=True)
    assert ai_results_for(conn, []) == []


def test_any_number_of_keys_can_be_asked_for(tmp_path: Path):
    conn = connect()
    record_ai_result(conn, series_key("2.25.39999"), "m", "1", "00" * 32, "last of many")
    keys = [series_key(f"2.25.{n}") for n in range(40_000)]  # above SQLite's limit on parameters
    assert [r.summary for r in ai_results_for(conn, keys)] == ["last of many"]


def test_a_catalog_of_the_first_schema_gains_kept_result_files_and_keeps_its_ai_rows(tmp_path: Path):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            old.execute(statement)
    old.execute("PRAGMA user_version = 1")
    old.execute(
        "INSERT INTO ai_results (image_path, model_name, model_version, model_hash, created, summary)"
        " VALUES ('slide:/x.svs', 'demo', '1.0', 'ab', '2026-01-01T00:00:00.000000+00:00', 'a run')"
    )
    old.close()
    conn = connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    (before,) = ai_results_for(conn, ["slide:/x.svs"])
    assert (before.model_name, before.summary, before.result_file) == ("demo", "a run", "")
    record_ai_result(conn, "slide:/x.svs", "demo", "1.1", "cd", "another run", result_file="abc.npz")
    newest = ai_results_for(conn, ["slide:/x.svs"])[0]
    assert (newest.model_version, newest.result_file) == ("1.1", "abc.npz")
