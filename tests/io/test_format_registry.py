"""The format registry is the one answer to "what is this file?": real files are classified by the format that
reads them, and the open dialog, the catalog import, de-identified export and the log's file tokens all take
their suffixes from it, so a suffix one of them knows is known to all."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from medviewer.catalog import Importer
from medviewer.core.errors import UnsupportedFileError
from medviewer.core.logs import safe_path, setup_logging
from medviewer.deid.export import plan_export
from medviewer.io import ImageKind, classify, open_slide
from medviewer.io.formats import (
    DICOM,
    DICOM_FOLDER,
    DICOM_WSI,
    IMAGE_FORMATS,
    LABEL_MAP_FORMATS,
    NIFTI,
    SLIDE_SUFFIXES,
    WHOLE_SLIDE,
    ImageFormat,
    Support,
    all_suffixes,
    best_format,
    label_map_filter,
    open_filter,
)
from tests.support.paths import XA30I_REF, nibabel_file, pydicom_file, real_file
from tests.support.slides import CMU, TCGA, TINY
from tests.support.slides import DICOM_WSI as DICOM_WSI_FILE

REAL_FILES: dict[str, tuple[Callable[[], Path], ImageFormat]] = {
    "DICOM folder": (lambda: real_file("dcm_qa_stc/2_epiRT_ascending"), DICOM_FOLDER),
    "DICOM CT file": (lambda: pydicom_file("CT_small.dcm"), DICOM),
    "DICOM enhanced MR": (lambda: real_file("dcm_qa_enh/Philips/IM_0027_fMAP.dcm"), DICOM),
    "DICOMDIR": (lambda: pydicom_file("dicomdirtests/DICOMDIR"), DICOM),
    "NIfTI .nii": (lambda: nibabel_file("anatomical.nii"), NIFTI),
    "NIfTI .nii.gz": (lambda: real_file(XA30I_REF), NIFTI),
    "Aperio SVS": (lambda: real_file(CMU), WHOLE_SLIDE),
    "Aperio SVS, JPEG 2000": (lambda: real_file(TCGA), WHOLE_SLIDE),
    "DICOM WSI instance": (lambda: real_file(DICOM_WSI_FILE), DICOM_WSI),
}


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_files_are_recognised_by_the_format_whose_readers_open_them(name: str):
    find, expected = REAL_FILES[name]
    path = find()
    chosen, level = best_format(path, IMAGE_FORMATS)
    assert chosen is expected
    assert level >= Support.CONTENT  # recognised by what the file holds, not only by its name
    assert classify(path) is expected.kind
    if expected.kind is ImageKind.SLIDE:
        with open_slide(path) as slide:
            assert slide.backend in expected.readers


@pytest.mark.parametrize("suffix", [".tif", ".tiff", ".TIF"])
def test_a_tiled_tiff_of_real_pixels_is_a_slide(tmp_path: Path, suffix: str):
    import openslide
    import tifffile

    with openslide.OpenSlide(str(real_file(CMU))) as source:
        pixels = np.asarray(source.read_region((0, 0), 0, (512, 512)).convert("RGB"))
    path = tmp_path / f"slide{suffix}"
    tifffile.imwrite(path, pixels, tile=(256, 256), photometric="rgb", compression="jpeg")
    assert best_format(path, IMAGE_FORMATS) == (WHOLE_SLIDE, Support.NAME_AND_CONTENT)
    assert classify(path) is ImageKind.SLIDE
    with open_slide(path) as slide:
        assert slide.dimensions == (512, 512) and slide.backend in WHOLE_SLIDE.readers


@pytest.mark.parametrize("suffix", SLIDE_SUFFIXES)
def test_a_file_named_as_a_slide_that_is_not_one_is_refused_with_the_slide_readers_reason(tmp_path: Path, suffix: str):
    path = tmp_path / f"notes{suffix}"
    path.write_text("Patient history: none\n" * 10)
    with pytest.raises(UnsupportedFileError) as info:
        classify(path)
    assert info.value.reason == WHOLE_SLIDE.refusal and info.value.path == path


def test_a_file_no_format_claims_is_refused_as_not_a_format_medviewer_opens(tmp_path: Path):
    path = tmp_path / "report.pdf"
    path.write_bytes(b"%PDF-1.7\n" + bytes(200))
    with pytest.raises(UnsupportedFileError, match="not a format medviewer opens"):
        classify(path)


def _offered(dialog_filter: str, title: str) -> list[str]:
    offered, rest = dialog_filter.split(";;")
    assert rest == "All files (*)" and offered.startswith(f"{title} (") and offered.endswith(")")
    return offered.removeprefix(f"{title} (").removesuffix(")").split()


def test_the_open_dialog_offers_every_suffix_an_image_reader_opens_once():
    offered = _offered(open_filter(), "Images")
    assert len(offered) == len(set(offered))
    assert set(offered) == {f"*{s}" for f in IMAGE_FORMATS for s in f.suffixes}
    assert {"*.dcm", "*.dicom", "*.ima", "*.nii", "*.nii.gz", "*.svs", "*.ndpi", "*.vmu", "*.svslide"} <= set(offered)


def test_the_label_map_dialog_offers_nifti_and_dicom_files():
    offered = _offered(label_map_filter(), "Label maps")
    assert set(offered) == {f"*{s}" for f in LABEL_MAP_FORMATS for s in f.suffixes}
    assert {"*.nii", "*.nii.gz", "*.dcm"} <= set(offered)


@pytest.fixture
def every_slide_suffix(tmp_path: Path) -> Path:
    """A folder with a real slide under each suffix the registry gives slides, a DICOM CT, a DICOM slide and a
    text file named as a slide."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    for number, suffix in enumerate(SLIDE_SUFFIXES):  # TINY: a 16x16 Aperio slide, cheap to copy ten times
        shutil.copy(real_file(TINY), folder / f"slide{number}{suffix.upper() if number % 2 else suffix}")
    shutil.copy(pydicom_file("CT_small.dcm"), folder / "ct.dcm")
    shutil.copy(real_file(DICOM_WSI_FILE), folder / "wsi.dcm")
    (folder / "notes.svs").write_text("not a slide")
    return folder


