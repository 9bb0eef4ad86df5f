"""An import goes on past every bad file, records each with its reason, and when it is killed leaves no
process behind and what it had written on the audit trail."""

from __future__ import annotations

import dataclasses
import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.tag import Tag
from pydicom.uid import generate_uid

from medviewer.catalog import audit, headers
from medviewer.catalog.importer import POOL_THRESHOLD, Importer, ImportReport, _write_rows
from medviewer.catalog.schema import connect
from medviewer.catalog.writer import CatalogWriter, InstanceRow
from tests.support.paths import DATA

WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


def _ge_series(folder: Path) -> int:
    """The 28 real GE head CT slices of tests/data, unzipped."""
    folder.mkdir(parents=True)
    sources = sorted((DATA / "dcm_qa_ct_ge").glob("*.dcm.gz"))
    for source in sources:
        (folder / source.name.removesuffix(".gz")).write_bytes(gzip.decompress(source.read_bytes()))
    return len(sources)


def test_an_import_carries_on_past_bad_files_and_names_each(tmp_path: Path):
    study = tmp_path / "study"
    good = _ge_series(study / "ct")
    liar = pydicom.dcmread(study / "ct" / "01.dcm")
    liar.SOPClassUID = WSI_SOP_CLASS  # a CT that says it is a whole-slide image
    liar.SOPInstanceUID = generate_uid()
    liar.save_as(study / "liar.dcm")
    data = (study / "ct" / "02.dcm").read_bytes()
    (study / "cut.dcm").write_bytes(data[:400])
    (study / "notes.dcm").write_bytes(b"not an image at all")

    report = Importer([study]).run()

    assert report.added == good
    reasons = {Path(item.path).name: item.reason for item in report.unreadable}
    assert set(reasons) == {"liar.dcm", "cut.dcm", "notes.dcm"}
    assert "TotalPixelMatrix" in reasons["liar.dcm"] or "declares no size" in reasons["liar.dcm"]
    assert reasons["notes.dcm"] == "not a DICOM file"
    (closing,) = [e for e in audit.events(event="import") if "batch" not in e.details]
    assert closing.details["added"] == good and closing.details["unreadable"] == 3
    assert audit.verify().ok


def _raw_copy(source: Path, target: Path, tag: int, vr: str, value: bytes) -> None:
    """A copy of ``source`` whose element ``tag`` holds ``value`` as stored bytes (pydicom would refuse to
    write such a value through its attribute setters)."""
    ds = pydicom.dcmread(source)
    ds.SOPInstanceUID = generate_uid()
    ds._dict[Tag(tag)] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)
    ds.save_as(target)


def test_header_values_the_catalog_cannot_use_do_not_cost_the_file(tmp_path: Path):
    """A 23-digit InstanceNumber (more than SQLite's integer holds) stopped the whole import; a PixelSpacing
    of "abc" made the file unreadable. Each is a file of the series with one value it cannot use."""
    study = tmp_path / "study"
    good = _ge_series(study / "ct")
    first = study / "ct" / "01.dcm"
    _raw_copy(first, study / "huge.dcm", 0x00200013, "IS", b"99999999999999999999999 ")
    _raw_copy(first, study / "words.dcm", 0x00280030, "DS", b"abc\\1e99")
    _raw_copy(first, study / "nan.dcm", 0x00280030, "DS", b"nan\\inf ")
    _raw_copy(first, study / "rows.dcm", 0x00280010, "US", b"\x01")  # one byte of a two-byte value

    report = Importer([study]).run()

    assert (report.added, report.unreadable) == (good + 4, [])
    conn = connect()
    numbers = dict(conn.execute("SELECT source_path, instance_number FROM instances"))
    spacings = {row[0] for row in conn.execute("SELECT spacing FROM series")}
    conn.close()
    assert numbers[str(study / "huge.dcm")] is None and numbers[str(first)] == 1
    assert spacings <= {"", "0.488281\\0.488281\\4"}  # never "nan" or "abc"


