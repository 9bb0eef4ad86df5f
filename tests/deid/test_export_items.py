"""Export items named as the catalog lists them: a series UID, a study UID or a patient ID."""

from __future__ import annotations

from pathlib import Path

import pydicom

from medviewer.catalog.importer import Importer
from medviewer.cli.export import export_main
from tests.support.paths import pydicom_file


def test_a_series_uid_and_a_patient_id_from_the_catalog_export_their_files(tmp_path: Path, capsys):
    ct2 = pydicom_file("dicomdirtests/77654033/CT2/17106").parent
    Importer([ct2]).run()
    first = pydicom.dcmread(next(ct2.iterdir()), stop_before_pixels=True)
    for item in (str(first.SeriesInstanceUID), str(first.PatientID)):
        out = tmp_path / f"out-{len(item)}"
        assert export_main(["--deidentify", "--out", str(out), item]) == 0
        exported = sorted(out.rglob("*.dcm"))
        assert len(exported) == 4
        assert all(pydicom.dcmread(p).PatientIdentityRemoved == "YES" for p in exported)
    assert export_main(["--deidentify", "--out", str(tmp_path / "none"), "1.2.3.4.5"]) == 1
    assert "1.2.3.4.5" in capsys.readouterr().err and not (tmp_path / "none").exists()
