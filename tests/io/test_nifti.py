"""NIfTI reading against nibabel itself: every voxel where nibabel's affine puts it, in LPS millimetres."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medviewer.core.errors import CorruptFileError, MedviewerError, UnsupportedFileError
from medviewer.io.nifti import read_nifti
from tests.support.paths import XA30I_REF, nibabel_file, real_file


def real_nifti_files() -> list[Path]:
    return [
        nibabel_file("anatomical.nii"),
        nibabel_file("example4d.nii.gz"),
        nibabel_file("example_nifti2.nii.gz"),
        real_file(XA30I_REF),
    ]


def ras_to_lps(points: np.ndarray) -> np.ndarray:
    return points * np.array([-1.0, -1.0, 1.0])


def sample_voxels(shape: tuple[int, ...], count: int = 40) -> np.ndarray:
    """(i, j, k) file indices: all eight corners and random voxels inside."""
    size = np.asarray(shape[:3])
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in size], indexing="ij")).reshape(3, -1).T
    inside = np.random.default_rng(0).integers(0, size, size=(count, 3))
    return np.concatenate([corners, inside])


@pytest.mark.parametrize("path", real_nifti_files(), ids=lambda p: p.name)
def test_voxels_lie_where_nibabels_affine_puts_them_in_lps(path: Path):
    image = nib.load(path)
    volume = read_nifti(path)
    data = np.asanyarray(image.dataobj)
    data = data[..., 0] if data.ndim == 4 else data
    ijk = sample_voxels(image.shape)
    expected_mm = ras_to_lps(nib.affines.apply_affine(image.affine, ijk))
    kji = ijk[:, ::-1]
    np.testing.assert_allclose(volume.index_to_world(kji), expected_mm, atol=1e-4)
    np.testing.assert_array_equal(volume.array[tuple(kji.T)], data[tuple(ijk.T)])
    np.testing.assert_array_equal(volume.array, data.transpose(2, 1, 0))
    assert volume.array.dtype == image.get_data_dtype().newbyteorder("=")  # stored type, native byte order
    assert volume.array.dtype.isnative
    assert volume.metadata["affine_source"] == "sform"


def test_oblique_affine_keeps_its_true_direction():
    volume = read_nifti(nibabel_file("example4d.nii.gz"))
    off_axis = np.abs(volume.direction - np.diag(np.diag(volume.direction))).max()
    assert off_axis > 0.1  # the file is genuinely oblique, so the geometry test above means something
    np.testing.assert_allclose(volume.direction.T @ volume.direction, np.eye(3), atol=1e-6)
    assert volume.warnings == ["the file holds 2 time points; showing time point 1"]


def test_nifti2_is_read_and_says_so():
    volume = read_nifti(nibabel_file("example_nifti2.nii.gz"))
    assert volume.metadata["nifti_version"] == 2
    assert volume.shape == (12, 20, 32)


def test_time_index_selects_a_time_point_and_reports_it():
    path = nibabel_file("example4d.nii.gz")
    second = read_nifti(path, time_index=1)
    data = np.asanyarray(nib.load(path).dataobj)
    np.testing.assert_array_equal(second.array, data[..., 1].transpose(2, 1, 0))
    assert not np.array_equal(second.array, read_nifti(path).array)
    assert second.metadata["time_points"] == 2
    assert second.metadata["time_index"] == 1
    assert "the file holds 2 time points; showing time point 2" in second.warnings


@pytest.mark.parametrize(("name", "index"), [("example4d.nii.gz", 2), ("example4d.nii.gz", -1), ("anatomical.nii", 1)])
def test_time_index_out_of_range_is_a_typed_error_naming_the_file(name: str, index: int):
    path = nibabel_file(name)
    with pytest.raises(MedviewerError) as caught:
        read_nifti(path, time_index=index)
    assert caught.value.path == path
    assert "time point" in caught.value.reason


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray, **header: float) -> Path:
    image = nib.Nifti1Image(data, affine)
    for key, value in header.items():
        image.header[key] = value
    nib.save(image, path)
    return path


def test_scaling_gives_float32_and_identity_scaling_keeps_the_stored_type(tmp_path: Path):
    raw = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    scaled_path = tmp_path / "scaled.nii.gz"
    image = nib.Nifti1Image(raw, np.eye(4))
    image.header.set_slope_inter(2.0, -10.0)
    nib.save(image, scaled_path)
    scaled = read_nifti(scaled_path)
    assert scaled.array.dtype == np.float32
    np.testing.assert_array_equal(scaled.array, (raw * 2.0 - 10.0).transpose(2, 1, 0))

    plain_path = tmp_path / "plain.nii"
    image = nib.Nifti1Image(raw, np.eye(4))
    image.header.set_slope_inter(1.0, 0.0)
    nib.save(image, plain_path)
    assert read_nifti(plain_path).array.dtype == np.int16


def test_qform_is_used_when_the_sform_code_is_zero_as_nibabel_does(tmp_path: Path):
    path = tmp_path / "qform.nii.gz"
    image = nib.Nifti1Image(np.zeros((4, 5, 6), np.uint8), None)
    qform = np.array([[0, 0, 3.0, -10], [-2.0, 0, 0, 20], [0, 1.5, 0, 5], [0, 0, 0, 1]])
    image.set_qform(qform, code=1)
    image.set_sform(np.diag([9.0, 9.0, 9.0, 1.0]), code=0)
    nib.save(image, path)
    volume = read_nifti(path)
    assert volume.metadata["affine_source"] == "qform"
    ijk = sample_voxels((4, 5, 6), count=5)
    expected = ras_to_lps(nib.affines.apply_affine(nib.load(path).affine, ijk))
    np.testing.assert_allclose(volume.index_to_world(ijk[:, ::-1]), expected, atol=1e-5)
    np.testing.assert_allclose(volume.spacing, (2.0, 1.5, 3.0), atol=1e-6)


@pytest.mark.parametrize(("unit", "mm"), [("meter", 1000.0), ("micron", 0.001), ("mm", 1.0)])
def test_spatial_units_become_millimetres(tmp_path: Path, unit: str, mm: float):
    path = tmp_path / f"{unit}.nii"
    image = nib.Nifti1Image(
        np.zeros((4, 5, 6), np.uint8), nib.affines.from_matvec(np.diag([0.5, 0.25, 2.0]), [1, 2, 3])
    )
    image.header.set_xyzt_units(xyz=unit)
    nib.save(image, path)
    volume = read_nifti(path)
    np.testing.assert_allclose(volume.spacing, np.array([0.5, 0.25, 2.0]) * mm)
    np.testing.assert_allclose(volume.origin, np.array([-1.0, -2.0, 3.0]) * mm)


def test_a_file_without_orientation_says_left_and_right_cannot_be_trusted(tmp_path: Path):
    path = tmp_path / "bare.nii"
    image = nib.Nifti1Image(np.zeros((4, 5, 6), np.uint8), None)
    image.set_qform(None, code=0)
    image.set_sform(None, code=0)
    nib.save(image, path)
    volume = read_nifti(path)
    assert volume.metadata["affine_source"] == "none"
    assert any("left and right cannot be trusted" in warning for warning in volume.warnings)


def test_truncated_gzip_is_a_corrupt_file_error_naming_it(tmp_path: Path):
    packed = nibabel_file("example4d.nii.gz").read_bytes()
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(CorruptFileError) as caught:
        read_nifti(path)
    assert caught.value.path == path


@pytest.mark.parametrize("damage", ["cut", "flipped"])
def test_a_damaged_gzip_is_refused_whole(tmp_path: Path, damage: str):
    """A cut stream, or bytes changed inside it (which nibabel alone would read as wrong voxels), fail
    the gzip checksum: the file is refused rather than shown with damaged voxels."""
    packed = bytearray(nibabel_file("example4d.nii.gz").read_bytes())
    if damage == "cut":
        packed = packed[: int(len(packed) * 0.9)]
    else:
        middle = len(packed) // 2
        packed[middle : middle + 50] = bytes(50)
    path = tmp_path / f"{damage}.nii.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(CorruptFileError) as caught:
        read_nifti(path)
    assert caught.value.path == path


def test_truncated_uncompressed_file_is_refused_before_reading(tmp_path: Path):
    whole = nibabel_file("anatomical.nii").read_bytes()
    path = tmp_path / "cut.nii"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CorruptFileError, match="truncated") as caught:
        read_nifti(path)
    assert caught.value.path == path


@pytest.mark.parametrize("name", ["anatomical.nii", "example4d.nii.gz"])
def test_truncated_header_is_corrupt_not_unsupported(tmp_path: Path, name: str):
    source = nibabel_file(name)
    header = (gzip.decompress(source.read_bytes()) if name.endswith(".gz") else source.read_bytes())[:200]
    path = tmp_path / name
    path.write_bytes(gzip.compress(header) if name.endswith(".gz") else header)
    with pytest.raises(CorruptFileError, match="header"):
        read_nifti(path)


def test_text_renamed_to_nii_is_unsupported(tmp_path: Path):
    path = tmp_path / "notes.nii"
    path.write_text("not an image\n" * 50)
    with pytest.raises(UnsupportedFileError) as caught:
        read_nifti(path)
    assert caught.value.path == path


def test_huge_declared_size_is_refused_before_allocating(tmp_path: Path):
    header = nib.Nifti1Header()
    header.set_data_shape((20000, 20000, 20000))
    header.set_data_dtype(np.int16)
    path = tmp_path / "huge.nii.gz"
    path.write_bytes(gzip.compress(header.binaryblock + bytes(4 + 100)))
    with pytest.raises(UnsupportedFileError, match="memory") as caught:
        read_nifti(path)
    assert caught.value.path == path
