"""Stable stand-ins for patient names and IDs, for the anonymised display (teaching, screen sharing).

A pseudonym is a keyed digest of the patient ID (of the name when there is no ID; of the path for a
file alias) under this installation's secret: the same patient gets the same pseudonym in the panel,
the window title and the corner text, in every session, while nobody without the key can test a
guessed name against it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from medviewer.catalog.audit import installation_key

DIGITS = 6


@dataclass(frozen=True)
class Pseudonym:
    name: str
    patient_id: str


def pseudonym(patient_id: str, name: str) -> Pseudonym:
    code = _code(f"id:{patient_id}" if patient_id else f"name:{name}")
    return Pseudonym(name=f"Patient {code}", patient_id=f"ANON-{code}")


def file_alias(kind: str, path: str) -> str:
    """A stand-in for a file or folder name, which can be a patient's name (``SMITH_JOHN.svs``)."""
    return f"{kind} {_code(f'path:{path}')}"


def _code(subject: str) -> str:
    return hmac.new(installation_key(), subject.encode(), hashlib.sha256).hexdigest()[:DIGITS].upper()
