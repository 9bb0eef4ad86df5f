"""A CT study whose patient identifiers are canaries: strings that must never reach a log or an export."""

from __future__ import annotations

from pathlib import Path

from medviewer.core.patient import PatientInfo
from medviewer.demo.ct_phantom import CtGeometry
from medviewer.demo.generate import generate_ct_study

CANARIES = ("ZZCANARYFAMILY", "QQCANARYGIVEN", "CANARY-ID-7731", "19230405", "20190817")


def canary_study(folder: Path) -> Path:
    patient = PatientInfo(
        patient_id=CANARIES[2],
        name=f"{CANARIES[0]}^{CANARIES[1]}",
        birth_date=CANARIES[3],
        study_uid="2.25.1234567",
        study_date=CANARIES[4],
        study_description="CT CHEST",
    )
    target = folder / f"{CANARIES[0]}_{CANARIES[2]}"
    generate_ct_study(target, 11, 1, CtGeometry(shape=(12, 64, 64), pixel_mm=5.0, slice_mm=10.0), 1, patient=patient)
    return target
