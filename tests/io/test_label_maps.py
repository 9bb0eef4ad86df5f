"""Label maps (DICOM SEG and NIfTI) laid on real volumes: every labelled voxel at its millimetres."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from medviewer.core.errors import MedviewerError, UnsupportedFileError
from medviewer.core.label_map import PALETTE, LabelMap, default_colours
from medviewer.core.volume import Volume
from medviewer.io import open_volume
from medviewer.io.dicom_seg import cielab_to_rgb
from medviewer.io.label_maps import open_label_map
from tests.support.paths import XA30I_REF, pydicom_file, real_file

SEG = "highdicom/seg_image_ct_{}.dcm"


def seg_file(kind: str) -> Path:
    return real_file(SEG.format(kind))


def seg_pixels_mm(path: Path) -> dict[int, np.ndarray]:
    """LPS positions of each segment's "on" pixels, straight from the SEG's functional groups."""
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.reshape(-1, ds.Rows, ds.Columns)
    threshold = 0.5 * float(ds.MaximumFractionalValue) if ds.SegmentationType == "FRACTIONAL" else 0.5
    shared = ds.SharedFunctionalGroupsSequence[0]
    row_spacing, column_spacing = (float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing)
    cosines = np.array(shared.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=float)
    positions: dict[int, list[np.ndarray]] = {}
    for frame, item in zip(pixels, ds.PerFrameFunctionalGroupsSequence, strict=True):
        rows, columns = np.nonzero(frame >= threshold)
        origin = np.array(item.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        mm = origin + columns[:, None] * column_spacing * cosines[:3] + rows[:, None] * row_spacing * cosines[3:]
        positions.setdefault(int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber), []).append(mm)
    return {segment: np.concatenate(parts) for segment, parts in positions.items()}


def assert_same_positions(volume: Volume, labels: np.ndarray, expected_mm: np.ndarray) -> None:
    """The labelled voxels' centres and the expected points match one to one, within half a voxel."""
    voxels_mm = volume.index_to_world(np.argwhere(labels))
    half_voxel = np.asarray(volume.spacing) / 2
    for ours, theirs in ((voxels_mm, expected_mm), (expected_mm, voxels_mm)):
        nearest = np.abs(ours[:, None, :] - theirs[None, :, :])
        assert np.all(np.all(nearest <= half_voxel + 1e-4, axis=2).any(axis=1))


@pytest.fixture(scope="module")
def ct2(ct2_dir: Path) -> Volume:
    return open_volume(ct2_dir)


def test_binary_seg_lands_on_its_pixels_positions(ct2: Volume):
    path = seg_file("binary")
    label_map = open_label_map(path, ct2)
    expected = seg_pixels_mm(path)[1]
    assert label_map.array.shape == ct2.shape
    assert label_map.voxel_counts() == {1: len(expected)} == {1: 638}
    assert label_map.names == {1: "first segment"}
    assert label_map.colours == {1: PALETTE[0]}  # no recommended colour in the file: the palette's first
    assert label_map.source == "seg_image_ct_binary.dcm"
    assert label_map.warnings == []
    assert_same_positions(ct2, label_map.array == 1, expected)


@pytest.mark.parametrize("kind", ["binary_fractional", "true_fractional"])
def test_fractional_seg_is_thresholded_at_half_its_maximum(ct2: Volume, kind: str):
    path = seg_file(kind)
    label_map = open_label_map(path, ct2)
    expected = seg_pixels_mm(path)[1]
    assert label_map.voxel_counts() == {1: len(expected)}
    assert_same_positions(ct2, label_map.array == 1, expected)
    if kind == "binary_fractional":  # the same mask as the binary file, stored as probabilities
        np.testing.assert_array_equal(label_map.array, open_label_map(seg_file("binary"), ct2).array)


def test_overlapping_segments_later_wins_with_a_warning(ct2: Volume):
    path = seg_file("binary_overlap")
    label_map = open_label_map(path, ct2)
    positions = seg_pixels_mm(path)
    assert label_map.names == {1: "first segment", 2: "second segment"}
    assert label_map.voxel_counts() == {1: len(positions[1]) - len(positions[2]), 2: len(positions[2])}
    assert_same_positions(ct2, label_map.array == 2, positions[2])
    assert_same_positions(ct2, label_map.array > 0, positions[1])  # segment 2 lies inside segment 1
    assert label_map.warnings == ["segments 1 and 2 overlap in 16 voxel(s); segment 2 is shown there"]


def test_single_frame_seg_lands_on_its_single_slice_ct():
    path = seg_file("binary_single_frame")
    ct = open_volume(pydicom_file("CT_small.dcm"))
    label_map = open_label_map(path, ct)
    expected = seg_pixels_mm(path)[1]
    assert label_map.voxel_counts() == {1: len(expected)}
    assert_same_positions(ct, label_map.array == 1, expected)


