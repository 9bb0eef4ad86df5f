"""Damaged catalogs, two importing processes at once, and files that vanished after import."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from medviewer.catalog import Importer, catalog_path, check_missing, connect, rebuild
from medviewer.core.errors import CorruptFileError
from tests.support.paths import REPO


def _instances() -> int:
    conn = connect()
    try:
        return conn.execute("SELECT count(*) FROM instances").fetchone()[0]
    finally:
        conn.close()


def _damage(path: Path) -> None:
    """Overwrite pages after the first (the schema survives, the tables' b-trees do not)."""
    conn = connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(path, "r+b") as handle:
        handle.seek(4096)
        handle.write(b"\xa5" * 4096 * 3)


def test_damaged_catalog_is_reported_backed_up_and_rebuilt_from_its_paths(generated):
    folder = generated("data", 300)
    Importer([folder]).run()
    path = catalog_path()
    _damage(path)
    with pytest.raises(CorruptFileError) as raised:
        connect(path)
    assert raised.value.path == path and "damaged" in raised.value.reason
    backups = list(path.parent.glob("catalog.sqlite.damaged-*"))
    assert len(backups) == 1 and backups[0].read_bytes()[4096:4100] == b"\xa5" * 4

    report = rebuild(path, folders=[folder])  # the paths may be unreadable in the damaged file: the folder
    assert report.added == 300 and _instances() == 300


def test_rebuild_recovers_paths_from_a_readable_catalog(generated):
    folder = generated("data", 20)
    Importer([folder]).run()
    report = rebuild()
    assert report.added == 20 and _instances() == 20


def test_file_that_is_not_a_database_is_a_typed_error():
    path = catalog_path()
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CorruptFileError):
        connect()
    assert rebuild().added == 0 and _instances() == 0  # nothing recoverable: an empty, working catalog


def test_two_processes_importing_into_one_catalog(generated, medviewer_home: Path):
    folders = [generated("a", 1000), generated("b", 1000, first=1000)]
    code = "import sys; from medviewer.catalog import Importer; print(Importer([sys.argv[1]], workers=1).run().added)"
    env = {**os.environ, "MEDVIEWER_HOME": str(medviewer_home)}
    children = [
        subprocess.Popen([sys.executable, "-c", code, str(f)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        for f in folders
    ]
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]
    assert [int(out) for out in outputs] == [1000, 1000]
    conn = connect()
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*), count(DISTINCT sop_uid) FROM instances").fetchone() == (2000, 2000)
    assert conn.execute("SELECT count(*), sum(instance_count) FROM series").fetchone() == (20, 2000)


def test_moved_and_deleted_files_are_flagged_missing_not_errors(generated, tmp_path: Path):
    folder = generated("data", 10)
    Importer([folder]).run()
    files = sorted(folder.rglob("*.dcm"))
    files[0].unlink()
    shutil.move(files[1], tmp_path / "moved.dcm")
    conn = connect()
    assert check_missing(conn) == sorted([str(files[0]), str(files[1])])
    flagged = conn.execute("SELECT path FROM instances WHERE missing = 1 ORDER BY path").fetchall()
    assert [p for (p,) in flagged] == sorted([str(files[0]), str(files[1])])
    shutil.move(tmp_path / "moved.dcm", files[1])  # the drive came back
    assert check_missing(conn) == [str(files[0])]
    assert conn.execute("SELECT count(*) FROM instances WHERE missing = 1").fetchone()[0] == 1


def test_copy_to_store_never_writes_outside_it_or_under_a_patient_name(tmp_path: Path):
    import pydicom

    from medviewer.catalog.importer import Importer
    from medviewer.core.app_dirs import data_dir
    from tests.support.paths import pydicom_file

    folder = tmp_path / "SMITH_JOHN"
    folder.mkdir()
    ds = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    ds.StudyInstanceUID = str(tmp_path / "escaped")
    ds.SOPInstanceUID = "../../pwned"
    ds.save_as(folder / "SMITH_JOHN.dcm")
    report = Importer([folder], copy_to_store=True).run()
    assert report.added == 1 and not list(tmp_path.rglob("pwned*"))
    stored = list((data_dir() / "store").rglob("*.dcm"))
    assert len(stored) == 1 and "SMITH" not in str(stored[0]) and "pwned" not in str(stored[0])


def test_check_missing_stats_files_without_holding_the_write_lock(generated, monkeypatch: pytest.MonkeyPatch):
    """Another writer (an import) gets the lock at once while the files are looked at, and its row stands."""
    from medviewer.catalog import maintenance

    folder = generated("data", 10)
    Importer([folder]).run()
    files = sorted(folder.rglob("*.dcm"))
    files[0].unlink()
    files[1].unlink()
    other = sqlite3.connect(catalog_path(), timeout=0, isolation_level=None)
    stat_calls = []
    real_isfile = os.path.isfile

    def isfile_while_importing(path: str) -> bool:
        if not stat_calls:  # as an import re-recording files[1] (back, changed) would, mid-check
            other.execute("BEGIN IMMEDIATE")  # raises "database is locked" if check_missing held the lock
            other.execute("UPDATE instances SET mtime_ns = mtime_ns + 1 WHERE path = ?", (str(files[1]),))
            other.execute("COMMIT")
        stat_calls.append(path)
        return real_isfile(path)

    monkeypatch.setattr(maintenance.os.path, "isfile", isfile_while_importing)
    conn = connect()
    assert check_missing(conn) == sorted([str(files[0]), str(files[1])])
    assert len(stat_calls) == 10
    flagged = conn.execute("SELECT path FROM instances WHERE missing = 1").fetchall()
    assert flagged == [(str(files[0]),)]  # the row rewritten meanwhile is left as the importer wrote it
    other.close()
