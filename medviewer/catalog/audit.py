"""An append-only, hash-chained audit trail of who opened, analysed and exported which study, and when.

Each row's hash covers its own fields and the previous row's hash, so editing or deleting a row with
sqlite3 directly (after dropping the triggers that refuse UPDATE and DELETE) breaks the chain at that row
and ``verify`` names it. The hash is an HMAC keyed by a secret kept outside the database (``audit.key``
in the settings folder, readable by its owner only): someone who can edit the database but cannot read
the key cannot recompute the chain after an edit. The trail lives in its own file, ``audit.sqlite`` in
the data folder, so the catalog can be rebuilt or deleted without losing it. Subjects are path digests
or UIDs and details are facts about images, never patient names or IDs: the trail is read by auditors
who need not see them.

A chain cannot show that its newest rows were removed, or that the whole file was replaced by an older
copy, emptied or deleted: what is left is still a valid chain. So each append also writes an anchor, the
number of rows and the last row's hash under the same key, to two files outside the database:
``audit.anchor`` in the data folder beside it and in the settings folder beside the key (not inside
``medviewer.ini``, which Qt's QSettings owns and rewrites whole). ``verify`` opens the database read-only
and reports a missing or unreadable database, a missing table, an anchor that does not match the row it
names or names a row that is gone, and anchors that disagree. What it cannot stop: someone who can run as
the user can read the key and rewrite the database and both anchors consistently; the trail detects
accidents and tampering by anyone without the user's own account.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from medviewer.catalog.schema import enable_wal
from medviewer.core.app_dirs import config_dir, data_dir
from medviewer.core.errors import MedviewerError
from medviewer.io.atomic_write import write_atomic

log = logging.getLogger(__name__)

AUDIT_FILE_NAME = "audit.sqlite"
AUDIT_KEY_NAME = "audit.key"
ANCHOR_NAME = "audit.anchor"
EVENTS = (
    "import",
    "open",
    "inference",
    "annotation_save",
    "export",
    "failed_open",
    "model_approved",
    "model_refused",
)
GENESIS_HASH = "0" * 64
BUSY_TIMEOUT_MS = 10_000

#: Run inside each append's transaction (executescript would commit first): a table dropped since the
#: connection opened is made again, and the anchors say how many rows went with it.
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit (seq INTEGER PRIMARY KEY, time TEXT NOT NULL, event TEXT NOT NULL,"
    " subject TEXT NOT NULL, details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END",
)

_local = threading.local()


class AuditTrailError(MedviewerError):
    """The audit database cannot be read or written (truncated, overwritten, not a database, locked for
    longer than the busy timeout): what was to be recorded is not, and the caller's action stops here."""


@dataclass(frozen=True)
class AuditEvent:
    seq: int
    time: str
    event: str
    subject: str
    details: dict
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class VerifyResult:
    """``ok`` with the number of rows checked, or the first row (``seq``) where the chain breaks and why."""

    ok: bool
    checked: int
    seq: int | None = None
    problem: str | None = None


def audit_path() -> Path:
    return data_dir() / AUDIT_FILE_NAME


def path_subject(path: str | Path) -> str:
    """A subject for a file or folder: a keyed digest of its absolute path, as folder names can be patient
    names (keyed, so a guessed name such as /data/SMITH^JOHN cannot be checked against the trail)."""
    text = str(Path(path).expanduser().absolute()).encode()
    return "path:" + hmac.new(installation_key(), text, hashlib.sha256).hexdigest()[:24]


def _connection() -> sqlite3.Connection:
    """One connection per thread and per database file (tests switch the data folder between cases),
    opened again when the file at the path is no longer the one it has open: appending to a deleted or
    replaced file would keep the anchors in step with a trail nobody reads, and hide the swap."""
    connections: dict[Path, sqlite3.Connection] = _local.__dict__.setdefault("connections", {})
    identities: dict[Path, tuple[int, int] | None] = _local.__dict__.setdefault("identities", {})
    path = audit_path()
    connection = connections.get(path)
    if connection is not None and identities.get(path) != _identity(path):
        connection.close()
        connection = None
    if connection is None:
        connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            enable_wal(connection)
        except sqlite3.DatabaseError:
            connection.close()
            raise
        connections[path], identities[path] = connection, _identity(path)
    return connection


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def installation_key() -> bytes:
    """This installation's secret (32 random bytes, owner-only permissions, made on first use).

    It keys the audit trail's digests and the display pseudonyms, so neither can be reproduced, or
    reversed by guessing, on another machine."""
    return _key_in(config_dir() / AUDIT_KEY_NAME)


