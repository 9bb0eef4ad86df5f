"""Logs never hold patient identifiers, and tests cannot reach the network."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pytest_socket import SocketBlockedError

from medviewer.core.logs import setup_logging
from medviewer.io import open_volume
from tests.support.canaries import CANARIES, canary_study
from tests.support.child_process import run_medviewer


@pytest.mark.slow
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
