"""The approved-models list: a model file is loaded only if its SHA-256 is on it.

Loading TorchScript runs code from the file, so approval pins the exact bytes a person looked at: a file
changed after approval (retrained, tampered with, damaged) has another hash and is refused until approved
again. Approvals live in ``approved_models.json`` in the settings folder; the demo models are approved out
of the box by ``resources/approved_models.json``, which has the same format. Each entry is
``{"sha256", "name", "version", "file_name", "approved_at"}``, and an approval made by ``approve`` adds
``"source"``: the absolute path of the package (bundle folder or single file) the file was approved from, so
``medviewer.ai.model_lookup`` can find an approved model by its name. Entries without it (written before it
existed, and the built-in list, whose bundles ``available.builtin_bundles`` finds) stay valid.

The weights alone do not decide what a model's outputs mean: a bundle's ``configs/metadata.json`` names the
classes, says whether it is fit for diagnosis and how its input is prepared, and its card is what the person
read. Swapping the class names in the metadata would make a "normal" output read as "lesion". So an entry
also pins ``"pinned"``: the SHA-256 of each of those files (``ModelPackage.pinned``), and a model is loaded
only when its weights and every pinned file are as approved. An entry written before pins existed has none
and asks for approval again.

Every approval and every refusal goes to the audit trail under ``model:<sha256>``. A damaged list is
reported and left as it is: rewriting it would silently revoke or forge approvals.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from medviewer.catalog import audit
from medviewer.core.app_dirs import RESOURCES_DIR, config_dir
from medviewer.core.errors import MedviewerError
from medviewer.io.atomic_write import write_atomic

REGISTRY_FILE_NAME = "approved_models.json"
BUILTIN_FILE = RESOURCES_DIR / REGISTRY_FILE_NAME
CHUNK_BYTES = 1024 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ApprovablePackage(Protocol):
    """What approval reads of a model package (``medviewer.ai.package.ModelPackage`` is one). Declared here
    rather than imported: the package reader asks the registry before it loads a file, so the registry
    naming the reader's class would make each module depend on the other."""

    @property
    def source(self) -> Path: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def weights(self) -> Mapping[str, Path]: ...
    @property
    def pinned(self) -> Mapping[str, str]:
        """SHA-256 of each file beside the weights that approval pins with them, by path in the bundle."""


class UntrustedModelError(MedviewerError):
    """The file's SHA-256 is not on the approved list; ``sha256`` is shown so a person can compare it."""

    def __init__(self, path: str | Path, reason: str, sha256: str) -> None:
        super().__init__(path, reason)
        self.sha256 = sha256


class ModelChangedError(UntrustedModelError):
    """The weights are approved, but a pinned file beside them (``changed``: paths in the bundle) is not the
    one approved with them, or the approval predates pins (``changed`` empty)."""

    def __init__(self, path: str | Path, reason: str, sha256: str, changed: tuple[str, ...]) -> None:
        super().__init__(path, reason, sha256)
        self.changed = changed


class ModelRegistryError(MedviewerError):
    """The approved-models list cannot be read; approvals and loads stop until a person repairs it."""


@dataclass(frozen=True)
class Entry:
    sha256: str
    name: str
    version: str
    file_name: str
    approved_at: str
    builtin: bool = False
    #: The package (bundle folder or single file) the file was approved from, absolute; None when unknown.
    source: str | None = None
    #: SHA-256 of the package's metadata and card at approval, by path in the bundle; None for an entry
    #: written before approvals pinned them (it must be approved again).
    pinned: dict[str, str] | None = None


#: What every stored entry holds; ``source`` is optional.
_STORED_FIELDS = tuple(f.name for f in fields(Entry) if f.name not in ("builtin", "source", "pinned"))


def registry_path() -> Path:
    return config_dir() / REGISTRY_FILE_NAME


def sha256_of(path: Path) -> str:
    """Streamed, so a multi-gigabyte model is hashed without being held in memory."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                digest.update(chunk)
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    return digest.hexdigest()


def _unreadable(path: Path, exc: OSError) -> MedviewerError:
    return MedviewerError(path, f"the model file cannot be read ({exc.strerror or exc})")


def entries() -> list[Entry]:
    """Built-in approvals first, then the user's, in the order they were approved."""
    return _read(BUILTIN_FILE, builtin=True) + _read(registry_path(), builtin=False)