@functools.cache
def _key_in(path: Path) -> bytes:
    """Read once per process: ``verify`` hashes every row with it."""
    if not path.exists():
        # Written whole under a temporary name, then published with link(), which fails if another thread or
        # process published first: nobody ever reads a half-written key.
        temporary = path.with_name(f".{AUDIT_KEY_NAME}.{secrets.token_hex(6)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(secrets.token_bytes(32))
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return path.read_bytes()


def _row_hash(seq: object, time: object, event: object, subject: object, details: object, prev_hash: object) -> str:
    canonical = json.dumps(
        [seq, time, event, subject, details, prev_hash], separators=(",", ":"), ensure_ascii=True, default=repr
    )
    return hmac.new(installation_key(), canonical.encode(), hashlib.sha256).hexdigest()


def _canonical_details(event: str, details: Mapping[str, object] | None) -> str:
    text = json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    if event == "inference" and "model_hash" not in (details or {}):
        raise ValueError("an inference event must name the model by its hash (details['model_hash'])")
    return text


def record(event: str, subject: str, details: Mapping[str, object] | None = None) -> AuditEvent:
    """Append one event; ``subject`` is a UID or ``path_subject`` digest, ``details`` facts without identifiers."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}; expected one of {', '.join(EVENTS)}")
    details_text = _canonical_details(event, details)
    try:
        connection = _connection()
        with _write_lock(connection):  # serialises writers across threads and processes
            for statement in _SCHEMA:
                connection.execute(statement)
            time = datetime.now(UTC).isoformat(timespec="microseconds")  # inside the lock: times follow seq
            last = connection.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            digest = _row_hash(seq, time, event, subject, details_text, prev_hash)
            connection.execute(
                "INSERT INTO audit (seq, time, event, subject, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, time, event, subject, details_text, prev_hash, digest),
            )
        _advance_anchors(connection, seq)
    except sqlite3.DatabaseError as exc:
        raise AuditTrailError(audit_path(), f"the audit trail cannot be written ({exc})") from exc
    return AuditEvent(seq, time, event, subject, json.loads(details_text), prev_hash, digest)


@contextmanager
def _write_lock(connection: sqlite3.Connection) -> Iterator[None]:
    """A transaction holding SQLite's write lock, committed on success and rolled back otherwise."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with suppress(sqlite3.Error):  # a damaged file can refuse the rollback too; the first error says why
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _advance_anchors(connection: sqlite3.Connection, appended: int) -> None:
    """Move both anchors to the newest row, under the write lock so that they only ever move forward, and
    only while they still pin this database: once rows they name are gone or differ they stay as they are,
    and ``verify`` goes on reporting it however many events are recorded after (an append does not hide a
    wipe or a rollback). They are written after the row's commit: an anchor written before could name a row
    a crash never committed. A new trail (no anchor yet, and this call's row the first) gets its first."""
    with _write_lock(connection):
        last_seq, last_hash = connection.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        anchors = {where: anchor for where in anchor_paths() if (anchor := _read_anchor(where)) is not None}
        if not anchors and appended != 1:
            log.warning("audit anchors not written: both are missing from a trail of %d events", last_seq)
            return

        def hash_at(seq: int) -> str | None:
            row = connection.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
            return row[0] if row else None

        for where, anchor in anchors.items():
            problem = _anchor_problem(where, anchor, last_seq, hash_at)
            if problem is not None:
                log.warning("audit anchors left unchanged: %s", problem)
                return
        _write_anchors(last_seq, last_hash)


def anchor_paths() -> tuple[Path, Path]:
    """The two anchors: beside the database, and in the settings folder beside the key."""
    return data_dir() / ANCHOR_NAME, config_dir() / ANCHOR_NAME


def _anchor_mac(count: int, last_hash: str) -> str:
    return hmac.new(installation_key(), f"anchor:{count}:{last_hash}".encode(), hashlib.sha256).hexdigest()


def _write_anchors(count: int, last_hash: str) -> None:
    text = json.dumps({"count": count, "last_hash": last_hash, "mac": _anchor_mac(count, last_hash)}) + "\n"
    for path in anchor_paths():
        write_atomic(path, text.encode())


def _read_anchor(path: Path) -> tuple[int, str] | str | None:
    """(count, last hash) of an anchor; a sentence when it is damaged or forged; None when there is none."""
    try:
        stored = json.loads(path.read_bytes())
        count, last_hash, mac = int(stored["count"]), str(stored["last_hash"]), str(stored["mac"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"the anchor {path} cannot be read ({type(exc).__name__})"
    if not hmac.compare_digest(mac, _anchor_mac(count, last_hash)):
        return f"the anchor {path} was changed (its MAC does not match)"
    return count, last_hash


def verify() -> VerifyResult:
    """Check the database against its anchors, read-only: the first gap, edit or re-linked row, or what is
    wrong with the whole (missing, unreadable, emptied, rolled back, newest rows removed)."""
    path = audit_path()
    anchors = {where: _read_anchor(where) for where in anchor_paths()}
    if not path.exists():
        if any(anchor is not None for anchor in anchors.values()):
            return VerifyResult(False, 0, problem=f"the audit database {path} is missing (deleted or moved)")
        if (config_dir() / AUDIT_KEY_NAME).exists():
            return VerifyResult(
                False, 0, problem=f"the audit database {path} and both its anchors are missing, but the key is not"
            )
        return VerifyResult(True, 0, problem="no audit trail yet")
    try:
        rows = _read_only_rows(path)
    except sqlite3.Error as exc:
        return VerifyResult(False, 0, problem=f"the audit database {path} cannot be read ({exc})")
    chain = _verify_chain(rows)
    if not chain.ok:
        return chain
    for where, anchor in anchors.items():
        problem = _anchor_problem(where, anchor, len(rows), lambda seq: rows[seq - 1][6] if seq <= len(rows) else None)
        if problem:
            return VerifyResult(False, len(rows), problem=problem)
    counts = {anchor[0] for anchor in anchors.values() if isinstance(anchor, tuple)}
    if len(counts) > 1 and max(counts) - min(counts) > 1:  # one behind is two appends racing; more is not
        disagree = " and ".join(map(str, sorted(counts)))
        return VerifyResult(False, len(rows), problem=f"the anchors disagree: they record {disagree} events")
    return chain


def _read_only(path: Path) -> sqlite3.Connection:
    """Reading the trail (verify, show) never creates, repairs or migrates anything."""
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)


def _read_only_rows(path: Path) -> list[tuple]:
    """Every row, or sqlite3.DatabaseError naming what is wrong with the file."""
    connection = _read_only(path)
    try:
        has_table = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit'")
        if has_table.fetchone() is None:
            raise sqlite3.DatabaseError("it has no audit table: emptied, or the table was dropped")
        return connection.execute(
            "SELECT seq, time, event, subject, details, prev_hash, hash FROM audit ORDER BY seq"
        ).fetchall()
    finally:
        connection.close()


def _verify_chain(rows: list[tuple]) -> VerifyResult:
    expected_seq, expected_prev = 1, GENESIS_HASH
    for seq, time, event, subject, details, prev_hash, digest in rows:
        if seq != expected_seq:
            missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq} to {seq - 1}"
            return VerifyResult(False, expected_seq - 1, expected_seq, f"row {missing} is missing")
        if prev_hash != expected_prev:
            return VerifyResult(False, seq - 1, seq, "its link to the previous row was changed")
        if _row_hash(seq, time, event, subject, details, prev_hash) != digest:
            return VerifyResult(False, seq - 1, seq, "its contents were changed after it was recorded")
        expected_seq, expected_prev = seq + 1, digest
    return VerifyResult(True, len(rows))


def _anchor_problem(
    where: Path, anchor: tuple[int, str] | str | None, last_seq: int, hash_at: Callable[[int], str | None]
) -> str | None:
    """What is wrong between one anchor and a database whose newest row is ``last_seq`` (``hash_at`` gives a
    row's hash); None when the anchor pins it (an anchor behind the newest rows is a crash between a commit
    and its anchor, and still pins every row it names)."""
    if anchor is None:
        return (
            f"the anchor {where} is missing: removal of the newest rows cannot be ruled out"
            if last_seq
            else f"the anchor {where} is missing"
        )
    if isinstance(anchor, str):
        return anchor
    count, last_hash = anchor
    if count > last_seq:
        return (
            f"the anchor {where} records {count} events but the database holds {last_seq}: the newest rows were "
            "removed, or an older copy of the database was put back"
        )
    if count and hash_at(count) != last_hash:
        return (
            f"row {count} does not match the anchor {where}: rows were removed and others recorded in their "
            "place, or the database was replaced"
        )
    return None


def events(limit: int = 100, event: str | None = None) -> list[AuditEvent]:
    """The newest ``limit`` events, newest first, optionally of one kind (a damaged row's details show as
    ``{"unreadable": ...}``; ``verify`` says which row it is)."""
    path = audit_path()
    if not path.exists():
        return []
    query = "SELECT seq, time, event, subject, details, prev_hash, hash FROM audit"
    query += " WHERE event = ?" if event else ""
    try:
        connection = _read_only(path)
        try:
            rows = connection.execute(query + " ORDER BY seq DESC LIMIT ?", (event, limit) if event else (limit,))
            found = rows.fetchall()
        finally:
            connection.close()
    except sqlite3.DatabaseError as exc:
        raise AuditTrailError(path, f"the audit trail cannot be read ({exc})") from exc
    return [AuditEvent(r[0], r[1], r[2], r[3], _details(r[4]), r[5], r[6]) for r in found]


def _details(stored: object) -> dict:
    if not isinstance(stored, (str, bytes, bytearray)):
        return {"unreadable": repr(stored)[:80]}
    try:
        value = json.loads(stored)
    except ValueError:
        return {"unreadable": repr(stored)[:80]}
    return value if isinstance(value, dict) else {"unreadable": repr(value)[:80]}
