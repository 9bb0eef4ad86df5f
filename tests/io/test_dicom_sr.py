"""Structured reports read as a readable tree: real reports from pydicom and a TID 1500 written by highdicom.

Expected values are read from the files here with plain pydicom, independently of the reader.
"""

from __future__ import annotations

import logging
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from medviewer.core.errors import UnsupportedFileError
from medviewer.io.dicom_sr import MAX_DEPTH, SrDocument, SrNode, read_sr, render_sr
from tests.support.paths import pydicom_file


def pydicom_items(ds: Dataset) -> list[tuple[str, str, str]]:
    """(relationship, value type, concept name meaning) of every content item, depth first, by plain pydicom."""
    found = []
    for item in ds.get("ContentSequence") or []:
        concept = item.ConceptNameCodeSequence[0].CodeMeaning if item.get("ConceptNameCodeSequence") else ""
        found.append((str(item.get("RelationshipType", "")), str(item.get("ValueType", "")), str(concept)))
        found.extend(pydicom_items(item))
    return found


def nodes(doc: SrDocument, concept: str) -> list[SrNode]:
    return [node for node in doc.walk() if node.concept == concept]


def only(doc: SrDocument, concept: str) -> SrNode:
    found = nodes(doc, concept)
    assert len(found) == 1, f"{len(found)} nodes named {concept!r}"
    return found[0]


@pytest.fixture(autouse=True)
def nothing_is_logged(caplog: pytest.LogCaptureFixture):
    """The reader logs nothing: a report's content can name people."""
    with caplog.at_level(logging.DEBUG, logger="medviewer"):
        yield
    assert [record for record in caplog.records if record.name.startswith("medviewer")] == []


def test_offis_comprehensive_sr_tree_and_values():
    path = pydicom_file("test-SR.dcm")
    ds = pydicom.dcmread(path)
    doc = read_sr(path)
    assert doc.title == ds.ConceptNameCodeSequence[0].CodeMeaning == "Diagnosis"
    assert (doc.completion, doc.verification) == (ds.CompletionFlag, ds.VerificationFlag) == ("COMPLETE", "VERIFIED")
    assert doc.sop_class == "Comprehensive SR Storage"
    assert doc.source == "test-SR.dcm"
    assert [(n.relationship, n.value_type, n.concept) for n in doc.walk()] == pydicom_items(ds)

    uid_item = ds.ContentSequence[0]
    assert only(doc, "Some UID").value == uid_item.UID == "1.2.3.4.5"
    section = ds.ContentSequence[1]
    diameter = section.ContentSequence[1]
    measured = diameter.MeasuredValueSequence[0]
    diameters = nodes(doc, "Diameter")
    assert len(diameters) == 2
    assert diameters[0].value == f"{measured.NumericValue} {measured.MeasurementUnitsCodeSequence[0].CodeValue}"
    assert diameters[0].value == "3 cm" and diameters[0].number == 3.0 and diameters[0].unit == "cm"
    assert [child.value for child in diameters[0].children] == [
        diameter.ContentSequence[0].ConceptCodeSequence[0].CodeMeaning
    ]
    first_text = doc.content[1].children[0]
    assert (first_text.value_type, first_text.value) == ("TEXT", section.ContentSequence[0].TextValue)
    assert [c.value for c in first_text.children] == ["Sample Code 1", "Sample Code 2"]

    composite, image = doc.content[3], doc.content[4]
    referenced = ds.ContentSequence[4].ReferencedSOPSequence[0]
    assert image.value == f"CT Image Storage (instance {referenced.ReferencedSOPInstanceUID}, frame(s) 5, 2)"
    assert composite.value == "Basic Text SR Storage (instance 9.8.7.6)"
    assert [(c.concept, c.value) for c in composite.children] == [
        ("Date", "2000-12-06"),
        ("Time", "12:00:00"),
        ("DateTime", "2000-12-06 12:00:00"),
    ]
    graphic = ds.ContentSequence[2].ContentSequence[1]
    assert only(doc, "SCoord Code").value == f"{graphic.GraphicType}, {len(graphic.GraphicData) // 2} points"
    assert only(doc, "TCoord Code").value == "SEGMENT, 2 time points"
    assert only(doc, "Key Image").value == "MR Image Storage (instance 1.2.3.4.0.1)"
    waveform = [n for n in doc.walk() if n.value_type == "WAVEFORM"]
    assert [n.value for n in waveform] == ["Hemodynamic Waveform Storage (instance 1.2.3.4.5)"]
    references = [(n.by_reference, n.label, n.value) for n in doc.walk() if n.by_reference]
    assert references == [
        ("1.3.2", "Reference", "selected from content item 1.3.2"),
        ("1.2.2.1", "Reference", "inferred from content item 1.2.2.1"),
    ]
    assert doc.placeholders == []


