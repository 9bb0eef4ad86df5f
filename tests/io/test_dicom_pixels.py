"""Pixel values: every transfer syntax, the stored type kept, rescale, colour, byte order, multi-frame."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.core.volume import Presentation
from medviewer.io import open_volume
from tests.support.paths import pydicom_file, real_file

SYNTAXES = {
    1: "1.2.840.10008.1.2.1",  # explicit VR little endian
    2: "1.2.840.10008.1.2",  # implicit VR little endian
    3: "1.2.840.10008.1.2.2",  # explicit VR big endian
    4: "1.2.840.10008.1.2.5",  # RLE lossless
    5: "1.2.840.10008.1.2.4.70",  # JPEG lossless, first-order prediction
    6: "1.2.840.10008.1.2.4.70",
    7: "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    8: "1.2.840.10008.1.2.4.80",
    9: "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
}


@pytest.mark.parametrize("number", sorted(SYNTAXES))
def test_every_transfer_syntax_gives_the_pixels_of_the_uncompressed_file(number: int):
    path = real_file(f"dcm_qa_ts/{number}.dcm")
    assert pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID == SYNTAXES[number]
    reference = open_volume(real_file("dcm_qa_ts/1.dcm"))
    volume = open_volume(path)
    assert volume.array.dtype == np.uint16 and volume.array.dtype.isnative  # big endian comes out native
    assert volume.shape == (35, 64, 64)  # a Siemens mosaic of 6 x 6 tiles, unpacked into its 35 slices
    assert int(volume.array.sum()) == 38036663 and volume.array.max() == 2362
    np.testing.assert_array_equal(volume.array, reference.array)
    np.testing.assert_allclose(volume.origin, reference.origin)


@pytest.mark.parametrize(
    "name",
    ["CT_small.dcm", "MR_small.dcm", "examples_overlay.dcm", "693_J2KI.dcm", "image_dfl.dcm", "MR_small_bigendian.dcm"],
)
def test_values_equal_pydicoms_decoding_with_the_rescale(name: str):
    path = pydicom_file(name)
    ds = pydicom.dcmread(path)
    volume = open_volume(path)
    expected = ds.pixel_array * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    np.testing.assert_array_equal(volume.array[0], expected)


def test_integer_rescale_gives_int16_hounsfield_units():
    volume = open_volume(pydicom_file("CT_small.dcm"))  # signed 16-bit, intercept -1024
    assert volume.array.dtype == np.int16
    assert int(volume.array.min()) == -1024 + int(pydicom.dcmread(pydicom_file("CT_small.dcm")).pixel_array.min())


def test_rescale_that_does_not_fit_int16_or_is_fractional_gives_float32(tmp_path: Path):
    source = pydicom_file("CT_small.dcm")
    stored = pydicom.dcmread(source).pixel_array.astype(np.float64)
    for intercept, slope in ((32000, 1), (0, 0.5)):  # stored values reach 1200: 32000 overflows int16
        ds = pydicom.dcmread(source)
        ds.RescaleIntercept, ds.RescaleSlope = intercept, slope
        path = tmp_path / f"ct_{intercept}_{slope}.dcm"
        ds.save_as(path)
        volume = open_volume(path)
        assert volume.array.dtype == np.float32
        np.testing.assert_array_equal(volume.array[0], stored * slope + intercept)


def test_no_rescale_keeps_the_stored_type_and_monochrome1_inverts_display_only():
    path = pydicom_file("dicomdirtests/77654033/CR1/6154")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    volume = open_volume(path)
    assert volume.invert_display is True
    np.testing.assert_allclose(volume.array[0], ds.pixel_array * 0.684 + 200, rtol=1e-6)  # values as acquired
    assert open_volume(pydicom_file("MR_small.dcm")).invert_display is False


def test_colour_is_kept_as_rgb_with_its_luminance_as_grey_values():
    path = pydicom_file("examples_rgb_color.dcm")
    rgb = pydicom.dcmread(path).pixel_array
    volume = open_volume(path)
    assert volume.colour is not None and volume.colour.shape == (1, 240, 320, 3)
    np.testing.assert_array_equal(volume.colour[0], rgb)
    assert volume.array.dtype == np.uint8 and volume.shape == (1, 240, 320)
    expected = np.rint(rgb.astype(np.float64) @ [0.299, 0.587, 0.114])
    assert np.abs(volume.array[0].astype(float) - expected).max() <= 1
    assert volume.warnings == []


def test_classic_multiframe_with_frame_offsets_has_its_geometry():
    for name in ("rtdose.dcm", "rtdose_expb.dcm", "rtdose_rle.dcm"):
        path = pydicom_file(name)
        ds = pydicom.dcmread(path)
        volume = open_volume(path)
        assert volume.shape == (15, 10, 10) and volume.warnings == []
        np.testing.assert_array_equal(volume.array, ds.pixel_array)
        np.testing.assert_allclose(volume.spacing, (10, 10, 5))  # GridFrameOffsetVector 0, 5, ... 70 mm
        np.testing.assert_allclose(volume.origin, (189.43125, 199.43125, -761.87))


def test_an_ultrasound_cine_is_frames_of_one_plane_at_the_files_frame_rate():
    path = pydicom_file("examples_ybr_color.dcm")  # ultrasound, 30 YBR_FULL_422 frames, FrameTime 33.33 ms
    volume = open_volume(path)
    assert volume.presentation is Presentation.CINE and not volume.orientation_known
    assert volume.shape == (30, 240, 320) and volume.frame_time_ms == pytest.approx(33.333)
    # pydicom's own YBR to RGB conversion, frame for frame
    np.testing.assert_array_equal(volume.colour, pydicom.dcmread(path).pixel_array)
    assert len({volume.array[k].tobytes() for k in range(30)}) > 1  # real, different frames


def test_multiframe_files_in_a_folder_are_frames_of_one_stack(tmp_path: Path):
    folder = tmp_path / "dose"
    folder.mkdir()
    shutil.copy(pydicom_file("rtdose.dcm"), folder / "dose.dcm")
    assert open_volume(folder).shape == (15, 10, 10)
