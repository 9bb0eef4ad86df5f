"""Every file of pydicom's test files, pydicom-data and nibabel's DICOM test files: no traceback, each shown
as the kind it is (a table written by reading the files, not by running the reader), and what is shown
equal to pydicom's own decoding. ``python -m tests.benchmarks.dicom_zoo`` prints the same sweep as a table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.dicom_zoo import ZooRow, sweep_file, totals, zoo_files

pytestmark = pytest.mark.slow

#: What each shown file is, by name, as its SOP class, modality, photometric interpretation, frame count and
#: geometry say when read by hand; every other shown file is a volume (slices placed in the patient).
EXPECTED_KINDS = (
    # 2-D: radiographs (CR, with PatientOrientation), secondary captures and single ultrasound frames, and
    # the enhanced MR test file whose frames carry no position (so they cannot be stacked)
    (r"^(JPEG2000|JPEG2000_UNC|JPGExtended|JPEG-LL|JPEGLSNearLossless_\d+|image_dfl|mlut_18|vlut_04)\.dcm$", "image"),
    (r"^(JPGLosslessP14SV1_1s_1f_8b|RG[13]_(J2K[IR]|UNC[IR]))\.dcm$", "image"),
    (r"^(6154|6247|6278)$", "image"),  # dicomdirtests/77654033/CR1
    (r"^emri_small(_RLE|_big_endian|_jpeg_2k_lossless|_jpeg_ls_lossless)?\.dcm$", "image"),
    # colour: RGB, YBR and palette secondary captures and ultrasound stills
    (r"^(SC_rgb.*|SC_ybr.*|SC_jpeg_no_color_transform(_2)?|US1_(J2K[IR]|UNC[IR])|color-p[lx])\.dcm$", "colour image"),
    (r"^(examples_(palette|rgb_color|jpeg2k)|GDCMJ2K_TextGBR|ExplVR_BigEnd)\.dcm$", "colour image"),
    (r"^gdcm-US-ALOKA-16(_big)?\.dcm$", "colour image"),
    (r"^OT-PAL-8-face\.dcm$", "colour image"),  # no preamble nor file meta: read as pydicom detects it
    (r"^OBXXXX1A(_expb|_rle)?\.dcm$", "colour image"),
    # cine: multi-frame ultrasound
    (r"^(examples_ybr_color|color3d_jpeg_baseline|OBXXXX1A(_expb|_rle)?_2frame)\.dcm$", "cine"),
)
#: Names (or SOP classes) of what is refused, and words the refusal must use.
EXPECTED_REFUSALS = (
    ("liver", "segmentation (SEG)"),
    ("reportsi", "structured report"),
    ("test-SR", "structured report"),
    ("rtplan.dcm", "RT Plan Storage"),
    ("waveform_ecg", "ECG Waveform"),
    ("JPEG-lossy", "JPEG Extended (Process 2 and 4)"),
    ("MR_truncated", "truncated"),
)


def expected_kind(path: Path) -> str:
    """A DICOMDIR opens the largest series of its file set: in pydicom's test set, a CT volume."""
    name = path.name.removesuffix(".gz")
    for pattern, kind in EXPECTED_KINDS:
        if re.match(pattern, name):
            return kind
    return "volume"


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> list[ZooRow]:
    scratch = tmp_path_factory.mktemp("zoo")
    files = zoo_files()
    assert len(files) > 200, "pydicom's test files, pydicom-data and nibabel's files are all installed"
    return [sweep_file(path, scratch) for path in files]


def test_no_file_raises_a_traceback(zoo: list[ZooRow]):
    assert [(row.name, row.reason) for row in zoo if row.outcome == "traceback"] == []


def test_every_shown_file_is_shown_as_the_kind_it_is(zoo: list[ZooRow]):
    shown = [row for row in zoo if row.outcome == "shown"]
    assert len(shown) > 150
    wrong = [(row.name, row.kind, expected_kind(row.path)) for row in shown if row.kind != expected_kind(row.path)]
    assert wrong == []


def test_every_shown_file_has_pydicoms_pixels_after_the_lut_pipeline(zoo: list[ZooRow]):
    counts = totals(zoo)
    assert counts["pixels differ"] == 0, [row.name for row in zoo if row.pixels == "differ"]
    assert counts["pixels equal to pydicom"] >= 150
    compared_elsewhere = [row for row in zoo if row.outcome == "shown" and not row.pixels]
    assert all(row.reason.startswith(("mosaic", "a DICOMDIR")) for row in compared_elsewhere)
    assert counts["shown, pydicom cannot decode"] == 0, [row.name for row in zoo if row.pixels == "no reference"]


def test_refusals_say_what_the_file_is(zoo: list[ZooRow]):
    for fragment, words in EXPECTED_REFUSALS:
        rows = [row for row in zoo if fragment in row.path.name]
        assert rows, fragment
        for row in rows:
            assert row.outcome == "refused" and words in row.reason, (row.name, row.reason)
    assert all(row.reason and "Traceback" not in row.reason for row in zoo if row.outcome == "refused")