def test_a_row_the_catalog_refuses_is_named_and_the_rest_of_its_batch_written(tmp_path: Path):
    """Whatever value reaches SQLite and is refused there costs that file, not its batch of 250."""
    folder = tmp_path / "ct"
    _ge_series(folder)
    paths = sorted(str(path) for path in folder.glob("*.dcm"))
    rows = [InstanceRow(h, p, p, 1, 1) for p, h in zip(paths, headers.read_many(paths), strict=True)]
    rows[3] = dataclasses.replace(rows[3], header=dataclasses.replace(rows[3].header, instance_number=10**20))
    conn = connect()
    report = ImportReport()
    written, _ = _write_rows(CatalogWriter(conn), rows, [], report)
    stored = {path for (path,) in conn.execute("SELECT source_path FROM instances")}
    conn.close()
    assert stored == set(paths) - {paths[3]} and [row.source_path for row in written] == sorted(stored)
    (refused,) = report.unreadable
    assert refused.path == paths[3] and refused.reason.endswith("cannot store (OverflowError)")


class PanicException(BaseException):  # noqa: N818 - pyo3's name, which is how medviewer recognises a panic
    """What a Rust decoder raises when it panics: past every ``except Exception``."""


def test_any_failure_of_a_header_read_is_that_files_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A decoder's panic or a RecursionError while reading one header is listed against that file."""
    study = tmp_path / "study"
    good = _ge_series(study)
    real_read = headers.read_catalog_header
    failures = {"05.dcm": PanicException("index out of bounds"), "07.dcm": RecursionError("deep")}

    def read(path: str) -> headers.Header:
        if Path(path).name in failures:
            raise failures[Path(path).name]
        return real_read(path)

    monkeypatch.setattr(headers, "read_catalog_header", read)
    report = Importer([study]).run()
    reasons = {Path(item.path).name: item.reason for item in report.unreadable}
    assert report.added == good - 2
    assert reasons == {
        "05.dcm": "the DICOM header is damaged: its decoder failed (PanicException)",
        "07.dcm": "the DICOM header is nested too deeply to read (damaged or hostile)",
    }
    assert audit.verify().ok


def _processes() -> dict[int, list[str]]:
    """Every process's fields from /proc/<pid>/stat after its name (state, parent, group, session, ...)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                found[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
    return found


def _descendants(pid: int) -> list[int]:
    """Processes whose parent chain leads to ``pid``."""
    parents = {child: int(fields[1]) for child, fields in _processes().items()}
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _session(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    return [pid for pid, fields in _processes().items() if int(fields[3]) == sid and fields[0] != "Z"]


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_import_leaves_no_process_and_its_written_batches_audited(tmp_path: Path, medviewer_home: Path):
    source = pydicom.dcmread(gzip.open(DATA / "dcm_qa_ct_ge" / "01.dcm.gz"))
    folder = tmp_path / "many"
    folder.mkdir()
    for number in range(POOL_THRESHOLD * 3):  # enough for the worker pool, and for minutes of work on 2 cores
        source.SOPInstanceUID = generate_uid()
        source.InstanceNumber = number
        source.save_as(folder / f"{number:05d}.dcm")
    env = {**os.environ, "MEDVIEWER_HOME": str(medviewer_home)}
    importer = subprocess.Popen(
        [sys.executable, "-m", "medviewer", "import", str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        start_new_session=True,
    )
    done = 0
    while done < 500:  # two batches written and audited
        line = importer.stdout.readline()
        assert line, "the import ended before it could be killed"
        done = int(line.split("/")[0])
    workers = _descendants(importer.pid)
    assert workers, "the import runs no worker processes"
    os.kill(importer.pid, signal.SIGKILL)
    importer.wait()
    deadline = time.monotonic() + 10
    while _session(importer.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _session(importer.pid) == [], "processes of the killed import are still running"
    assert importer.stdout.read() == ""  # nobody holds its output open: a reader is not left waiting

    check = subprocess.run(
        [sys.executable, "-m", "medviewer", "audit", "verify"], capture_output=True, text=True, env=env, timeout=120
    )
    assert check.returncode == 0, check.stderr
    shown = subprocess.run(
        [sys.executable, "-m", "medviewer", "audit", "show", "--event", "import"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    ).stdout
    assert '"batch": true' in shown and sum(1 for line in shown.splitlines() if '"added": 250' in line) >= 2
