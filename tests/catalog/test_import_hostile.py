"""An import goes on past every bad file, records each with its reason, and when it is killed leaves no
process behind and what it had written on the audit trail."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid

from medviewer.catalog import audit
from medviewer.catalog.importer import POOL_THRESHOLD, Importer
from tests.conftest import DATA

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