def test_offis_report_renders_as_indented_readable_lines():
    path = pydicom_file("test-SR.dcm")
    ds = pydicom.dcmread(path)
    lines = render_sr(read_sr(path))
    assert lines[:2] == ["Diagnosis", "(Comprehensive SR Storage; complete, verified)"]
    assert "  Some UID: 1.2.3.4.5" in lines
    assert "    Diameter: 3 cm" in lines
    assert "      Code: Sample Code" in lines
    assert "  Image: CT Image Storage (instance 1.2.3.4.5.0, frame(s) 5, 2)" in lines
    text = "\n".join(lines)
    assert str(ds.PatientName) not in text and "S R" not in text
    for date in (ds.ContentDate, ds.InstanceCreationDate):
        assert date not in text and f"{date[:4]}-{date[4:6]}-{date[6:]}" not in text
    # a multi-line text value keeps its continuation lines under the value, not among the children
    start = lines.index("  Code: Sample Text")
    assert lines[start + 1 : start + 4] == ["        A", "        B", "        C"]


@pytest.mark.parametrize("name", ["reportsi.dcm", "reportsi_with_empty_number_tags.dcm"])
def test_basic_text_reports(name: str):
    path = pydicom_file(name)
    ds = pydicom.dcmread(path)
    doc = read_sr(path)
    assert doc.title == "Document Title"
    assert (doc.completion, doc.verification) == ("PARTIAL", "UNVERIFIED")
    assert doc.sop_class == "Basic Text SR Storage"
    assert [(n.relationship, n.value_type, n.concept) for n in doc.walk()] == pydicom_items(ds)
    observer = only(doc, "Recording Observer's Name")
    assert observer.value_type == "PNAME" and observer.value == str(ds.ContentSequence[1].PersonName) == "Enter text"
    modes = [n.value for n in nodes(doc, "Observation Context Mode")]
    assert modes == [item.ConceptCodeSequence[0].CodeMeaning for item in ds.ContentSequence if item.ValueType == "CODE"]
    assert modes == ["DIRECT", "PATIENT"]
    heading = only(doc, "Section Heading")
    assert [(c.concept, c.value) for c in heading.children] == [
        ("Report Text", "Enter text"),
        ("Image Reference", "object of unknown SOP class 0 (instance 0)"),
    ]
    assert render_sr(doc) == render_sr(read_sr(pydicom_file("reportsi.dcm")))
    lines = render_sr(doc)
    assert lines[:2] == ["Document Title", "(Basic Text SR Storage; partial, unverified)"]
    assert "    Report Text: Enter text" in lines
    assert str(ds.PatientName) not in "\n".join(lines[:2])


def write_tid1500(path: Path) -> Dataset:
    """A Measurement Report as highdicom writes it: one planar ROI group with a finding and two measurements."""
    ct = pydicom.dcmread(pydicom_file("CT_small.dcm"))
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="Lesion 1"),
        referenced_region=hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE,
            graphic_data=np.array([[10.0, 20.0, -5.0], [22.5, 20.0, -5.0]]),
            frame_of_reference_uid=ct.FrameOfReferenceUID,
        ),
        finding_type=codes.SCT.Mass,
        finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.Lung)],
        measurements=[
            hd.sr.Measurement(name=codes.SCT.Diameter, value=12.5, unit=codes.UCUM.Millimeter),
            hd.sr.Measurement(name=codes.SCT.Area, value=98.25, unit=codes.UCUM.SquareMillimeter),
            hd.sr.Measurement(name=codes.SCT.Mean, value=-12.0, unit=codes.UCUM.HounsfieldUnit),
        ],
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(
            observer_device_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Device,
                observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(uid=generate_uid()),
            )
        ),
        procedure_reported=codes.cid100.CTUnspecifiedBodyRegion,
        imaging_measurements=[group],
    )
    document = hd.sr.Comprehensive3DSR(
        evidence=[ct],
        content=report,
        series_instance_uid=generate_uid(),
        series_number=99,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="tests",
        is_complete=True,
    )
    document.save_as(path, enforce_file_format=True)
    return document


