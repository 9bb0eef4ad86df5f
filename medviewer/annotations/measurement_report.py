"""Measurements leave as a DICOM SR: a TID 1500 Measurement Report (Comprehensive 3D SR) written with highdicom.

That is the object PACS archive with the study and that other viewers (OHIF, 3D Slicer, highdicom) read
back as measurements rather than as pictures of them. Each measurement is one TID 1410 planar ROI group
whose region is a SCOORD3D in the patient frame (LPS millimetres, the series' FrameOfReferenceUID):

- a distance: a POLYLINE of its two ends, with its Length in mm;
- an angle: a POLYLINE end, vertex, end, with its Angle in degrees;
- an ellipse: an ELLIPSE (major axis ends, then minor axis ends), a rectangle: a closed POLYGON, each
  with its Area in mm2 and the Mean, Standard Deviation, Minimum and Maximum of the voxels inside, in the
  volume's units (Hounsfield units for CT), as the measurement panel shows them.

Coordinates in the frame of reference need no image references, which the regular grid of a tilted or
gapped series could not give anyway; the series' files are the report's evidence (patient, study and the
instances measured on). Only a DICOM series with a frame of reference and a known place and pixel size in
the patient can be reported; anything else is refused with the reason.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

import medviewer
from medviewer.core.errors import MedviewerError
from medviewer.core.logs import safe_path
from medviewer.core.measurements import (
    Measurement,
    MeasurementKind,
    angle_degrees,
    display_to_world,
    distance_mm,
    region_statistics,
    world_points,
)
from medviewer.core.volume import Presentation, Volume
from medviewer.io.atomic_write import write_atomic
from medviewer.io.dicom_series import read_header

log = logging.getLogger(__name__)
# highdicom warns about a one-part patient name (common in test and research data), quoting the name: it is
# copied from the images as it is, and the warning would print it where consoles and logs are read.
warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning, module=r"highdicom\.")

MANUFACTURER = "medviewer"
SERIES_DESCRIPTION = "Measurements (medviewer)"
#: Far above the scanner's own series numbers, so the report sorts after the images in a PACS.
SERIES_NUMBER = 9901
#: The software as the observing device: derived from its name, so every report names the same device.
DEVICE_OBSERVER_UID = generate_uid(entropy_srcs=["medviewer", "measurement report device observer"])
#: CID 100 procedures by modality; other modalities report a generic imaging procedure.
PROCEDURES: dict[str, Code] = {
    "CT": codes.cid100.CTUnspecifiedBodyRegion,
    "MR": codes.cid100.MRIUnspecifiedBodyRegion,
    "PT": codes.cid100.PETUnspecifiedBodyRegion,
    "NM": codes.cid100.NMUnspecifiedBodyRegion,
}
KIND_NAMES = {
    MeasurementKind.DISTANCE: "Distance",
    MeasurementKind.ANGLE: "Angle",
    MeasurementKind.ELLIPSE: "Ellipse ROI",
    MeasurementKind.RECTANGLE: "Rectangle ROI",
}


@dataclass(frozen=True)
class WrittenReport:
    path: Path
    #: Measurement groups in the report.
    measurements: int
    #: Regions with no voxel centre inside them: they have no mean to report, so they are left out.
    empty_regions_left_out: int


def check_reportable(volume: Volume, measurements: Sequence[Measurement], source: Path) -> None:
    """Raise MedviewerError naming ``source`` (what the volume was opened from) when no valid report can be made.

    Cheap (no file is read), so the window can refuse before asking where to save."""
    if volume.metadata.get("source") != "dicom" or not volume.metadata.get("source_files"):
        raise MedviewerError(
            source,
            "measurements can be exported as a DICOM SR only from a DICOM series (this volume was not read from "
            "DICOM files, so there are no images for the report to refer to)",
        )
    if not volume.metadata.get("frame_of_reference_uid"):
        raise MedviewerError(
            source,
            "the series has no FrameOfReferenceUID, so measurement coordinates in a DICOM SR could not be tied to "
            "the patient; nothing was exported",
        )
    if volume.presentation is not Presentation.VOLUME:
        raise MedviewerError(
            source,
            f"the series is shown as {volume.presentation.value} frames, not as a stack of slices with a place in "
            "the patient, so its measurements cannot be exported as a DICOM SR of positions in the patient",
        )
    if not volume.orientation_known or not volume.spacing_known:
        raise MedviewerError(
            source,
            "the images do not say where they lie in the patient or how large their pixels are, so measurements "
            "in millimetres cannot be exported as a DICOM SR",
        )
    if not measurements:
        raise MedviewerError(source, "there are no measurements on this series to export")


def build_measurement_report(
    volume: Volume, measurements: Sequence[Measurement], source: Path
) -> tuple[hd.sr.Comprehensive3DSR, int]:
    """The report and the number of empty regions left out; MedviewerError naming the file when it cannot be made."""
    check_reportable(volume, measurements, source)
    frame = str(volume.metadata["frame_of_reference_uid"])
    groups = []
    left_out = 0
    for number, measurement in enumerate(measurements, start=1):
        group = _group(volume, measurement, frame, f"{KIND_NAMES[measurement.kind]} {number}")
        if group is None:
            left_out += 1
        else:
            groups.append(group)
    if not groups:
        raise MedviewerError(
            source, "every region drawn is empty (no voxel centre inside), so there is nothing to export"
        )
    evidence = [_evidence(Path(name)) for name in volume.metadata["source_files"]]
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=DEVICE_OBSERVER_UID, name=MANUFACTURER, model_name=MANUFACTURER
    )
    try:
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(
                observer_device_context=hd.sr.ObserverContext(
                    observer_type=codes.DCM.Device, observer_identifying_attributes=device
                )
            ),
            procedure_reported=PROCEDURES.get(volume.modality, codes.cid100.ImagingProcedure),
            imaging_measurements=groups,
        )
        document = hd.sr.Comprehensive3DSR(
            evidence=evidence,
            content=report,
            series_instance_uid=generate_uid(),
            series_number=SERIES_NUMBER,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer=MANUFACTURER,
            series_description=SERIES_DESCRIPTION,
            is_complete=True,
        )
    except (ValueError, TypeError, AttributeError) as error:  # highdicom's answer to headers it cannot use
        raise MedviewerError(source, f"a DICOM SR could not be made from this series' headers ({error})") from error
    document.SoftwareVersions = medviewer.__version__
    return document, left_out


def write_measurement_report(
    path: Path, volume: Volume, measurements: Sequence[Measurement], source: Path
) -> WrittenReport:
    """Write the report to ``path`` atomically (the old file, if any, stays whole when this fails)."""
    document, left_out = build_measurement_report(volume, measurements, source)
    buffer = io.BytesIO()
    try:
        pydicom.dcmwrite(buffer, document, enforce_file_format=True)
    except (ValueError, TypeError, OverflowError) as error:  # a value copied from the headers that cannot be encoded
        raise MedviewerError(source, f"a DICOM SR could not be encoded from this series' headers ({error})") from error
    try:
        write_atomic(Path(path), buffer.getvalue())
    except OSError as error:
        raise MedviewerError(
            path, f"the measurement report could not be written ({error.strerror or type(error).__name__})"
        ) from error
    log.info("measurement report written to %s", safe_path(path))
    return WrittenReport(Path(path), len(measurements) - left_out, left_out)


def _evidence(path: Path) -> Dataset:
    if not path.is_file():
        raise MedviewerError(
            path, "this image of the series is no longer there, and the report must name every image it measures"
        )
    return read_header(path)


def _group(
    volume: Volume, measurement: Measurement, frame: str, label: str
) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations | None:
    """One measurement as a TID 1410 group; None for a region with no voxel inside."""
    kind = measurement.kind
    if kind is MeasurementKind.DISTANCE:
        graphic_type, points = hd.sr.GraphicTypeValues3D.POLYLINE, world_points(volume, measurement)
        values = [_measurement(codes.SCT.Length, distance_mm(volume, measurement), codes.UCUM.Millimeter)]
    elif kind is MeasurementKind.ANGLE:
        graphic_type, points = hd.sr.GraphicTypeValues3D.POLYLINE, world_points(volume, measurement)
        values = [_measurement(codes.SCT.Angle, angle_degrees(volume, measurement), codes.UCUM.Degree)]
    else:
        stats = region_statistics(volume, measurement)
        if stats is None:
            return None
        if kind is MeasurementKind.ELLIPSE:
            graphic_type = hd.sr.GraphicTypeValues3D.ELLIPSE
        else:
            graphic_type = hd.sr.GraphicTypeValues3D.POLYGON
        points = display_to_world(volume, measurement.plane, measurement.slice_index, _outline(measurement))
        unit = codes.UCUM.HounsfieldUnit if volume.modality == "CT" else codes.UCUM.NoUnits
        values = [
            _measurement(codes.SCT.Area, stats.area_mm2, codes.UCUM.SquareMillimeter),
            _measurement(codes.SCT.Mean, stats.mean, unit),
            _measurement(codes.SCT.StandardDeviation, stats.sd, unit),
            _measurement(codes.SCT.Minimum, stats.minimum, unit),
            _measurement(codes.SCT.Maximum, stats.maximum, unit),
        ]
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=label),
        referenced_region=hd.sr.ImageRegion3D(
            graphic_type=graphic_type, graphic_data=np.asarray(points, dtype=float), frame_of_reference_uid=frame
        ),
        measurements=values,
    )


def _measurement(name: Code, value: float, unit: Code) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=unit)


def _outline(measurement: Measurement) -> list[tuple[float, float]]:
    """Display points of a region's SCOORD3D: an ellipse's major then minor axis ends (as DICOM orders them), or
    a rectangle's corners closed on the first."""
    (ua, va), (ub, vb) = measurement.points[:2]
    u0, u1, v0, v1 = min(ua, ub), max(ua, ub), min(va, vb), max(va, vb)
    if measurement.kind is MeasurementKind.RECTANGLE:
        return [(u0, v0), (u1, v0), (u1, v1), (u0, v1), (u0, v0)]
    uc, vc = (u0 + u1) / 2, (v0 + v1) / 2
    across, down = [(u0, vc), (u1, vc)], [(uc, v0), (uc, v1)]
    # display millimetres are true millimetres in the plane, so the longer on screen is the major axis
    return across + down if u1 - u0 >= v1 - v0 else down + across