def _read(path: Path, builtin: bool) -> list[Entry]:
    if not path.exists():
        return []
    try:
        stored = json.loads(path.read_bytes())
    except ValueError as exc:
        raise _damaged(path, f"not valid JSON ({exc})") from exc
    except RecursionError:
        raise _damaged(path, "nested too deeply to be a list of entries") from None
    except OSError as exc:
        raise ModelRegistryError(path, f"the approved-models list cannot be read ({exc.strerror})") from exc
    if not isinstance(stored, list):
        raise _damaged(path, f"a JSON {type(stored).__name__}, not a list of entries")
    read: list[Entry] = []
    for number, item in enumerate(stored, start=1):
        if not isinstance(item, dict):
            raise _damaged(path, f"entry {number} is not an object")
        for field in _STORED_FIELDS:
            if not isinstance(item.get(field), str) or not item[field]:
                raise _damaged(path, f"entry {number}: {field} is missing or not a string")
        if not _SHA256.fullmatch(item["sha256"]):
            raise _damaged(path, f"entry {number}: sha256 is not 64 lower-case hexadecimal digits")
        source = item.get("source")
        if source is not None and not (isinstance(source, str) and Path(source).is_absolute()):
            raise _damaged(path, f"entry {number}: source is not an absolute path")
        pinned = item.get("pinned")
        if pinned is not None and not (
            isinstance(pinned, dict) and all(isinstance(v, str) and _SHA256.fullmatch(v) for v in pinned.values())
        ):
            raise _damaged(path, f"entry {number}: pinned is not a map of files to SHA-256")
        fixed = {field: item[field] for field in _STORED_FIELDS}
        read.append(Entry(**fixed, builtin=builtin, source=source, pinned=pinned))
    return read


def _stored(entry: Entry) -> dict[str, object]:
    """An entry as the list holds it: ``source`` only where it is known."""
    stored: dict[str, object] = {field: getattr(entry, field) for field in _STORED_FIELDS}
    if entry.source is not None:
        stored["source"] = entry.source
    if entry.pinned is not None:
        stored["pinned"] = entry.pinned
    return stored


def _damaged(path: Path, problem: str) -> ModelRegistryError:
    return ModelRegistryError(
        path, f"the approved-models list is damaged: {problem}; it was left as it is, repair or remove it"
    )


def is_approved(path: Path, package: ApprovablePackage) -> bool:
    """Whether ``path``, a weights file of ``package``, is approved with the package's metadata and card."""
    return _refusal(sha256_of(path), package) is None


