"""The audit trail is append-only, and tampering with its file directly is caught by ``verify``."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from medviewer.catalog import audit
from medviewer.cli.audit import audit_main


def _record_five() -> None:
    audit.record("import", audit.path_subject("/data/study"), {"files": 4})
    audit.record("open", "1.2.840.1")
    audit.record("inference", "1.2.840.1", {"model_hash": "ab" * 32})
    audit.record("annotation_save", "1.2.840.1", {"shapes": 2})
    audit.record("export", "1.2.840.1", {"deidentified": True})


def _tamper(sql: str) -> None:
    connection = sqlite3.connect(audit.audit_path())
    connection.executescript("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;" + sql)
    connection.close()


def test_intact_trail_verifies_and_lists_newest_first(capsys: pytest.CaptureFixture[str]):
    _record_five()
    assert audit.verify().ok and audit.verify().checked == 5
    assert [e.event for e in audit.events(2)] == ["export", "annotation_save"]
    assert [e.seq for e in audit.events(10, event="open")] == [2]
    assert audit_main(["verify"]) == 0
    assert audit_main(["show", "--json"]) == 0
    assert capsys.readouterr().out.count('"event":') == 5


def test_triggers_refuse_updates_and_deletes():
    _record_five()
    connection = sqlite3.connect(audit.audit_path())
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("UPDATE audit SET subject = 'x' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        connection.execute("DELETE FROM audit WHERE seq = 2")
    connection.close()


def test_edited_row_is_named(capsys: pytest.CaptureFixture[str]):
    _record_five()
    _tamper("""UPDATE audit SET details = '{"shapes":3}' WHERE seq = 4;""")
    result = audit.verify()
    assert (result.ok, result.seq) == (False, 4) and "changed" in result.problem
    assert audit_main(["verify"]) == 1
    assert "seq 4" in capsys.readouterr().err


def test_deleted_middle_row_is_reported_missing(capsys: pytest.CaptureFixture[str]):
    _record_five()
    _tamper("DELETE FROM audit WHERE seq = 3;")
    result = audit.verify()
    assert (result.ok, result.seq) == (False, 3) and "missing" in result.problem
    assert audit_main(["verify"]) == 1
    assert "seq 3: row 3 is missing" in capsys.readouterr().err


def test_rehashed_row_still_breaks_the_chain():
    """Recomputing an edited row's own hash is not enough: the next row links to the old one."""
    _record_five()
    row = sqlite3.connect(audit.audit_path()).execute("SELECT * FROM audit WHERE seq = 2").fetchone()
    forged = audit._row_hash(row[0], row[1], row[2], "1.2.999", row[4], row[5])
    _tamper(f"UPDATE audit SET subject = '1.2.999', hash = '{forged}' WHERE seq = 2;")
    assert (audit.verify().seq, audit.verify().problem) == (3, "its link to the previous row was changed")


def test_events_are_validated():
    with pytest.raises(ValueError, match="unknown audit event"):
        audit.record("print", "x")
    with pytest.raises(ValueError, match="model_hash"):
        audit.record("inference", "x", {})


def test_background_threads_record_concurrently():
    workers = [threading.Thread(target=lambda: [audit.record("open", "1.2.3") for _ in range(10)]) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert audit.verify().checked == 40 and audit.verify().ok


def test_a_rewritten_chain_is_caught_without_the_key_and_damaged_details_do_not_crash(tmp_path):
    import hashlib
    import json
    import sqlite3

    from medviewer.catalog import audit

    for n in range(4):
        audit.record("open", f"path:{n}", {"n": n})
    connection = sqlite3.connect(audit.audit_path())
    connection.execute("DROP TRIGGER audit_no_update")
    rows = connection.execute("SELECT seq, time, event, subject, details, prev_hash FROM audit ORDER BY seq").fetchall()
    prev = rows[1][5]
    for seq, time, event, subject, details, _ in rows[1:]:  # edit row 2 and re-chain the rest with plain SHA-256
        details = '{"n":99}' if seq == 2 else details
        canonical = json.dumps([seq, time, event, subject, details, prev], separators=(",", ":"), ensure_ascii=True)
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        connection.execute(
            "UPDATE audit SET details = ?, prev_hash = ?, hash = ? WHERE seq = ?", (details, prev, digest, seq)
        )
        prev = digest
    connection.execute("UPDATE audit SET details = ? WHERE seq = 4", (b"\x00binary",))
    connection.commit()
    result = audit.verify()
    assert not result.ok and result.seq == 2
    assert audit.events(10)[0].details["unreadable"]
