"""The audit trail reports what its hash chain alone cannot show: a database emptied, deleted, truncated,
its table dropped, its newest rows removed or an older copy put back, and anchors that were edited. Each is
done as an attacker without the user's key would do it, on a trail made by real appends, and checked
through `medviewer audit verify`, which must exit non-zero and say what is wrong."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from medviewer.catalog import audit
from medviewer.cli.audit import audit_main


def _append(count: int) -> None:
    for number in range(count):
        audit.record("open", audit.path_subject(f"/data/study-{number}"), {"slices": number})


def _settle() -> Path:
    """The database as one file (WAL checkpointed, side files gone), as an attacker would find it at rest."""
    audit._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    path = audit.audit_path()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def _verify(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = audit_main(["verify"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _raw(sql: str) -> None:
    """Edit the database directly, the append-only triggers dropped first."""
    connection = sqlite3.connect(_settle())
    connection.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; " + sql)
    connection.commit()
    connection.close()


def _tamper(attack: str, path: Path, keep: int, older: Path | None = None) -> None:
    """Do to the settled database at ``path`` what ``attack`` names; ``keep``: the rows the deletion keeps,
    ``older``: the copy an attacker puts back."""
    if attack == "truncate to 0 bytes":
        path.write_bytes(b"")
    elif attack == "delete the file":
        path.unlink()
    elif attack == "truncate to half":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif attack == "drop the table":
        _raw("DROP TABLE audit;")
    elif attack == "delete the newest rows":
        _raw(f"DELETE FROM audit WHERE seq > {keep};")
    else:
        assert attack == "put back an older copy" and older is not None
        shutil.copy(older, path)


def test_an_intact_trail_and_a_fresh_installation_verify(capsys: pytest.CaptureFixture[str]):
    assert _verify(capsys) == (0, "no audit trail yet\n")
    assert not audit.audit_path().exists()  # verify created nothing
    _append(3)
    assert _verify(capsys) == (0, "audit trail intact: 3 events\n")
    assert all(path.exists() for path in audit.anchor_paths())


@pytest.mark.parametrize(
    ("attack", "says"),
    [
        ("truncate to 0 bytes", "it has no audit table"),
        ("delete the file", "is missing (deleted or moved)"),
        ("truncate to half", "cannot be read"),
        ("drop the table", "it has no audit table"),
        ("delete the newest rows", "records 5 events but the database holds 3: the newest rows were removed"),
    ],
)
def test_a_damaged_or_emptied_database_is_reported(capsys: pytest.CaptureFixture[str], attack: str, says: str):
    _append(5)
    path = _settle()
    _tamper(attack, path, keep=3)
    code, output = _verify(capsys)
    assert code == 1 and output.startswith("audit trail not intact: ") and says in output
    if attack == "delete the file":
        assert not path.exists()  # verify repaired nothing


def test_an_older_copy_put_back_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    _append(3)
    older = tmp_path / "older.sqlite"
    shutil.copy(_settle(), older)
    _append(2)
    shutil.copy(older, _settle())
    code, output = _verify(capsys)
    assert code == 1 and "records 5 events but the database holds 3" in output


def test_a_replaced_database_of_the_same_length_is_reported(capsys: pytest.CaptureFixture[str]):
    """Another chain made with the same key (say, by the user's own account) but different rows: the
    anchor's hash names the row it expects."""
    _append(3)
    anchors = [path.read_bytes() for path in audit.anchor_paths()]
    genuine_path = _settle()
    for connection in audit._local.connections.values():
        connection.close()
    audit._local.connections.clear()
    genuine_path.unlink()
    for number in range(3):
        audit.record("export", audit.path_subject(f"/elsewhere/{number}"), {})
    for path, text in zip(audit.anchor_paths(), anchors, strict=True):
        path.write_bytes(text)  # the anchors of the genuine trail put back
    code, output = _verify(capsys)
    assert code == 1 and "row 3 does not match the anchor" in output


def test_edited_removed_or_disagreeing_anchors_are_reported(capsys: pytest.CaptureFixture[str]):
    _append(4)
    beside_db, in_settings = audit.anchor_paths()
    text = beside_db.read_text()
    beside_db.write_text(text.replace('"count": 4', '"count": 2'))
    code, output = _verify(capsys)
    assert code == 1 and "was changed (its MAC does not match)" in output

    beside_db.write_text(text)
    in_settings.unlink()
    code, output = _verify(capsys)
    assert code == 1 and f"the anchor {in_settings} is missing" in output


def _restart() -> None:
    """What the next start of medviewer sees: no connection left open from before the tampering."""
    for connection in audit._local.connections.values():
        connection.close()
    audit._local.connections.clear()


@pytest.mark.parametrize(
    ("attack", "says"),
    [
        ("truncate to 0 bytes", "records 5 events but the database holds 3"),
        ("delete the file", "records 5 events but the database holds 3"),
        ("drop the table", "records 5 events but the database holds 3"),
        ("delete the newest rows", "row 5 does not match the anchor"),
        ("put back an older copy", "row 5 does not match the anchor"),
    ],
)
def test_events_recorded_after_tampering_do_not_hide_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, attack: str, says: str
):
    """The anchors stop moving once they no longer pin the database, so normal use after a wipe or a
    rollback (opening a study records an event) leaves the finding in place instead of starting afresh."""
    _append(2)
    older = tmp_path / "older.sqlite"
    shutil.copy(_settle(), older)
    _append(3)
    path = _settle()
    _tamper(attack, path, keep=2, older=older)
    anchors = [where.read_bytes() for where in audit.anchor_paths()]
    _restart()
    _append(3)
    code, output = _verify(capsys)
    assert code == 1 and says in output, output
    assert [where.read_bytes() for where in audit.anchor_paths()] == anchors  # left where they were


