"""Counting with points (one MultiPoint per class, as QuPath), importing a file twice, and export file names."""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest

from medviewer.annotations import (
    DEFAULT_CLASSES,
    Annotation,
    AnnotationClass,
    AnnotationDocument,
    AnnotationKind,
    export_path,
    import_into,
    read_geojson,
    write_geojson,
)
from tests.support.paths import real_file


def test_points_of_one_class_gather_in_one_multipoint_and_undo_takes_the_last_off() -> None:
    document = AnnotationDocument(classes=DEFAULT_CLASSES)
    first = document.add_point(10, 20, "Tumor")
    for x in (30, 50, 70):
        assert document.add_point(x, 20, "Tumor") == first
    stroma = document.add_point(5, 5, "Stroma")
    loose = document.add_point(1, 1)
    assert len({first, stroma, loose}) == 3 and len(document) == 3
    tumour = document.get(first)
    assert tumour.kind is AnnotationKind.POINTS and tumour.vertices.tolist() == [[10, 20], [30, 20], [50, 20], [70, 20]]
    assert tumour.classification.name == "Tumor" and document.get(loose).classification is None
    document.undo()
    document.undo()
    assert document.undo_description() == "add point"
    document.undo()
    assert document.get(first).vertices.tolist() == [[10, 20], [30, 20], [50, 20]]
    document.redo()
    assert len(document.get(first).vertices) == 4
    for _ in range(4):
        document.undo()
    assert first not in document  # the first point made the annotation: undoing it removes the annotation


def test_a_locked_points_annotation_is_left_alone_and_a_new_one_started() -> None:
    document = AnnotationDocument(classes=DEFAULT_CLASSES)
    counted = document.add_point(10, 10, "Tumor")
    document.set_locked([counted], True)
    assert document.add_point(20, 20, "Tumor") != counted
    assert len(document.get(counted).vertices) == 1


def test_a_points_file_written_and_read_keeps_one_multipoint(tmp_path: Path) -> None:
    document = AnnotationDocument(classes=DEFAULT_CLASSES)
    for x in range(5):
        document.add_point(100 + x, 200, "Immune cells")
    path = tmp_path / "points.geojson"
    write_geojson(path, document.annotations)
    (points,) = read_geojson(path)
    assert points.kind is AnnotationKind.POINTS and len(points.vertices) == 5
    assert b'"MultiPoint"' in path.read_bytes()


def test_importing_a_file_twice_keeps_one_copy_per_id() -> None:
    source = real_file("annotations/qupath_0.5_export.geojson")
    document = AnnotationDocument(classes=DEFAULT_CLASSES)
    first = import_into(document, read_geojson(source))
    assert (first.added, first.skipped, first.copies) == (6, 0, 0)
    steps = document.revision
    again = import_into(document, read_geojson(source))
    assert (again.added, again.skipped, again.copies) == (0, 6, 0)
    assert len(document) == 6 and document.revision == steps  # nothing done, nothing to undo


def test_an_annotation_edited_since_comes_in_as_a_copy_beside_the_one_here() -> None:
    source = real_file("annotations/qupath_0.5_export.geojson")
    document = AnnotationDocument(classes=DEFAULT_CLASSES)
    import_into(document, read_geojson(source))
    moved = document.annotations[1]  # the stroma ring (the first one is locked)
    document.move([moved.id], 5, 0)
    summary = import_into(document, read_geojson(source))
    assert (summary.added, summary.skipped, summary.copies) == (1, 5, 1)
    copy = document.annotations[-1]
    assert copy.id != moved.id and copy.bounds()[0] == moved.bounds()[0] - 5
    document.undo()
    assert len(document) == 6


def test_same_as_compares_boxes_as_boxes_and_missing_measurements_as_equal() -> None:
    drawn = Annotation.rectangle(900, 700, 100, 50, measurements={"Score": math.nan})  # dragged up and left
    read_back = Annotation.rectangle(100, 50, 900, 700, measurements={"Score": math.nan}, id=drawn.id)
    assert drawn.same_as(read_back)
    assert not drawn.same_as(Annotation.rectangle(100, 50, 900, 701, measurements={"Score": math.nan}))
    assert not drawn.same_as(Annotation.ellipse(100, 50, 900, 700, measurements={"Score": math.nan}))
    tumour = AnnotationClass("Tumor", (200, 0, 0))
    line = Annotation.line([[0, 0], [10, 10]], classification=tumour)
    assert line.same_as(Annotation.line([[0, 0], [10, 10.004]], classification=AnnotationClass("Tumor", (1, 2, 3))))
    assert not line.same_as(Annotation.line([[0, 0], [10, 10]], classification=None))
    assert not line.same_as(Annotation.line([[0, 0], [10, 10]], classification=tumour, name="Margin"))


@pytest.mark.parametrize(
    ("chosen", "written"),
    [
        ("case 12", "case 12.geojson"),
        ("case.12", "case.12.geojson"),
        ("slide.svs", "slide.svs.geojson"),
        ("export.geojson", "export.geojson"),
        ("export.GeoJSON", "export.GeoJSON"),
        ("export.json", "export.json"),
    ],
)
def test_export_appends_geojson_when_the_name_has_no_such_suffix(tmp_path: Path, chosen: str, written: str) -> None:
    assert export_path(tmp_path / chosen) == tmp_path / written


def test_ids_in_an_import_are_uuids() -> None:
    for annotation in read_geojson(real_file("annotations/qupath_0.5_export.geojson")):
        assert str(uuid.UUID(annotation.id)) == annotation.id
