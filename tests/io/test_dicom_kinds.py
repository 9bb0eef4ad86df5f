"""Each kind of real DICOM object is read for what it is, checked against pydicom, nibabel and dcm2niix.

The files are public ones nobody here wrote: pydicom's test files, the pydicom-data package, nibabel's
Siemens files, highdicom's DX image and the dcm_qa repositories.
"""

from __future__ import annotations

import gzip
import shutil
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

from medviewer.cli import main
from medviewer.core.display import apply_voi_lut as our_voi_lut
from medviewer.core.errors import CorruptFileError, UnsupportedFileError
from medviewer.core.volume import Presentation
from medviewer.io import describe, list_series, open_volume
from medviewer.io.dicom_kind import DicomKind, file_kind
from tests.support.paths import pydicom_file, real_file

NIBABEL_DATA = Path(nib.__file__).parent / "nicom" / "tests" / "data"


def pydicom_data_file(name: str) -> Path:
    """A file of the pydicom-data package (downloaded data pydicom's wheel leaves out); fails loudly if absent."""
    found = get_testdata_file(name)
    if found is None:
        raise FileNotFoundError(f"{name} is missing: install the pydicom-data package (the dev extra has it)")
    return Path(found)


def gunzipped(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / source.name.removesuffix(".gz")
    with gzip.open(source) as packed, open(target, "wb") as plain:
        shutil.copyfileobj(packed, plain)
    return target


# radiographs and other 2-D images ---------------------------------------------------------------------


def test_a_dx_radiograph_is_a_2d_image_with_its_own_orientation_letters_and_no_invented_geometry():
    path = real_file("highdicom/dx_image.dcm")
    volume = open_volume(path)
    assert volume.presentation is Presentation.IMAGE and volume.metadata["kind"] == "image"
    assert not volume.orientation_known and volume.patient_orientation == ("L", "F")
    assert volume.shape == (1, 169, 211)
    # PixelSpacing (here equal to the detector's) is a real pixel size in the patient plane: no note
    # PixelSpacing is (between rows, between columns); a Volume's spacing runs x (columns), y (rows)
    assert volume.spacing_known and volume.spacing[:2] == pytest.approx((1.2012, 1.2))
    assert volume.spacing_note == ""
    assert volume.invert_display  # MONOCHROME1 with Presentation LUT Shape INVERSE: shown inverted once


def test_a_cr_with_only_imager_pixel_spacing_says_the_size_is_at_the_detector():
    path = pydicom_file("dicomdirtests/77654033/CR1/6154")
    volume = open_volume(path)
    assert volume.presentation is Presentation.IMAGE and volume.patient_orientation == ("L", "F")
    assert volume.spacing_known and volume.spacing[:2] == pytest.approx((0.1, 0.1))
    assert "at the detector" in volume.spacing_note and "magnification" in volume.spacing_note


def test_a_secondary_capture_without_any_geometry_has_no_letters_and_no_pixel_size():
    volume = open_volume(pydicom_file("JPEGLSNearLossless_08.dcm"))
    assert volume.presentation is Presentation.IMAGE
    assert volume.patient_orientation is None and not volume.orientation_known
    assert not volume.spacing_known and "pixels" in volume.spacing_note


def test_unrelated_frames_without_time_or_place_are_images_not_a_volume_or_a_cine():
    volume = open_volume(pydicom_data_file("SC_rgb_2frame.dcm"))
    assert volume.presentation is Presentation.IMAGE and volume.shape[0] == 2
    assert volume.frame_time_ms is None


# cine -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "frames"), [("color3d_jpeg_baseline.dcm", 120), ("OBXXXX1A_2frame.dcm", 2)])
def test_ultrasound_multiframe_is_a_cine_never_a_volume(name: str, frames: int):
    volume = open_volume(pydicom_data_file(name))
    assert volume.presentation is Presentation.CINE and volume.shape[0] == frames
    assert not volume.orientation_known and volume.colour is not None


def test_a_cine_has_the_files_frame_rate():
    path = pydicom_data_file("color3d_jpeg_baseline.dcm")
    assert float(pydicom.dcmread(path, stop_before_pixels=True).FrameTime) == pytest.approx(33.333)
    assert open_volume(path).frame_time_ms == pytest.approx(33.333)


# colour -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["examples_palette.dcm", "OBXXXX1A.dcm", "OBXXXX1A_rle.dcm"])
def test_palette_colour_is_shown_through_the_files_lookup_tables(name: str):
    path = get_testdata_file(name) or pydicom_data_file(name)
    ds = pydicom.dcmread(path)
    volume = open_volume(path)
    expected = apply_color_lut(ds.pixel_array, ds)  # 8-bit indices into tables of 16-bit entries
    bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    np.testing.assert_array_equal(volume.colour[0], (expected >> (bits - 8)).astype(np.uint8))
    assert volume.metadata["photometric"] == "PALETTE COLOR"
    assert len(np.unique(volume.colour[0].reshape(-1, 3), axis=0)) > 16  # colours, not a grey ramp


def test_16_bit_palette_colour_keeps_the_top_8_bits_of_each_entry():
    path = pydicom_data_file("gdcm-US-ALOKA-16.dcm")
    ds = pydicom.dcmread(path)
    expected = apply_color_lut(ds.pixel_array, ds)
    assert expected.dtype == np.uint16 and expected.max() > 255
    np.testing.assert_array_equal(open_volume(path).colour[0], (expected >> 8).astype(np.uint8))


@pytest.mark.parametrize("name", ["SC_rgb_16bit.dcm", "SC_rgb_32bit.dcm"])
def test_deep_rgb_is_brought_to_8_bits_for_display(name: str):
    path = pydicom_data_file(name)
    ds = pydicom.dcmread(path)
    shift = int(ds.BitsStored) - 8
    expected = (ds.pixel_array.astype(np.uint64) >> shift).astype(np.uint8)
    np.testing.assert_array_equal(open_volume(path).colour[0], expected)


@pytest.mark.parametrize("name", ["SC_ybr_full_uncompressed.dcm", "US1_J2KR.dcm", "SC_rgb_jpeg_dcmtk.dcm"])
def test_ybr_colour_is_converted_to_rgb_as_pydicom_converts_it(name: str):
    path = get_testdata_file(name) or pydicom_data_file(name)
    np.testing.assert_array_equal(open_volume(path).colour[0], pydicom.dcmread(path).pixel_array)


# the greyscale pipeline ----------------------------------------------------------------------------


def test_a_modality_lut_sequence_gives_pydicoms_modality_values():
    path = pydicom_data_file("mlut_18.dcm")
    ds = pydicom.dcmread(path)
    assert "ModalityLUTSequence" in ds
    np.testing.assert_array_equal(open_volume(path).array[0], apply_modality_lut(ds.pixel_array, ds))


def test_a_voi_lut_sequence_gives_pydicoms_voi_values_and_opens_at_its_output_range():
    path = pydicom_data_file("vlut_04.dcm")
    ds = pydicom.dcmread(path)
    volume = open_volume(path)
    assert volume.voi.lut is not None
    expected = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    np.testing.assert_array_equal(our_voi_lut(volume.array[0], volume.voi), expected)
    width, centre = volume.display_window()
    table = volume.voi.lut
    assert (width, centre) == pytest.approx((float(table.max() - table.min()), (float(table.max()) + table.min()) / 2))


def test_a_damaged_voi_lut_falls_back_to_the_window_with_a_warning(tmp_path: Path):
    ds = pydicom.dcmread(pydicom_data_file("vlut_04.dcm"))
    ds.VOILUTSequence[0].LUTDescriptor = [0, 0, 99]  # 65536 entries of 99 bits: contradicts its 8-bit data
    ds.WindowWidth, ds.WindowCenter = 200, 100
    path = tmp_path / "bad_voi.dcm"
    ds.save_as(path)
    volume = open_volume(path)
    assert volume.voi.lut is None and volume.display_window() == (200, 100)
    assert any("VOI LUT is damaged" in w for w in volume.warnings)


def test_a_series_whose_slices_disagree_on_the_window_opens_at_its_data_not_the_first_slice(xa30i_dir: Path):
    windows = {
        (float(ds.WindowWidth), float(ds.WindowCenter))
        for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in sorted(xa30i_dir.iterdir()))
    }
    assert len(windows) > 10  # Siemens writes one per slice, from W 15 up
    volume = open_volume(xa30i_dir)
    assert volume.window is None
    width, centre = volume.display_window()
    low, high = np.percentile(volume.array[::6, ::4, ::4], (1, 99))
    assert width == pytest.approx(high - low, rel=0.05) and width > 500
    assert "different windows" in volume.metadata["window_note"]


