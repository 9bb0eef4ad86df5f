"""Logs never hold patient identifiers, and tests cannot reach the network."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pytest_socket import SocketBlockedError

from medviewer.core.logs import setup_logging
from medviewer.core.patient import PatientInfo
from medviewer.demo.ct_phantom import CtGeometry
from medviewer.demo.generate import generate_ct_study
from medviewer.io import open_volume
from tests.conftest import run_medviewer

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


def test_logs_hold_no_patient_identifiers(tmp_path: Path, medviewer_home: Path, demo_dir: Path):
    study = canary_study(tmp_path)
    setup_logging()
    volume = open_volume(study)
    assert volume.patient.name.startswith(CANARIES[0])  # the identifiers were really read
    assert run_medviewer("info", str(study), home=medviewer_home).returncode == 0
    fake_nifti = study.parent / f"{CANARIES[0]}.{CANARIES[1]}" / "scan.nii"
    fake_nifti.parent.mkdir()
    fake_nifti.write_text("not a nifti header")
    assert run_medviewer("info", str(fake_nifti), home=medviewer_home).returncode == 1
    broken = study / "IM0003.dcm"
    broken.write_bytes(broken.read_bytes()[:2000])  # truncated file inside the canary study
    (study.parent / f"{CANARIES[1]}.dcm").write_text("not dicom")
    assert run_medviewer("import", str(study.parent), home=medviewer_home).returncode == 0
    run_medviewer(
        "--screenshot",
        str(tmp_path / "shot.png"),
        str(study),
        str(study.parent / f"{CANARIES[1]}.dcm"),
        str(tmp_path / f"{CANARIES[2]}-missing"),
        home=medviewer_home,
    )
    logs = list((medviewer_home / "logs").glob("*"))
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    assert "opened volume" in text and "could not open" in text  # the log did record these events
    assert "import" in text
    for canary in CANARIES + (f"{CANARIES[3][:4]}-{CANARIES[3][4:6]}",):
        assert canary.lower() not in text.lower(), f"log holds identifier {canary}"


def test_network_is_disabled_in_tests():
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