def test_a_highdicom_measurement_report(tmp_path: Path):
    path = tmp_path / "tid1500.dcm"
    document = write_tid1500(path)
    doc = read_sr(path)
    assert doc.title == "Imaging Measurement Report"
    assert doc.template == "1500"
    assert doc.sop_class == "Comprehensive 3D SR Storage"
    assert (doc.completion, doc.verification) == ("COMPLETE", "UNVERIFIED")
    assert [(n.relationship, n.value_type, n.concept) for n in doc.walk()] == pydicom_items(pydicom.dcmread(path))

    numbers = {n.concept: (n.number, n.unit, n.value) for n in doc.walk() if n.value_type == "NUM"}
    assert numbers == {
        "Diameter": (12.5, "mm", "12.5 mm"),
        "Area": (98.25, "mm2", "98.25 mm2"),
        "Mean": (-12.0, "[hnsf'U]", "-12.0 HU"),
    }
    assert only(doc, "Finding").value == "Mass"
    assert only(doc, "Finding Site").value == "Lung"
    assert only(doc, "Tracking Identifier").value == "Lesion 1"
    assert only(doc, "Image Region").value_type == "SCOORD3D"
    assert only(doc, "Image Region").value == "POLYLINE, 2 points"
    group = only(doc, "Measurement Group")
    assert group.value_type == "CONTAINER" and only(doc, "Diameter") in group.children

    lines = render_sr(doc)
    assert lines[:2] == [
        "Imaging Measurement Report",
        "(Comprehensive 3D SR Storage, template TID 1500; complete, unverified)",
    ]
    assert "      Finding: Mass" in lines
    assert "      Diameter: 12.5 mm" in lines
    assert "      Mean: -12.0 HU" in lines
    assert str(document.PatientName) not in "\n".join(lines)
    assert str(document.PatientID) not in "\n".join(lines)


def damaged_offis(tmp_path: Path) -> Path:
    """test-SR.dcm with broken items: a missing text, code, measurement, an empty and an unknown item."""
    ds = pydicom.dcmread(pydicom_file("test-SR.dcm"))
    section = ds.ContentSequence[1].ContentSequence
    del section[0].TextValue
    del section[0].ContentSequence[0].ConceptCodeSequence
    del section[1].MeasuredValueSequence
    inner = section[3].ContentSequence
    inner[1].ValueType = "GRAPHIC"  # no such value type
    inner[2] = Dataset()  # an empty item
    del ds.ConceptNameCodeSequence
    path = tmp_path / "damaged.dcm"
    ds.save_as(path)
    return path


def test_damaged_items_become_placeholders_naming_what_is_missing(tmp_path: Path):
    doc = read_sr(damaged_offis(tmp_path))
    assert doc.title == "[no document title: ConceptNameCodeSequence is missing]"
    section = doc.content[1].children
    assert section[0].value == "[missing TextValue]"
    assert section[0].children[0].value == "[missing ConceptCodeSequence]"
    assert section[1].concept == "Diameter" and section[1].value == "[missing MeasuredValueSequence: no value given]"
    assert section[1].number is None
    inner = section[3].children
    assert inner[1].value == "[value type GRAPHIC is not shown by this viewer]"
    assert inner[2].value == "[empty content item]"
    assert doc.placeholders == [
        "[no document title: ConceptNameCodeSequence is missing]",
        "[missing TextValue]",
        "[missing ConceptCodeSequence]",
        "[missing MeasuredValueSequence: no value given]",
        "[value type GRAPHIC is not shown by this viewer]",
        "[empty content item]",
    ]
    lines = render_sr(doc)
    assert lines[0] == "[no document title: ConceptNameCodeSequence is missing]"
    assert "    Text Code: [missing TextValue]" in lines
    assert "      Diameter: [value type GRAPHIC is not shown by this viewer]" in lines
    assert "      Item: [empty content item]" in lines
    assert "  Image: CT Image Storage (instance 1.2.3.4.5.0, frame(s) 5, 2)" in lines  # the rest is still there


def test_a_report_without_content_and_a_deeply_nested_one(tmp_path: Path):
    ds = pydicom.dcmread(pydicom_file("reportsi.dcm"))
    del ds.ContentSequence
    ds.save_as(tmp_path / "no-content.dcm")
    doc = read_sr(tmp_path / "no-content.dcm")
    assert render_sr(doc)[2:] == ["  Item: [the report has no content: ContentSequence is missing]"]

    ds = pydicom.dcmread(pydicom_file("reportsi.dcm"))
    leaf = ds
    for _ in range(MAX_DEPTH + 10):
        item = Dataset()
        item.RelationshipType = "CONTAINS"
        item.ValueType = "CONTAINER"
        leaf.ContentSequence = Sequence([item])
        leaf = item
    ds.save_as(tmp_path / "deep.dcm")
    doc = read_sr(tmp_path / "deep.dcm")
    depth, node = 0, doc.content[0]
    while node.children:
        depth, node = depth + 1, node.children[0]
    assert depth == MAX_DEPTH
    assert node.value == f"[1 content item(s) nested deeper than {MAX_DEPTH} levels are not shown]"


def test_a_file_that_is_not_a_report_is_an_unsupported_file_naming_it(tmp_path: Path):
    path = pydicom_file("CT_small.dcm")
    with pytest.raises(UnsupportedFileError, match="CT Image Storage, not a structured report") as caught:
        read_sr(path)
    assert caught.value.path == path and str(path) in str(caught.value)
    text = tmp_path / "report.dcm"
    text.write_text("Findings: none.\n")
    with pytest.raises(UnsupportedFileError, match="not a DICOM file") as caught:
        read_sr(text)
    assert caught.value.path == text
