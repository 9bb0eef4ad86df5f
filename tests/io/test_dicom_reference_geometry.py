"""DICOM series against dcm2niix's reference NIfTIs, voxel for voxel, compared in world coordinates."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medviewer.io import list_series, open_volume
from medviewer.io.nifti import read_nifti
from tests.support.geometry import assert_same_in_world
from tests.support.paths import real_file

ENH = "dcm_qa_enh"


def test_sagittal_t1w_series_equals_the_reference_in_world_space(xa30i_dir: Path):
    ours = open_volume(xa30i_dir)
    reference = read_nifti(real_file("dcm_qa_xa30i/Ref/5001_anat-T1w_acq-tfl.nii.gz"))
    assert ours.array.dtype == np.uint16  # no rescale: the stored type
    assert ours.warnings == []
    np.testing.assert_allclose(ours.spacing, (2, 2, 2), atol=1e-4)
    values = assert_same_in_world(ours, reference)
    np.testing.assert_array_equal(values, reference.array)
    assert reference.array.max() > 2000  # a real image, not an empty one


def test_enhanced_siemens_4d_equals_the_reference_at_every_time_point():
    folder = real_file(f"{ENH}/Siemens_XA10")
    reference_path = real_file(f"{ENH}/Ref/Siemens_REST1_w_SMS_PF7-8_6.nii.gz")
    for time_index in range(4):
        ours = open_volume(folder, time_index=time_index)
        reference = read_nifti(reference_path, time_index=time_index)
        assert ours.shape == (6, 64, 64)
        assert f"4 time points; showing time point {time_index + 1}" in ours.warnings[0]
        np.testing.assert_array_equal(assert_same_in_world(ours, reference), reference.array)


def test_enhanced_philips_magnitude_and_field_map_are_separate_stacks_in_the_right_place():
    path = real_file(f"{ENH}/Philips/IM_0027_fMAP.dcm")
    stacks = list_series(path)
    assert [(s.slices, s.frames, s.time_points) for s in stacks] == [(32, 32, 1), (32, 32, 1)]
    assert [s.image_type.split("\\")[-1] for s in stacks] == ["M", "FIELD_MAP"]
    field_map = open_volume(path, series_uid=stacks[1].key)
    assert field_map.array.dtype == np.float32  # per-frame rescale slope 0.2442, intercept -500
    reference = read_nifti(real_file(f"{ENH}/Ref/Philips_WIP_B0_NS_801_e2_fieldmaphz.nii.gz"))
    # the reference stores Hz as int16 with its own scale: equal to within its rounding (range +-500 Hz)
    np.testing.assert_allclose(assert_same_in_world(field_map, reference), reference.array, atol=0.01)
    magnitude = open_volume(path)
    assert "2 separate stacks" in magnitude.warnings[0]
    reference = read_nifti(real_file(f"{ENH}/Ref/Philips_WIP_B0_NS_801_e1.nii.gz"))
    values = assert_same_in_world(magnitude, reference).astype(float)
    # dcm2niix writes Philips' private floating-point scale; ours is the DICOM rescale: same image, scaled
    scale = reference.array.max() / values.max()
    np.testing.assert_allclose(values * scale, reference.array, rtol=1e-5, atol=1e-3 * reference.array.max())