def test_a_series_whose_slices_agree_opens_at_that_window():
    volume = open_volume(pydicom_file("MR_small.dcm"))
    ds = pydicom.dcmread(pydicom_file("MR_small.dcm"))
    assert volume.display_window() == (float(ds.WindowWidth), float(ds.WindowCenter))


def test_overlay_planes_are_read_where_pydicom_places_them():
    path = pydicom_data_file("MR-SIEMENS-DICOM-WithOverlays.dcm")
    ds = pydicom.dcmread(path)
    volume = open_volume(path)
    expected = ds.overlay_array(0x6000).astype(bool)
    assert volume.overlay is not None and volume.overlay[0].sum() == expected.sum() > 0
    np.testing.assert_array_equal(volume.overlay[0, : expected.shape[0], : expected.shape[1]], expected)


# Siemens mosaics ----------------------------------------------------------------------------------------


def _corners(shape: tuple[int, ...]) -> np.ndarray:
    return np.array([[i, j, k] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)])


@pytest.mark.parametrize("name", ["siemens_dwi_0.dcm.gz", "siemens_dwi_1000.dcm.gz"])
def test_a_siemens_mosaic_is_unpacked_with_nibabels_shape_and_affine(name: str, tmp_path: Path):
    """nibabel's own mosaic test files (anonymised: their pixels are zero, their CSA geometry is real)."""
    path = gunzipped(NIBABEL_DATA / name, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers

        wrapper = dicomwrappers.wrapper_from_data(pydicom.dcmread(path))
        shape, affine = wrapper.image_shape, wrapper.affine
    volume = open_volume(path)
    assert sorted(volume.shape) == sorted(shape) == [48, 128, 128]
    # the same grid in LPS millimetres: the eight corner voxel centres coincide, whatever the axis order
    ours = volume.index_to_world(_corners(volume.shape))
    theirs = _corners(shape) @ affine[:3, :3].T + affine[:3, 3]
    distances = np.linalg.norm(ours[:, None, :] - theirs[None, :, :], axis=2)
    assert distances.min(axis=1).max() < 1e-3
    spacing = sorted(np.linalg.norm(affine[:3, :3], axis=0))
    assert sorted(volume.spacing) == pytest.approx(spacing)


def test_a_siemens_mosaic_holds_nibabels_voxel_values_where_nibabel_puts_them():
    path = real_file("dcm_qa_ts/9.dcm")  # a real mosaic with its pixels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from nibabel.nicom import dicomwrappers

        wrapper = dicomwrappers.wrapper_from_data(pydicom.dcmread(path))
        data, affine = wrapper.get_data(), wrapper.affine
    volume = open_volume(path)
    index = np.argwhere(volume.array > np.percentile(volume.array, 50))[::37]
    ijk = np.linalg.solve(affine[:3, :3], (volume.index_to_world(index) - affine[:3, 3]).T).T
    assert np.abs(ijk - np.rint(ijk)).max() < 1e-3
    np.testing.assert_array_equal(data[tuple(np.rint(ijk).astype(int).T)], volume.array[tuple(index.T)])


def test_a_siemens_mosaic_equals_dcm2niixs_volume_in_world_space():
    volume = open_volume(real_file("dcm_qa_ts/9.dcm"))
    reference = nib.load(real_file("dcm_qa_ts/Ref/9.nii.gz"))
    data = np.asarray(reference.dataobj)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ reference.affine  # NIfTI is RAS, DICOM LPS
    index = np.indices(volume.shape).reshape(3, -1).T[::11]
    ijk = (np.c_[volume.index_to_world(index), np.ones(len(index))] @ np.linalg.inv(lps).T)[:, :3]
    assert np.abs(ijk - np.rint(ijk)).max() < 1e-3
    np.testing.assert_array_equal(data[tuple(np.rint(ijk).astype(int).T)], volume.array[tuple(index.T)])


def test_a_mosaic_whose_csa_header_is_damaged_is_shown_plain_with_a_warning(tmp_path: Path):
    ds = pydicom.dcmread(real_file("dcm_qa_ts/1.dcm"))
    csa = [element.tag for element in ds if element.tag.group == 0x0029]
    assert csa, "the mosaic carries a Siemens CSA header"
    for tag in csa:
        ds[tag].value = b"\x00" * 16
    path = tmp_path / "mosaic_without_csa.dcm"
    ds.save_as(path)
    volume = open_volume(path)
    assert volume.shape == (1, 384, 384)
    assert any("MOSAIC" in w and "CSA header" in w and "plain tiled image" in w for w in volume.warnings)


# objects that are not images ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "words"),
    [
        ("rtplan.dcm", DicomKind.NOT_AN_IMAGE, "RT Plan Storage, not an image"),
        ("waveform_ecg.dcm", DicomKind.NOT_AN_IMAGE, "12-lead ECG Waveform Storage, not an image"),
        ("test-SR.dcm", DicomKind.STRUCTURED_REPORT, "structured report"),
        ("liver_1frame.dcm", DicomKind.SEGMENTATION, "segmentation (SEG)"),
    ],
)
def test_objects_that_are_not_images_are_named_for_what_they_are(name: str, kind: DicomKind, words: str):
    path = pydicom_file(name)
    assert file_kind(pydicom.dcmread(path, stop_before_pixels=True)) is kind
    with pytest.raises(UnsupportedFileError) as caught:
        open_volume(path)
    assert caught.value.path == path and words in caught.value.reason