def test_the_catalog_imports_a_slide_under_every_suffix_the_registry_knows(every_slide_suffix: Path):
    report = Importer([every_slide_suffix]).run()
    assert report.slides == len(SLIDE_SUFFIXES) + 1  # and the DICOM slide, found by its header
    assert report.added == 1  # the CT
    assert [Path(u.path).name for u in report.unreadable] == ["notes.svs"]


def test_deidentified_export_takes_every_slide_the_registry_knows(every_slide_suffix: Path):
    plan = plan_export([every_slide_suffix])
    assert sorted(p.name for p in plan.slides) == sorted(
        p.name for p in every_slide_suffix.iterdir() if p.name.startswith("slide")
    )
    assert sorted(p.name for p in plan.dicom) == ["ct.dcm", "wsi.dcm"]  # a DICOM slide by the DICOM profile
    assert [p.name for p in plan.skipped] == ["notes.svs"]


def test_log_tokens_keep_exactly_the_suffixes_the_registry_gives(tmp_path: Path):
    try:
        setup_logging(file_suffixes=all_suffixes())
        for suffix in all_suffixes():
            assert safe_path(tmp_path / f"DOE_JOHN{suffix.upper()}").endswith(f"{suffix}>")
        assert safe_path(tmp_path / "scan.nii.gz").endswith(".nii.gz>")
        assert ".john" not in safe_path(tmp_path / "DOE.JOHN")
        setup_logging()
        assert not safe_path(tmp_path / "CMU-1.svs").endswith(".svs>")
    finally:
        setup_logging()


def test_every_suffix_is_lower_case_with_its_dot_and_named_by_its_format():
    for suffix in all_suffixes():
        assert suffix.startswith(".") and suffix == suffix.lower()
    assert NIFTI.names("BRAIN.NII.GZ") and DICOM.names("/a/IM0001.IMA") and not WHOLE_SLIDE.names("x.dcm")
