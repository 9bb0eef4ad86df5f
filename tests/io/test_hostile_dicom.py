"""Damaged and hostile copies of real DICOM files: each ends in a typed error naming the file and the cause, or
in an image whose unusable values are named in its warnings, and never in gigabytes or minutes.

The files that declare more than they hold are opened in a child process limited to a few GiB of address
space and two minutes (``dicom_mutations.open_in_child``); before the readers bounded their loops and
allocations, these took 7.7 GB and 49 s (a billion one-pixel frames), 8 GB (65535 x 65535 RLE) and more
than a minute without end (a 2^32-pixel slide).
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import DeflatedExplicitVRLittleEndian

from medviewer.core.errors import CorruptFileError, MedviewerError, is_decoder_panic
from medviewer.io import open_volume
from medviewer.io.dicom_frames import frame_records
from medviewer.io.dicom_pixels import read_pixels
from medviewer.io.dicom_series import DicomFile
from medviewer.io.memory_guard import MEMORY_FRACTION_VARIABLE, TooLargeError, physical_memory
from tests.support.dicom_mutations import (
    ct_slices_at,
    dicom,
    one_pixel_frames,
    open_in_child,
    rle_declaring,
    save,
    set_raw,
    wsi_with,
)
from tests.support.mutation_corpus import _rle_pixel_damage

GE_CT = Path(__file__).resolve().parents[1] / "data" / "dcm_qa_ct_ge"
#: What refusing a file may cost on top of the interpreter and the readers' imports.
REFUSAL_PEAK_MIB = 400


def test_a_billion_one_pixel_frames_are_refused_in_bounded_memory_and_time(tmp_path: Path):
    """Refused by the budget (each frame's record costs memory too) or by what the file holds, whichever the
    machine's memory decides first: either way before a record is made."""
    path = one_pixel_frames(tmp_path, 1_000_000_000)
    result = open_in_child("volume", path, {MEMORY_FRACTION_VARIABLE: "1"})
    assert result["outcome"] == "refused" and result["path"] == str(path), result
    assert "1000000000 frames" in result["reason"]
    assert result["peak_mib"] < REFUSAL_PEAK_MIB and result["seconds"] < 30, result


def test_frames_the_native_pixel_data_cannot_hold_are_refused_naming_what_it_holds(tmp_path: Path):
    path = one_pixel_frames(tmp_path, 100)
    with pytest.raises(CorruptFileError) as caught:
        open_volume(path)
    assert caught.value.path == path
    assert "declares 100 frames of 2 bytes, but the file holds" in caught.value.reason


def test_rle_declaring_more_pixels_than_its_bytes_can_expand_to_is_refused_before_decoding(tmp_path: Path):
    """8192 x 8192 16-bit pixels (128 MiB, within any budget) from 6 kB of RLE: at most 64 bytes out per byte in."""
    path = rle_declaring(tmp_path, 8192)
    with pytest.raises(CorruptFileError) as caught:
        open_volume(path)
    assert caught.value.path == path and "RLE data in the file can hold" in caught.value.reason


def test_rle_declaring_65535_squared_pixels_is_refused_in_bounded_memory(tmp_path: Path):
    path = rle_declaring(tmp_path, 65535)
    result = open_in_child("volume", path)
    assert result["outcome"] == "refused" and result["path"] == str(path), result
    assert "65535" in result["reason"] or "RLE data" in result["reason"]
    assert result["peak_mib"] < REFUSAL_PEAK_MIB and result["seconds"] < 30, result


def test_a_slide_matrix_of_2_to_the_32_pixels_is_refused_from_its_42_frames(tmp_path: Path):
    path = wsi_with(tmp_path, "matrix", TotalPixelMatrixColumns=2**32 - 1)
    result = open_in_child("slide", path)
    assert result["outcome"] == "refused" and result["type"] == "CorruptFileError", result
    assert result["path"] == str(path) and "the file holds 42 frames" in result["reason"]
    assert result["peak_mib"] < REFUSAL_PEAK_MIB and result["seconds"] < 30, result


def test_a_slide_declaring_a_billion_frames_is_refused_naming_the_fragments_it_holds(tmp_path: Path):
    path = wsi_with(tmp_path, "frames", NumberOfFrames=1_000_000_000)
    result = open_in_child("slide", path)
    assert result["outcome"] == "refused" and result["type"] == "CorruptFileError", result
    assert "1000000000 frames" in result["reason"] and "42 fragments" in result["reason"]


@pytest.mark.parametrize("keyword", ["Rows", "Columns"])
def test_a_slide_with_tiles_of_no_size_is_refused_before_dividing_by_it(tmp_path: Path, keyword: str):
    from medviewer.io.slide import Slide

    path = wsi_with(tmp_path, keyword, **{keyword: 0})
    with pytest.raises(CorruptFileError) as caught:
        Slide(path)
    assert caught.value.path == path and keyword in caught.value.reason


@pytest.mark.parametrize("spacing", ["nan\\nan", "0\\0", "-0.25\\-0.25"])
def test_a_slide_pixel_size_that_is_not_a_size_is_unknown_with_a_warning(tmp_path: Path, spacing: str):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from medviewer.io.slide import Slide

    measures = Dataset()
    set_raw(measures, "PixelSpacing", "DS", spacing)
    group = Dataset()
    group.PixelMeasuresSequence = Sequence([measures])
    path = wsi_with(tmp_path, "spacing", SharedFunctionalGroupsSequence=Sequence([group]))
    with Slide(path) as slide:
        assert slide.mpp is None
        assert any("pixel size" in warning and "unknown" in warning for warning in slide.warnings)
        assert np.asarray(slide.read_region((0, 0), 0, (64, 64))).shape[:2] == (64, 64)


@pytest.mark.parametrize("keyword", ["Rows", "Columns"])
def test_an_image_of_no_rows_or_columns_is_a_corrupt_file_error_naming_it(tmp_path: Path, keyword: str):
    ds = dicom("CT_small.dcm")
    set_raw(ds, keyword, "US", "0")
    path = save(ds, tmp_path / "empty.dcm")
    with pytest.raises(CorruptFileError) as caught:
        open_volume(path)
    assert caught.value.path == path
    assert "the header declares images of" in caught.value.reason and " 0 " in f" {caught.value.reason} "


def test_a_1000_deep_sequence_is_read_without_recursion_error(tmp_path: Path):
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = dicom("CT_small.dcm")
    inner = Dataset()
    inner.CodeValue = "X"
    for _ in range(1000):
        outer = Dataset()
        outer.ReferencedImageSequence = Sequence([inner])
        inner = outer
    ds.ReferencedImageSequence = Sequence([inner])
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)  # pydicom writes nested items by recursion
    try:
        path = save(ds, tmp_path / "deep.dcm")
    finally:
        sys.setrecursionlimit(limit)
    volume = open_volume(path)
    reference = dicom("CT_small.dcm")
    np.testing.assert_array_equal(volume.array[0], reference.pixel_array * float(reference.RescaleSlope)
                                  + float(reference.RescaleIntercept))


