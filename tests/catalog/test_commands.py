"""``medviewer import`` / ``medviewer list`` functions, and the privacy of what the import logs."""

from __future__ import annotations

import json
from pathlib import Path

from medviewer.cli.catalog import import_main, list_main
from medviewer.core.logs import setup_logging
from tests.support.canaries import CANARIES, canary_study
from tests.support.paths import REPO


def test_import_and_list(dicomdir_tree: Path, capsys):
    assert import_main([str(dicomdir_tree), str(REPO / "tests/data/wsi/CMU-1-Small-Region.svs")]) == 0
    out = capsys.readouterr().out
    assert "32/32 files" in out
    assert "31 added, 0 updated, 0 unchanged, 1 slides, 0 not imported" in out

    assert list_main([]) == 0
    text = capsys.readouterr().out
    assert "Doe^Archibald [77654033]: 2 studies" in text
    assert "slide " in text and "aperio 2220x2967, 0.499 um/px" in text

    assert list_main(["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sum(len(s["series"]) for p in data["patients"] for s in p["studies"]) == 13
    assert sum(se["instances"] for p in data["patients"] for s in p["studies"] for se in s["series"]) == 31
    assert {se["missing"] for p in data["patients"] for s in p["studies"] for se in s["series"]} == {0}
    assert [s["vendor"] for s in data["slides"]] == ["aperio"]


def test_import_of_nothing_importable_fails(tmp_path: Path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert import_main([str(tmp_path)]) == 1
    assert "notes.txt: not a DICOM file" in capsys.readouterr().out


def test_import_logs_no_patient_identifiers(tmp_path: Path, medviewer_home: Path, capsys):
    study = canary_study(tmp_path)
    (study.parent / f"{CANARIES[1]}.dcm").write_text("not dicom")
    (study / "IM0003.dcm").write_bytes((study / "IM0003.dcm").read_bytes()[:200])
    setup_logging()
    assert import_main([str(study.parent), str(tmp_path / f"{CANARIES[2]}-missing")]) == 0
    assert list_main([]) == 0
    assert CANARIES[0] in capsys.readouterr().out  # the user asked: list prints the name
    text = "\n".join(p.read_text(errors="replace") for p in (medviewer_home / "logs").glob("*"))
    assert "catalog import: 11 added" in text  # the import was logged
    for canary in CANARIES:
        assert canary.lower() not in text.lower(), f"log holds identifier {canary}"