def read_approved(path: Path, package: ApprovablePackage) -> tuple[bytes, str]:
    """The file's bytes and SHA-256, checked with the package's pinned files: torch is handed exactly the
    bytes that were approved, and only while the metadata and card are those that were approved with them."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _unreadable(path, exc) from exc
    digest = hashlib.sha256(data).hexdigest()
    refusal = _refusal(digest, package)
    if refusal is not None:
        audit.record("model_refused", "model:" + digest, {"file": path.name, "reason": refusal.reason})
        if refusal.reason == "not approved":
            raise UntrustedModelError(path, refusal.message, digest)
        raise ModelChangedError(path, refusal.message, digest, refusal.changed)
    return data, digest


def _pins_match(entry: Entry, package: ApprovablePackage) -> bool:
    """The entry approved the package's metadata and card as they are now; a single file has nothing beside
    its weights to pin, so an entry from before pins still holds for it."""
    return (entry.pinned if entry.pinned is not None else {}) == package.pinned


@dataclass(frozen=True)
class _Refusal:
    """Why a file is not loaded: the audit trail's reason, the sentence for a person, the pinned files that
    changed."""

    reason: str
    message: str
    changed: tuple[str, ...] = ()


def _refusal(digest: str, package: ApprovablePackage) -> _Refusal | None:
    """Why the file is not to be loaded, or None."""
    approve_again = f"approve it with 'medviewer models add {package.source}' after reading its card"
    same_weights = [entry for entry in entries() if entry.sha256 == digest]
    if not same_weights:
        # Bundles all name their weights models/model.ts, so a name cannot tell a changed file from another
        # model's: the message says both.
        return _Refusal(
            "not approved",
            f"SHA-256 {digest} is not in the approved models list (a file changed after its approval has a new "
            f"hash), so it is not loaded; {approve_again}",
        )
    if any(_pins_match(entry, package) for entry in same_weights):
        return None
    if all(entry.pinned is None for entry in same_weights):
        return _Refusal(
            "metadata not pinned",
            "was approved before approvals covered the model's metadata and card, so it is not loaded; "
            f"{approve_again}",
        )
    if not package.pinned:
        # The file alone is read with the metadata inside it, which may not say what the approved bundle's did.
        return _Refusal(
            "approved in a bundle",
            "was approved as part of a bundle, with the bundle's configs/metadata.json and card, and is read here "
            f"on its own with the metadata inside it, so it is not loaded; run the bundle folder, or {approve_again}",
        )
    # Compared with this package's own approval where it has one, else with the first that pins anything.
    source = str(Path(package.source).resolve())
    pinning = sorted((entry for entry in same_weights if entry.pinned is not None), key=lambda e: e.source != source)
    approved = pinning[0].pinned or {}
    changed = tuple(sorted(n for n in {*approved, *package.pinned} if approved.get(n) != package.pinned.get(n)))
    return _Refusal(
        "metadata changed",
        f"{' and '.join(changed)} changed since the model was approved (what its outputs mean may have changed), "
        f"so it is not loaded; {approve_again}",
        changed,
    )


def approve(path: Path, package: ApprovablePackage, shown_sha256: str | None = None) -> Entry:
    """Add one weights file of ``package`` to the user's list, with the package's path as its ``source``.

    Already approved: the existing entry; a user's entry with no source, or one whose source is gone, gets
    this package's path (the same bytes, found here), so ``model_lookup`` can find it by name.

    ``shown_sha256`` is the hash the person approved on screen; if the file no longer has it, nothing is
    approved, so a file swapped while the question was open is not approved in its stead."""
    path = Path(path)
    if path not in package.weights.values():
        raise ValueError(f"{path} is not one of the weights files of {package.name} {package.version}")
    digest = sha256_of(path)
    if shown_sha256 is not None and digest != shown_sha256:
        raise UntrustedModelError(
            path, f"changed while it was being approved: SHA-256 {digest}, shown {shown_sha256}; not approved", digest
        )
    own = _read(registry_path(), builtin=False)  # read before writing: a damaged list raises, never overwritten
    source = str(Path(package.source).resolve())
    existing = next(
        (
            entry
            for entry in _read(BUILTIN_FILE, builtin=True) + own
            if entry.sha256 == digest and _pins_match(entry, package)
        ),
        None,
    )
    if existing is not None:
        if existing.builtin or (existing.source is not None and Path(existing.source).exists()):
            return existing
        # Approved before sources were recorded, or its package has moved: the same bytes, now found here.
        # No approval changes, so nothing is audited; only where the package lies is written down.
        located = replace(existing, source=source)
        _write([located if entry is existing else entry for entry in own])
        return located
    entry = Entry(
        sha256=digest,
        name=package.name,
        version=package.version,
        file_name=path.name,
        approved_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source=source,
        pinned=dict(package.pinned),
    )
    # Audited first: an approval that could not be audited must not take effect.
    audit.record(
        "model_approved",
        "model:" + digest,
        {"name": package.name, "version": package.version, "file": path.name, "pinned": dict(package.pinned)},
    )
    # This approval replaces the one of the same file from the same package with other pins: the person
    # approved the package as it is now, and going back to what it was asks again.
    kept = [old for old in own if not (old.sha256 == digest and old.source == source)]
    _write([*kept, entry])
    return entry


def _write(own: list[Entry]) -> None:
    try:
        write_atomic(registry_path(), (json.dumps([_stored(e) for e in own], indent=2) + "\n").encode())
    except OSError as exc:
        raise ModelRegistryError(
            registry_path(), f"the approved-models list cannot be written ({exc.strerror})"
        ) from exc
