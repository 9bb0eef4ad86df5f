"""The command line: info on demo and real files, and clear refusals of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom.data
import pytest

from medviewer import __version__
from medviewer.cli import main
from tests.support.paths import real_file


def run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_info_on_demo_ct_reports_geometry(capsys, demo_dir: Path):
    code, out, _ = run(capsys, "info", str(demo_dir / "ct"), "--json")
    assert code == 0
    info = json.loads(out)
    assert info["kind"] == "volume"
    assert info["modality"] == "CT"
    assert info["size"] == [512, 512, 120]
    assert info["spacing"] == pytest.approx([0.7, 0.7, 2.5])
    assert info["direction"] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert info["warnings"] == []
    code, out, _ = run(capsys, "info", str(demo_dir / "ct"))
    assert "512 x 512 x 120 voxels, int16" in out
    assert "0.7 x 0.7 x 2.5 mm" in out


def test_info_on_real_ct_file(capsys):
    path = pydicom.data.get_testdata_file("CT_small.dcm")
    code, out, _ = run(capsys, "info", path, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["size"] == [128, 128, 1]
    assert info["modality"] == "CT"
    assert info["spacing"][:2] == pytest.approx([0.661468, 0.661468])
    assert info["origin"] == pytest.approx([-158.135803, -179.035797, -75.699997], abs=1e-3)


def test_info_on_real_aperio_slide(capsys):
    code, out, _ = run(capsys, "info", str(real_file("wsi/CMU-1-Small-Region.svs")), "--json")
    assert code == 0
    info = json.loads(out)
    assert info["kind"] == "slide"
    assert info["vendor"] == "aperio"
    assert info["dimensions"] == [2220, 2967]
    assert info["mpp"] == pytest.approx(0.499, abs=1e-3)
    assert info["objective_power"] == 20
    assert set(info["associated_images"]) == {"label", "macro", "thumbnail"}


def test_info_on_demo_slide_text(capsys, demo_dir: Path):
    code, out, _ = run(capsys, "info", str(demo_dir / "slide.tiff"))
    assert code == 0
    assert "20480 x 15360 pixels" in out
    assert "0.5 um/pixel" in out
    assert "levels      4" in out


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda tmp: tmp / "missing.dcm", "no such file or folder"),
        (lambda tmp: (tmp / "empty").mkdir() or tmp / "empty", "no DICOM images were found"),
        (
            lambda tmp: (tmp / "notes.dcm").write_text("Patient history: none\n") and tmp / "notes.dcm",
            "not a DICOM file",
        ),
        (lambda tmp: (tmp / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n") and tmp / "photo.png", "not a format"),
    ],
)
def test_info_refuses_bad_input_with_file_and_reason(capsys, tmp_path: Path, make, reason: str):
    path = make(tmp_path)
    code, out, err = run(capsys, "info", str(path))
    assert code == 1
    assert out == ""
    assert str(path) in err and reason in err
    assert "Traceback" not in err