def test_damaged_deflate_is_a_corrupt_file_error_naming_the_file(tmp_path: Path):
    source = Path(pydicom.data.get_testdata_file("image_dfl.dcm")).read_bytes()
    start = source.index(b"1.2.840.10008.1.2.1.99") + 200  # inside the deflated dataset, after the file meta
    damaged = bytearray(source)
    damaged[start : start + 64] = bytes(range(64))
    path = tmp_path / "damaged-deflate.dcm"
    path.write_bytes(bytes(damaged))
    with pytest.raises(CorruptFileError) as caught:
        open_volume(path)
    assert caught.value.path == path and "damaged" in caught.value.reason


def test_a_deflate_bomb_is_refused_before_pydicom_inflates_it(tmp_path: Path):
    """64 MiB of zeros in a private element, 64 kB deflated, against a 16 MiB budget."""
    ds = dicom("CT_small.dcm")
    ds.add_new(0x00091010, "OB", bytes(64 << 20))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = save(ds, tmp_path / "bomb.dcm")
    assert path.stat().st_size < 1 << 20
    result = open_in_child("volume", path, {MEMORY_FRACTION_VARIABLE: f"{(16 << 20) / physical_memory():.9f}"})
    assert result["outcome"] == "refused" and result["type"] == TooLargeError.__name__, result
    assert result["path"] == str(path) and "deflated dataset" in result["reason"]
    assert result["peak_mib"] < REFUSAL_PEAK_MIB, result


@pytest.mark.parametrize(
    ("text", "shown"),
    [("nan\\nan\\nan", "'nan"), ("a\\b\\c", "'a"), ("1\\2", "'1\\\\2'"), ("1e30\\0\\0", "'1e30")],
)
def test_an_unusable_position_is_named_in_a_warning_never_silently_the_origin(tmp_path: Path, text: str, shown: str):
    ds = dicom("CT_small.dcm")
    set_raw(ds, "ImagePositionPatient", "DS", text)
    volume = open_volume(save(ds, tmp_path / "position.dcm"))
    warning = next(w for w in volume.warnings if "ImagePositionPatient" in w)
    assert shown in warning and "place in the patient is unknown" in warning


