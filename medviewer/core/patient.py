"""Who an image belongs to, kept apart from image facts so it is never logged by accident."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PatientInfo:
    """Identifying facts for display in the patient panel only.

    ``repr`` hides the values: an object printed into a log or an error message says nothing about
    the person.
    """

    patient_id: str = ""
    name: str = ""
    birth_date: str = ""
    study_uid: str = ""
    study_date: str = ""
    study_description: str = ""

    def __repr__(self) -> str:
        return "PatientInfo(<hidden>)"

    __str__ = __repr__

    @property
    def display_name(self) -> str:
        return display_name(self.name)


def display_name(name: str) -> str:
    """DICOM's ``FAMILY^GIVEN`` as people write it: ``FAMILY, GIVEN``."""
    parts = [p for p in name.split("^") if p]
    return ", ".join(parts[:2]) if parts else "(no name)"