def test_a_folder_with_a_seg_lists_the_images_first_and_never_opens_the_seg_as_an_image(ct2_dir: Path, tmp_path: Path):
    folder = tmp_path / "study"
    shutil.copytree(ct2_dir, folder)
    shutil.copy(real_file("highdicom/seg_image_ct_binary_overlap.dcm"), folder / "seg.dcm")
    series = list_series(folder)
    assert [s.kind for s in series] == ["volume", "segmentation"]
    volume = open_volume(folder)
    assert volume.modality == "CT" and volume.shape[1:] == (16, 16)
    assert any("1 object(s) that are not images (segmentation)" in w for w in volume.warnings)


def test_12_bit_lossy_jpeg_is_refused_naming_its_transfer_syntax():
    path = pydicom_file("JPEG-lossy.dcm")
    with pytest.raises(CorruptFileError) as caught:
        open_volume(path)
    reason = caught.value.reason
    assert "JPEG Extended (Process 2 and 4)" in reason and "12-bit" in reason
    assert "libjpeg error" not in reason and "plugins" not in reason  # no decoder internals


# what medviewer info says -------------------------------------------------------------------------------


def test_info_json_reports_kind_frames_photometric_orientation_and_window(capsys: pytest.CaptureFixture):
    path = real_file("highdicom/dx_image.dcm")
    info = describe(path)
    assert (info["kind"], info["frames"], info["photometric"]) == ("image", 1, "MONOCHROME1")
    assert info["orientation_known"] is False and info["patient_orientation"] == ["L", "F"]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    assert info["display_window"] == {"width": float(ds.WindowWidth), "centre": float(ds.WindowCenter)}
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "orientation rows to L, columns to F" in out and "1 frame(s)" in out


