"""``describe`` (behind ``medviewer info``) on every real DICOM data set: geometry, warnings, stacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from medviewer.cli import main
from medviewer.io import describe
from tests.support.paths import real_file


def test_a_siemens_mosaic_is_described_as_the_volume_it_holds():
    info = describe(real_file("dcm_qa_ts/9.dcm"))  # one 384 x 384 frame of 6 x 6 tiles
    assert (info["size"], info["dtype"], info["modality"]) == ([64, 64, 35], "uint16", "MR")
    assert (info["kind"], info["presentation"], info["orientation_known"]) == ("volume", "volume", True)
    assert info["spacing"] == pytest.approx([3.25, 3.25, 3.6])  # dcm2niix's reference NIfTI says the same
    assert info["warnings"] == ["a Siemens MOSAIC: 35 slices unpacked from the tiled image (CSA header)"]
    assert [s["slices"] for s in info["stacks"]] == [1]


def test_sagittal_series(xa30i_dir: Path):
    info = describe(xa30i_dir)
    assert info["size"] == [96, 128, 128] and info["dtype"] == "uint16"
    assert info["spacing"] == pytest.approx([2, 2, 2], abs=1e-4)
    assert info["origin"] == pytest.approx([-100.424, -156.094, -140.776], abs=1e-3)
    assert info["stacks"][0]["orientation"] == "sagittal" and info["stacks"][0]["files"] == 96


def test_tilted_ct(ge_tilt_dir: Path, capsys: pytest.CaptureFixture):
    info = describe(ge_tilt_dir)
    assert info["size"] == [512, 611, 134] and info["dtype"] == "int16"
    assert info["direction"][1] == pytest.approx([0, 0.948324, 0.317305], abs=1e-5)
    assert any("gantry tilt of 18.5 degrees" in w for w in info["warnings"])
    assert main(["info", str(ge_tilt_dir)]) == 0
    out = capsys.readouterr().out
    assert "512 x 611 x 134 voxels, int16" in out and "warning     gantry tilt of 18.5 degrees" in out


def test_4d_epi():
    info = describe(real_file("dcm_qa_stc/2_epiRT_ascending"))
    assert info["size"] == [64, 64, 8]
    assert info["warnings"] == ["the series holds 3 time points; showing time point 1"]
    assert [(s["slices"], s["time_points"], s["frames"]) for s in info["stacks"]] == [(8, 3, 24)]


def test_enhanced_multiframe_files(capsys: pytest.CaptureFixture):
    siemens = describe(real_file("dcm_qa_enh/Siemens_XA10"))
    assert siemens["size"] == [64, 64, 6] and siemens["spacing"] == pytest.approx([3.375, 3.375, 2.4])
    assert [(s["slices"], s["time_points"], s["files"]) for s in siemens["stacks"]] == [(6, 4, 4)]
    philips_path = real_file("dcm_qa_enh/Philips/IM_0027_fMAP.dcm")
    philips = describe(philips_path)
    assert philips["dtype"] == "float32" and philips["size"] == [64, 64, 32]
    assert len(philips["stacks"]) == 2
    assert main(["info", str(philips_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("  stack       ") == 2 and "(ORIGINAL\\PRIMARY\\T1\\FIELD_MAP)" in out


def test_non_uniform_ct(ct2_dir: Path):
    info = describe(ct2_dir)
    assert info["size"] == [16, 16, 165] and info["spacing"][2] == pytest.approx(1.25)
    assert "about 161 slice(s) missing between -99.48 and 103.02 mm; that gap is left empty" in info["warnings"]


def test_info_prints_a_structured_reports_content(capsys: pytest.CaptureFixture):
    from tests.support.paths import pydicom_file

    path = pydicom_file("test-SR.dcm")
    info = describe(path)
    assert (info["kind"], info["title"]) == ("structured report", "Diagnosis")
    assert info["sop_class"] == "Comprehensive SR Storage"
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "structured report" in out and "Diameter: 3 cm" in out


def test_info_says_which_series_a_segmentation_was_drawn_on(capsys: pytest.CaptureFixture):
    import pydicom

    path = real_file("highdicom/seg_image_ct_binary.dcm")
    uid = pydicom.dcmread(path, stop_before_pixels=True).ReferencedSeriesSequence[0].SeriesInstanceUID
    assert describe(path) == {"kind": "segmentation", "path": str(path), "referenced_series": [uid]}
    assert main(["info", str(path)]) == 0
    assert f"drawn on    series {uid}" in capsys.readouterr().out