def test_a_database_replaced_while_medviewer_runs_is_not_written_behind_the_anchors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    """A running window keeps its connection; the file swapped under it must not keep receiving the events
    (and moving the anchors) while the file at the path is another one."""
    _append(2)
    older = tmp_path / "older.sqlite"
    shutil.copy(_settle(), older)
    _append(3)
    path = _settle()
    replacement = path.with_name("swap.sqlite")
    shutil.copy(older, replacement)
    replacement.replace(path)  # a new file at the path, as a restore from a backup makes it
    _append(1)
    code, output = _verify(capsys)
    assert code == 1 and "records 5 events but the database holds 3" in output


def test_a_half_truncated_database_is_a_typed_error_everywhere(capsys: pytest.CaptureFixture[str]):
    _append(40)
    path = _settle()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _restart()
    with pytest.raises(audit.AuditTrailError) as recorded:
        audit.record("open", audit.path_subject("/data/study-x"), {})
    assert recorded.value.path == path and "cannot be written" in recorded.value.reason
    assert "malformed" in recorded.value.reason
    with pytest.raises(audit.AuditTrailError, match="cannot be read"):
        audit_main(["show"])
    code, output = _verify(capsys)
    assert code == 1 and f"the audit database {path} cannot be read" in output
    assert path.read_bytes() == data[: len(data) // 2]  # nothing repaired or rewritten


def test_showing_or_verifying_creates_nothing(capsys: pytest.CaptureFixture[str]):
    assert audit_main(["show"]) == 0 and capsys.readouterr().out == ""
    assert _verify(capsys) == (0, "no audit trail yet\n")
    assert not audit.audit_path().exists() and not any(where.exists() for where in audit.anchor_paths())


def test_a_trail_deleted_with_both_anchors_is_not_taken_for_a_new_one(capsys: pytest.CaptureFixture[str]):
    _append(3)
    path = _settle()
    path.unlink()
    for where in audit.anchor_paths():
        where.unlink()
    code, output = _verify(capsys)
    assert code == 1 and "and both its anchors are missing, but the key is not" in output