def test_info_on_a_cine_gives_its_frame_rate(capsys: pytest.CaptureFixture):
    path = pydicom_data_file("color3d_jpeg_baseline.dcm")
    info = describe(path)
    assert (info["kind"], info["presentation"], info["frames"], info["colour"]) == ("cine", "cine", 120, True)
    assert main(["info", str(path)]) == 0
    assert "120 frame(s), 30 frames/s" in capsys.readouterr().out


def test_ultrasound_gets_its_pixel_size_from_the_regions_calibrated_in_centimetres():
    """examples_palette.dcm: a B-mode region in cm (0.0262 cm per pixel) and a Doppler strip in seconds."""
    path = pydicom_file("examples_palette.dcm")
    regions = pydicom.dcmread(path, stop_before_pixels=True).SequenceOfUltrasoundRegions
    (tissue,) = [r for r in regions if (r.PhysicalUnitsXDirection, r.PhysicalUnitsYDirection) == (3, 3)]
    volume = open_volume(path)
    assert volume.spacing_known and "ultrasound calibration" in volume.spacing_note
    assert volume.spacing[:2] == pytest.approx((10 * tissue.PhysicalDeltaX, 10 * tissue.PhysicalDeltaY))


def test_a_file_with_both_a_voi_lut_and_a_window_opens_at_the_luts_range(tmp_path: Path):
    """The window is meant for modality values; applied to the LUT's output it would give a binary image."""
    ds = pydicom.dcmread(pydicom_data_file("vlut_04.dcm"))
    ds.WindowCenter, ds.WindowWidth = 128, 256
    path = tmp_path / "lut_and_window.dcm"
    ds.save_as(path)
    volume = open_volume(path)
    table = volume.voi.lut
    assert volume.display_window() == pytest.approx((float(table.max() - table.min()), (table.max() + table.min()) / 2))