def test_seg_frames_off_a_partial_volume_are_reported(ct2_dir: Path, tmp_path: Path):
    """Only three of CT2's four slices: the overlap SEG's frames at the missing slice are left out, said so."""
    folder = tmp_path / "three"
    folder.mkdir()
    for name in ("17136", "17166", "17196"):
        (folder / name).write_bytes((ct2_dir / name).read_bytes())
    partial = open_volume(folder)
    label_map = open_label_map(seg_file("binary_overlap"), partial)
    assert "2 frame(s) lie outside the volume and are not shown" in label_map.warnings
    assert label_map.voxel_counts() == {1: 36, 2: 12}


def test_seg_of_another_scan_is_a_typed_error_naming_the_file():
    path = seg_file("binary")
    ct = open_volume(pydicom_file("CT_small.dcm"))  # another patient, another frame of reference
    with pytest.raises(MedviewerError, match="frame of reference") as caught:
        open_label_map(path, ct)
    assert caught.value.path == path


def test_seg_that_misses_the_volume_is_a_typed_error_naming_the_file(ct2: Volume):
    path = seg_file("binary")
    moved = dataclasses.replace(ct2, origin=tuple(np.add(ct2.origin, (0.0, 0.0, 500.0))))
    with pytest.raises(MedviewerError, match="outside this volume") as caught:
        open_label_map(path, moved)
    assert caught.value.path == path


def test_seg_in_another_frame_of_reference_is_refused(ct2: Volume):
    path = seg_file("binary")
    elsewhere = dataclasses.replace(ct2, metadata={**ct2.metadata, "frame_of_reference_uid": "1.2.3.4"})
    with pytest.raises(MedviewerError, match="frame of reference") as caught:
        open_label_map(path, elsewhere)
    assert caught.value.path == path


def test_seg_of_a_2d_image_has_no_positions_and_is_unsupported(ct2: Volume):
    path = real_file("highdicom/seg_image_cr_binary.dcm")
    with pytest.raises(UnsupportedFileError, match="no position") as caught:
        open_label_map(path, ct2)
    assert caught.value.path == path


def test_a_dicom_image_is_not_a_label_map(ct2: Volume):
    path = pydicom_file("CT_small.dcm")
    with pytest.raises(UnsupportedFileError, match="not a segmentation"):
        open_label_map(path, ct2)


def test_recommended_cielab_colour_is_used(ct2: Volume, tmp_path: Path):
    ds = pydicom.dcmread(seg_file("binary"))
    ds.SegmentSequence[0].RecommendedDisplayCIELabValue = [34885, 53485, 50171]  # sRGB red, DICOM-scaled
    path = tmp_path / "red.dcm"
    ds.save_as(path)
    assert open_label_map(path, ct2).colours == {1: (255, 0, 0)}


@pytest.mark.parametrize(
    ("lab", "rgb"),
    [
        ((53.24, 80.09, 67.20), (255, 0, 0)),
        ((87.73, -86.18, 83.18), (0, 255, 0)),
        ((32.30, 79.19, -107.86), (0, 0, 255)),
        ((100.0, 0.0, 0.0), (255, 255, 255)),
        ((0.0, 0.0, 0.0), (0, 0, 0)),
    ],
)
def test_cielab_to_rgb_matches_published_srgb_primaries(lab: tuple[float, float, float], rgb: tuple[int, int, int]):
    scaled = (round(lab[0] * 65535 / 100), round((lab[1] + 128) * 65535 / 255), round((lab[2] + 128) * 65535 / 255))
    assert np.abs(np.subtract(cielab_to_rgb(scaled), rgb)).max() <= 1


@pytest.fixture(scope="module")
def mr() -> Volume:
    """A real sagittal-acquired MR, reoriented to LPS: its array order differs from the file's."""
    return open_volume(real_file(XA30I_REF))


