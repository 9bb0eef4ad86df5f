"""Measurements exported as a TID 1500 DICOM SR from real series, read back with highdicom: the same values,
the same places in the patient, the right evidence; and every volume that cannot be reported is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from medviewer.annotations.measurement_report import write_measurement_report
from medviewer.core.errors import MedviewerError
from medviewer.core.measurements import (
    Measurement,
    MeasurementKind,
    angle_degrees,
    display_to_world,
    distance_mm,
    region_statistics,
    world_points,
)
from medviewer.core.mpr import Plane
from medviewer.core.volume import Presentation, Volume
from medviewer.io import open_volume

COORDINATE_TOLERANCE_MM = 1e-3  # SCOORD3D holds 32-bit floats


def read_back(path: Path) -> tuple[hd.sr.Comprehensive3DSR, list]:
    report = hd.sr.srread(path)
    assert isinstance(report, hd.sr.Comprehensive3DSR)
    return report, report.content.get_planar_roi_measurement_groups()


def value(group: object, name: pydicom.sr.coding.Code) -> tuple[float, str]:
    (measurement,) = group.get_measurements(name=name)
    return measurement.value, measurement.unit.value


def test_a_ct_report_holds_each_measurement_with_its_value_and_place(ct2_dir: Path, tmp_path: Path):
    volume = open_volume(ct2_dir)
    # on the first original slice (the grid's other planes lie in a gap of the series)
    distance = Measurement(MeasurementKind.DISTANCE, Plane.AXIAL, 0, [(1.2, 1.1), (6.3, 5.4)])
    angle = Measurement(MeasurementKind.ANGLE, Plane.AXIAL, 0, [(1.0, 6.0), (4.0, 2.0), (7.0, 6.5)])
    ellipse = Measurement(MeasurementKind.ELLIPSE, Plane.AXIAL, 0, [(6.5, 1.0), (1.0, 5.0)])
    rectangle = Measurement(MeasurementKind.RECTANGLE, Plane.CORONAL, 8, [(0.5, 0.4), (7.3, 1.9)])
    measurements = [distance, angle, ellipse, rectangle]
    output = tmp_path / "report.dcm"
    written = write_measurement_report(output, volume, measurements, ct2_dir)
    assert (written.path, written.measurements, written.empty_regions_left_out) == (output, 4, 0)

    report, groups = read_back(output)
    source = pydicom.dcmread(ct2_dir / "17106", stop_before_pixels=True)
    assert report.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage
    assert (report.PatientID, report.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)
    assert report.SeriesInstanceUID != source.SeriesInstanceUID
    (evidence,) = report.CurrentRequestedProcedureEvidenceSequence
    (series,) = evidence.ReferencedSeriesSequence
    assert series.SeriesInstanceUID == volume.metadata["series_uid"]
    assert sorted(i.ReferencedSOPInstanceUID for i in series.ReferencedSOPSequence) == sorted(
        pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID for path in ct2_dir.iterdir()
    )
    assert [g.tracking_identifier for g in groups] == ["Distance 1", "Angle 2", "Ellipse ROI 3", "Rectangle ROI 4"]
    frame = volume.metadata["frame_of_reference_uid"]
    assert all(g.roi.frame_of_reference_uid == frame for g in groups)

    assert groups[0].roi.graphic_type == hd.sr.GraphicTypeValues3D.POLYLINE
    np.testing.assert_allclose(groups[0].roi.value, world_points(volume, distance), atol=COORDINATE_TOLERANCE_MM)
    length, unit = value(groups[0], codes.SCT.Length)
    assert unit == "mm" and length == pytest.approx(distance_mm(volume, distance), rel=1e-9)
    assert length == pytest.approx(np.hypot(5.1, 4.3), rel=1e-6)  # the axial plane is in true millimetres

    assert groups[1].roi.graphic_type == hd.sr.GraphicTypeValues3D.POLYLINE
    np.testing.assert_allclose(groups[1].roi.value, world_points(volume, angle), atol=COORDINATE_TOLERANCE_MM)
    degrees, unit = value(groups[1], codes.SCT.Angle)
    assert unit == "deg" and degrees == pytest.approx(angle_degrees(volume, angle), rel=1e-9)

    stats = region_statistics(volume, ellipse)
    assert groups[2].roi.graphic_type == hd.sr.GraphicTypeValues3D.ELLIPSE
    centre_v = 3.0
    expected_axes = display_to_world(
        volume, Plane.AXIAL, 0, [(1.0, centre_v), (6.5, centre_v), (3.75, 1.0), (3.75, 5.0)]
    )
    np.testing.assert_allclose(groups[2].roi.value, expected_axes, atol=COORDINATE_TOLERANCE_MM)
    area, unit = value(groups[2], codes.SCT.Area)
    assert unit == "mm2" and area == pytest.approx(np.pi * 2.75 * 2.0, rel=1e-9)
    mean, unit = value(groups[2], codes.SCT.Mean)
    assert unit == "[hnsf'U]" and mean == pytest.approx(stats.mean, rel=1e-9)
    assert value(groups[2], codes.SCT.StandardDeviation)[0] == pytest.approx(stats.sd, rel=1e-9)
    assert value(groups[2], codes.SCT.Minimum)[0] == stats.minimum
    assert value(groups[2], codes.SCT.Maximum)[0] == stats.maximum

    stats = region_statistics(volume, rectangle)
    assert groups[3].roi.graphic_type == hd.sr.GraphicTypeValues3D.POLYGON
    corners = [(0.5, 0.4), (7.3, 0.4), (7.3, 1.9), (0.5, 1.9), (0.5, 0.4)]
    np.testing.assert_allclose(
        groups[3].roi.value, display_to_world(volume, Plane.CORONAL, 8, corners), atol=COORDINATE_TOLERANCE_MM
    )
    # a coronal rectangle stands on the y = constant plane of slice 8
    y_of_slice_8 = volume.index_to_world([0, 8, 0])[1]
    np.testing.assert_allclose(groups[3].roi.value[:, 1], y_of_slice_8, atol=COORDINATE_TOLERANCE_MM)
    assert value(groups[3], codes.SCT.Area)[0] == pytest.approx(6.8 * 1.5, rel=1e-9)
    assert value(groups[3], codes.SCT.Mean)[0] == pytest.approx(stats.mean, rel=1e-9)


def test_an_mr_report_is_in_the_scanner_frame_without_hounsfield_units(xa30i_dir: Path, tmp_path: Path):
    volume = open_volume(xa30i_dir)
    ellipse = Measurement(MeasurementKind.ELLIPSE, Plane.SAGITTAL, 48, [(60.0, 70.0), (110.0, 150.0)])
    distance = Measurement(MeasurementKind.DISTANCE, Plane.CORONAL, 64, [(20.0, 30.0), (170.0, 200.0)])
    output = tmp_path / "mr.dcm"
    write_measurement_report(output, volume, [ellipse, distance], xa30i_dir)
    report, (roi, line) = read_back(output)
    assert report.Modality == "SR"
    assert (
        len(report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence) == 96
    )
    stats = region_statistics(volume, ellipse)
    mean, unit = value(roi, codes.SCT.Mean)
    assert unit == "1" and mean == pytest.approx(stats.mean, rel=1e-9) and stats.mean > 0
    assert value(roi, codes.SCT.Area)[0] == pytest.approx(np.pi * 25 * 40, rel=1e-9)
    # the vertical (taller) axis is the major one and comes first
    major = display_to_world(volume, Plane.SAGITTAL, 48, [(85.0, 70.0), (85.0, 150.0)])
    np.testing.assert_allclose(roi.roi.value[:2], major, atol=COORDINATE_TOLERANCE_MM)
    assert np.linalg.norm(roi.roi.value[1] - roi.roi.value[0]) == pytest.approx(80.0, abs=1e-3)
    np.testing.assert_allclose(line.roi.value, world_points(volume, distance), atol=COORDINATE_TOLERANCE_MM)
    assert value(line, codes.SCT.Length)[0] == pytest.approx(distance_mm(volume, distance), rel=1e-9)


@pytest.mark.skipif(
    shutil.which("dciodvfy") is None and not os.environ.get("MEDVIEWER_REQUIRE_TOOLS"),
    reason="dciodvfy (dicom3tools) is not installed; .ci/run installs it and requires it",
)
def test_the_report_passes_dciodvfy(ct2_dir: Path, tmp_path: Path):
    volume = open_volume(ct2_dir)
    output = tmp_path / "report.dcm"
    measurements = [
        Measurement(MeasurementKind.DISTANCE, Plane.AXIAL, 0, [(1.0, 1.0), (6.0, 5.0)]),
        Measurement(MeasurementKind.ELLIPSE, Plane.AXIAL, 0, [(1.0, 1.0), (7.0, 5.0)]),
    ]
    write_measurement_report(output, volume, measurements, ct2_dir)
    result = subprocess.run(["dciodvfy", str(output)], capture_output=True, text=True, timeout=60)
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
    assert errors == []


def test_empty_regions_are_left_out_and_counted(ct2_dir: Path, tmp_path: Path):
    volume = open_volume(ct2_dir)
    empty = Measurement(MeasurementKind.ELLIPSE, Plane.AXIAL, 0, [(3.0, 3.0), (3.0, 6.0)])  # no width
    distance = Measurement(MeasurementKind.DISTANCE, Plane.AXIAL, 0, [(1.0, 1.0), (6.0, 5.0)])
    written = write_measurement_report(tmp_path / "r.dcm", volume, [empty, distance], ct2_dir)
    assert (written.measurements, written.empty_regions_left_out) == (1, 1)
    _, groups = read_back(tmp_path / "r.dcm")
    assert [g.tracking_identifier for g in groups] == ["Distance 2"]
    with pytest.raises(MedviewerError, match="every region drawn is empty"):
        write_measurement_report(tmp_path / "none.dcm", volume, [empty], ct2_dir)
    assert not (tmp_path / "none.dcm").exists()


def synthetic(**metadata: object) -> Volume:
    return Volume(np.zeros((4, 8, 8), np.int16), (1, 1, 1), (0, 0, 0), modality="MR", metadata=dict(metadata))


A_DISTANCE = [Measurement(MeasurementKind.DISTANCE, Plane.AXIAL, 0, [(1.0, 1.0), (6.0, 5.0)])]


@pytest.mark.parametrize(
    ("volume", "measurements", "reason"),
    [
        (synthetic(source="nifti"), A_DISTANCE, "only from a DICOM series"),
        (synthetic(source="dicom", source_files=[]), A_DISTANCE, "only from a DICOM series"),
        (synthetic(source="dicom", source_files=["x.dcm"], frame_of_reference_uid=""), A_DISTANCE, "no FrameOfRef"),
        (synthetic(source="dicom", source_files=["x.dcm"], frame_of_reference_uid="1.2"), [], "no measurements"),
    ],
)
def test_volumes_that_cannot_be_reported_are_refused_naming_the_source(
    volume: Volume, measurements: list, reason: str, tmp_path: Path
):
    source = tmp_path / "Doe^Jane" / "brain.nii.gz"
    with pytest.raises(MedviewerError, match=reason) as caught:
        write_measurement_report(tmp_path / "out.dcm", volume, measurements, source)
    assert caught.value.path == source and str(caught.value).startswith(f"{source}: ")
    assert not (tmp_path / "out.dcm").exists()


def test_images_without_a_place_in_the_patient_are_refused(ct2_dir: Path, tmp_path: Path):
    volume = open_volume(ct2_dir)
    volume.orientation_known = False
    with pytest.raises(MedviewerError, match="do not say where they lie in the patient"):
        write_measurement_report(tmp_path / "out.dcm", volume, A_DISTANCE, ct2_dir)
    volume.orientation_known, volume.presentation = True, Presentation.CINE
    with pytest.raises(MedviewerError, match="shown as cine frames, not as a stack of slices"):
        write_measurement_report(tmp_path / "out.dcm", volume, A_DISTANCE, ct2_dir)
    assert not (tmp_path / "out.dcm").exists()


def test_a_source_image_gone_since_opening_is_named(ct2_dir: Path, tmp_path: Path):
    copy = tmp_path / "CT2"
    shutil.copytree(ct2_dir, copy)
    volume = open_volume(copy)
    (copy / "17136").unlink()
    with pytest.raises(MedviewerError, match="this image of the series is no longer there") as caught:
        write_measurement_report(tmp_path / "out.dcm", volume, A_DISTANCE, copy)
    assert caught.value.path == copy / "17136"


def test_an_existing_file_is_replaced_whole_and_an_unwritable_target_is_named(ct2_dir: Path, tmp_path: Path):
    volume = open_volume(ct2_dir)
    output = tmp_path / "report.dcm"
    output.write_bytes(b"an older report")
    write_measurement_report(output, volume, A_DISTANCE, ct2_dir)
    assert len(read_back(output)[1]) == 1
    missing_folder = tmp_path / "gone" / "report.dcm"
    with pytest.raises(MedviewerError, match="the measurement report could not be written") as caught:
        write_measurement_report(missing_folder, volume, A_DISTANCE, ct2_dir)
    assert caught.value.path == missing_folder