def test_radiographs_with_a_stray_position_are_images_of_a_series_not_time_points(tmp_path: Path):
    folder = tmp_path / "cr"
    folder.mkdir()
    for name in ("RG1_UNCR.dcm", "RG1_UNCI.dcm"):
        ds = pydicom.dcmread(pydicom_data_file(name))
        ds.ImagePositionPatient = [0, 0, 0]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SeriesInstanceUID = "1.2.3.4"
        ds.SOPInstanceUID = f"1.2.3.4.{len(list(folder.iterdir())) + 1}"
        ds.save_as(folder / name)
    volume = open_volume(folder)
    assert volume.presentation is Presentation.IMAGE and volume.shape[0] == 2
    assert not any("time point" in w for w in volume.warnings)


def test_colour_and_grey_frames_are_never_one_stack(tmp_path: Path):
    """A CT slice and an RGB copy of it 5 mm away: two stacks, never a volume of uninitialised colour."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(pydicom_file("CT_small.dcm"), folder / "ct.dcm")
    rgb = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    grey_bytes = (rgb.pixel_array >> 4).astype(np.uint8)
    rgb.PixelData = np.stack([grey_bytes] * 3, axis=-1).tobytes()
    rgb.SamplesPerPixel, rgb.PhotometricInterpretation, rgb.PlanarConfiguration = 3, "RGB", 0
    rgb.BitsAllocated = rgb.BitsStored = 8
    rgb.HighBit, rgb.PixelRepresentation = 7, 0
    rgb.ImagePositionPatient = [float(v) for v in rgb.ImagePositionPatient[:2]] + [rgb.ImagePositionPatient[2] + 5]
    rgb.SOPInstanceUID = rgb.SOPInstanceUID + ".9"
    rgb.save_as(folder / "rgb.dcm")
    stacks = list_series(folder)
    assert len(stacks) == 2 and sorted(s.slices for s in stacks) == [1, 1]
    volumes = [open_volume(folder, series_uid=stack.key) for stack in stacks]
    colour = [v for v in volumes if v.colour is not None]
    grey = [v for v in volumes if v.colour is None]
    assert len(colour) == len(grey) == 1
    np.testing.assert_array_equal(colour[0].colour[0], np.stack([grey_bytes] * 3, axis=-1))  # what was written
    assert grey[0].array.dtype == np.int16  # the CT's Hounsfield units, not squeezed into bytes