def write_world_boxes(path: Path, boxes: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    """A NIfTI label map on its own grid (4 mm, axes permuted, RAS-stored, shifted), labels set by mm boxes."""
    shape = (40, 70, 50)  # (i, j, k) of the file
    affine = np.array(  # i runs superior, j anterior, k left-to-right: none of them as the MR's axes
        [[0, 0, 4.0, -100.0], [0, 4.0, 0, -130.0], [4.0, 0, 0, -60.0], [0, 0, 0, 1]]
    )
    ijk = np.indices(shape).reshape(3, -1).T
    ras = nib.affines.apply_affine(affine, ijk)
    lps = ras * np.array([-1.0, -1.0, 1.0])
    data = np.zeros(shape, dtype=np.float32)  # labels stored as floats, as many tools do
    for label, (low, high) in boxes.items():
        data.reshape(-1)[np.all((lps >= low) & (lps <= high), axis=1)] = label
    nib.save(nib.Nifti1Image(data, affine), path)


def test_nifti_label_map_lands_at_its_millimetres_on_a_real_mr(mr: Volume, tmp_path: Path):
    boxes = {
        1: (np.array([-20.0, -30.0, 0.0]), np.array([20.0, 10.0, 30.0])),
        7: (np.array([30.0, 20.0, -20.0]), np.array([50.0, 40.0, 0.0])),
    }
    path = tmp_path / "labels.nii.gz"
    write_world_boxes(path, boxes)
    label_map = open_label_map(path, mr)
    assert label_map.array.shape == mr.shape
    assert label_map.array.dtype == np.uint8
    assert set(label_map.names) == {1, 7}
    assert label_map.names[7] == "label 7"
    half_label_voxel = 2.0  # labels are nearest-neighbour on a 4 mm grid
    everywhere_mm = mr.index_to_world(np.indices(mr.shape).reshape(3, -1).T).reshape(*mr.shape, 3)
    for label, (low, high) in boxes.items():
        labelled_mm = mr.index_to_world(np.argwhere(label_map.array == label))
        assert len(labelled_mm) > 100
        assert np.all(labelled_mm >= low - half_label_voxel - 1e-6)
        assert np.all(labelled_mm <= high + half_label_voxel + 1e-6)
        deep_inside = np.all((everywhere_mm >= low + half_label_voxel) & (everywhere_mm <= high - half_label_voxel), -1)
        assert deep_inside.sum() > 100
        assert np.all(label_map.array[deep_inside] == label)


def test_nifti_label_map_outside_the_volume_is_a_typed_error(mr: Volume, tmp_path: Path):
    path = tmp_path / "far.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), nib.affines.from_matvec(np.eye(3), [900, 900, 900])), path)
    with pytest.raises(MedviewerError, match="outside this volume") as caught:
        open_label_map(path, mr)
    assert caught.value.path == path


def test_nifti_with_fractional_values_is_not_a_label_map(mr: Volume, tmp_path: Path):
    path = tmp_path / "probability.nii.gz"
    nib.save(nib.Nifti1Image(np.full((4, 4, 4), 0.25, np.float32), np.eye(4)), path)
    with pytest.raises(UnsupportedFileError, match="fractions") as caught:
        open_label_map(path, mr)
    assert caught.value.path == path


def test_label_map_counts_and_volumes(mr: Volume):
    array = np.zeros(mr.shape, dtype=np.uint8)
    array[10:12, 20:25, 30:33] = 2
    array[50, 60, 70] = 5
    label_map = LabelMap.from_array(array, source="x.nii.gz", names={2: "tumour"})
    assert label_map.voxel_counts() == {2: 30, 5: 1}
    voxel_mm3 = float(np.prod(mr.spacing))
    assert label_map.volumes_mm3(mr) == pytest.approx({2: 30 * voxel_mm3, 5: voxel_mm3})
    assert label_map.names == {2: "tumour", 5: "label 5"}
    assert label_map.colours == default_colours([2, 5])
    assert len(set(PALETTE)) == len(PALETTE)
    with pytest.raises(ValueError, match="integers"):
        LabelMap(array.astype(np.float32), {}, {}, "x")


def test_seg_on_a_finer_volume_covers_it_without_holes(ct2: Volume):
    """The same SEG on a grid of half the in-plane spacing keeps its area (no dotted pattern)."""
    coarse = open_label_map(seg_file("binary"), ct2)
    sx, sy, sz = ct2.spacing
    origin = np.asarray(ct2.origin) - ct2.direction @ np.array([sx / 4, sy / 4, 0.0])
    nz, ny, nx = ct2.shape
    fine = dataclasses.replace(
        ct2, array=np.zeros((nz, ny * 2, nx * 2), np.int16), spacing=(sx / 2, sy / 2, sz), origin=tuple(origin)
    )
    fine_map = open_label_map(seg_file("binary"), fine)
    assert fine_map.volumes_mm3(fine)[1] == pytest.approx(coarse.volumes_mm3(ct2)[1], rel=0.02)


def test_seg_with_a_malformed_header_is_a_typed_error_naming_the_file(ct2: Volume, tmp_path: Path):
    ds = pydicom.dcmread(seg_file("binary"))
    del ds.SegmentSequence[0].SegmentNumber
    path = tmp_path / "no-segment-number.dcm"
    ds.save_as(path)
    with pytest.raises(MedviewerError, match="incomplete or malformed") as caught:
        open_label_map(path, ct2)
    assert caught.value.path == path
