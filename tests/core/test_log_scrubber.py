"""The log filter hides every identifier a reader met, whatever their number or length, in one pass."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medviewer.core import logs
from medviewer.core.logs import MAX_MESSAGE, REDACTED, RedactingFilter, register_identifiers
from medviewer.io.dicom_series import read_header


@pytest.fixture(autouse=True)
def fresh_identifiers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what each test registers: the list is process-wide, and other tests' files register words."""
    monkeypatch.setattr(logs, "_by_prefix", {})
    monkeypatch.setattr("medviewer.io.dicom_series._registered", set())


def _logged(message: str) -> str:
    record = logging.LogRecord("medviewer.test", logging.INFO, __file__, 1, "%s", (message,), None)
    RedactingFilter().filter(record)
    return record.getMessage()


def test_a_real_headers_name_and_id_are_hidden_in_any_case_and_spelling(tmp_path: Path):
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    source.PatientName = "Quillfeather^Ondine"
    source.PatientID = "QX-771204"
    copy = tmp_path / "ct.dcm"
    source.save_as(copy)
    read_header(copy)  # a reader registers what it meets

    logged = _logged("opened QUILLFEATHER^ONDINE (quillfeather ondine, id QX-771204) and Ondine's file")
    assert "quillfeather" not in logged.lower() and "ondine" not in logged.lower() and "QX-771204" not in logged
    assert logged.count(REDACTED) == 4
    # whole words only: a longer word that merely contains a registered one is not damaged
    assert _logged("Ondineville") == "Ondineville"


def test_a_ten_megabyte_name_is_hidden_and_the_message_capped(tmp_path: Path):
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    name = "Zq" + "w" * 10_000_000
    source.PatientName = name
    copy = tmp_path / "ct.dcm"
    source.save_as(copy)
    read_header(copy)

    started = time.perf_counter()
    logged = _logged(f"the header said {name} and stopped")
    seconds = time.perf_counter() - started
    assert "zqwww" not in logged.lower()
    assert logged.startswith(f"the header said {REDACTED}")
    assert len(logged) < MAX_MESSAGE + 100 and logged.endswith("more characters not logged]")
    assert seconds < 5, f"scrubbing one capped message took {seconds:.1f} s (it took 10 s and more before)"


@pytest.mark.slow
def test_thousands_of_identifiers_cost_one_pass():
    register_identifiers(f"Canary{n:05d}^Person" for n in range(5000))
    logged = _logged("seen: canary04999^person, Canary00000 and nobody else")
    assert logged == f"seen: {REDACTED}, {REDACTED} and nobody else"