@pytest.mark.parametrize("text", ["0\\0\\0\\0\\0\\0", "nan\\0\\0\\0\\1\\0", "1\\0\\0\\1\\0\\0"])
def test_an_unusable_orientation_is_named_in_a_warning_never_silently_the_identity(tmp_path: Path, text: str):
    ds = dicom("CT_small.dcm")
    set_raw(ds, "ImageOrientationPatient", "DS", text)
    volume = open_volume(save(ds, tmp_path / "orientation.dcm"))
    assert any("ImageOrientationPatient" in w and "shown as if axial" in w for w in volume.warnings)
    assert not volume.orientation_known


@pytest.mark.parametrize(("keyword", "text"), [("RescaleSlope", "nan"), ("RescaleSlope", "inf"),
                                               ("RescaleSlope", "0"), ("RescaleIntercept", "nan")])
def test_a_rescale_that_makes_every_value_wrong_is_refused(tmp_path: Path, keyword: str, text: str):
    ds = dicom("CT_small.dcm")
    set_raw(ds, keyword, "DS", text)
    path = save(ds, tmp_path / "rescale.dcm")
    with pytest.raises(CorruptFileError) as caught:
        open_volume(path)
    assert caught.value.path == path and f"{keyword} '{text}'" in caught.value.reason


def test_a_slice_with_an_unusable_position_is_left_out_of_its_stack_with_a_warning(tmp_path: Path):
    """Five real GE CT slices, the third with a NaN position: the other four keep their true places (the third's
    is left empty), and the warning says which slice is missing and why, instead of stacking it anywhere."""
    folder = tmp_path / "series"
    folder.mkdir()
    sources = sorted(GE_CT.glob("*.dcm.gz"))[:5]
    for number, source in enumerate(sources):
        ds = pydicom.dcmread(gzip.open(source))
        if number == 2:
            damaged_instance = int(ds.InstanceNumber)
            set_raw(ds, "ImagePositionPatient", "DS", "nan\\nan\\nan")
        save(ds, folder / f"{number}.dcm")
    intact = open_volume(save_series(sources, tmp_path / "intact"))
    volume = open_volume(folder)
    note = next(w for w in volume.warnings if "not in this stack" in w)
    assert f"instance number {damaged_instance}" in note and "ImagePositionPatient 'nan" in note
    np.testing.assert_allclose(volume.origin, intact.origin, atol=1e-6)
    np.testing.assert_allclose(volume.spacing, intact.spacing, atol=1e-6)


def save_series(sources: list[Path], folder: Path) -> Path:
    folder.mkdir()
    for number, source in enumerate(sources):
        save(pydicom.dcmread(gzip.open(source)), folder / f"{number}.dcm")
    return folder


def test_slices_a_kilometre_apart_in_hundredth_millimetre_steps_are_refused_before_planning(tmp_path: Path):
    """Three CT slices whose steps (0.011 mm, then 999 m) ask for 90 million planes on a regular grid: planning
    them alone took more than the child's 3 GiB before the grid was checked first."""
    folder = ct_slices_at(tmp_path, [0.0, 0.011, 999_000.0])
    result = open_in_child("volume", folder)
    assert result["outcome"] == "refused" and result["type"] == TooLargeError.__name__, result
    assert "the regular grid its slices' positions span" in result["reason"], result
    assert result["peak_mib"] < REFUSAL_PEAK_MIB, result


def test_a_decoder_panic_while_reading_pixels_is_a_corrupt_file_error_from_the_pixel_reader(tmp_path: Path):
    """pylibjpeg-rle's Rust panic derives from BaseException; the pixel reader itself must turn it into a typed
    error naming the file, not rely on a caller further out."""
    for case in _rle_pixel_damage(tmp_path, 12):
        try:
            _ = pydicom.dcmread(case.path).pixel_array
        except BaseException as exc:  # noqa: BLE001 - looking for the panic
            if is_decoder_panic(exc):
                break
    else:
        raise AssertionError("no damaged RLE file made the decoder panic; the test no longer covers a real panic")
    records = frame_records(DicomFile.read(case.path))
    with pytest.raises(MedviewerError) as caught:
        read_pixels(records, case.path)
    assert isinstance(caught.value, CorruptFileError) and caught.value.path == case.path
    assert "PanicException" in caught.value.reason and "RLE Lossless" in caught.value.reason
