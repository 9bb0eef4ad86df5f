"""QuPath GeoJSON: a hand-written QuPath 0.5 export and a 0.2-era list import intact; our files round-trip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from medviewer.annotations import Annotation, AnnotationClass, AnnotationKind, read_geojson, write_geojson
from medviewer.core.errors import CorruptFileError, PathNotFoundError, UnsupportedFileError
from tests.support.paths import real_file


def test_qupath_export_imports_with_classes_colours_and_properties() -> None:
    tumour, stroma, necrosis, cells, margin, positive = read_geojson(real_file("annotations/qupath_0.5_export.geojson"))
    assert tumour.id == "6a2f7f0c-3b1e-4d8a-9a51-2c7e1f0b9d11"
    assert tumour.kind is AnnotationKind.POLYGON
    assert tumour.classification == AnnotationClass("Tumor", (200, 0, 0))
    assert (tumour.name, tumour.locked) == ("Region A", True)
    assert tumour.measurements == {"Num Detections": 42.0, "Area µm^2": 1250.0}
    assert tumour.vertices.tolist() == [[1000, 1000], [1200, 1000], [1200, 1100], [1000, 1100]]
    assert tumour.area(0.25) == pytest.approx(1250.0)
    assert stroma.classification == AnnotationClass("Stroma", (150, 200, 150)) and not stroma.locked
    assert stroma.rings == ((4, 4),) and stroma.area() == 150000
    assert necrosis.kind is AnnotationKind.MULTIPOLYGON and necrosis.area() == 50 + 400
    assert cells.kind is AnnotationKind.POINTS and cells.classification == AnnotationClass("Lymphocytes", (0, 128, 255))
    assert cells.vertices.tolist() == [[1500.25, 1600.75], [1510.0, 1620.5], [1533.125, 1641.0]]
    assert margin.kind is AnnotationKind.LINE and margin.classification is None and margin.name == "Margin"
    assert margin.perimeter(0.5) == pytest.approx(250.0)
    assert positive.classification == AnnotationClass("Tumor: Positive", (255, 64, 64))


def test_legacy_feature_list_with_packed_colours_measurement_lists_and_string_classes() -> None:
    rectangle, point = read_geojson(real_file("annotations/qupath_0.2_legacy_features.json"))
    assert rectangle.classification == AnnotationClass("Tumor", (200, 0, 0))  # colorRGB -3670016
    assert rectangle.measurements["Area µm^2"] == 1250.0 and math.isnan(rectangle.measurements["Missing"])
    assert rectangle.id != point.id  # "PathAnnotationObject" is no UUID: each gets a new one
    assert point.kind is AnnotationKind.POINTS and point.vertices.tolist() == [[250.5, 300.25]]
    assert point.classification.name == "Other" and len(point.classification.colour) == 3


def test_round_trip_keeps_every_kind_and_exact_coordinates(tmp_path: Path) -> None:
    tumour = AnnotationClass("Tumor", (200, 0, 0))
    originals = [
        Annotation.rectangle(10.25, 20.5, 110.75, 70.125, classification=tumour, name="R", locked=True),
        Annotation.ellipse(1000.1, 2000.2, 1400.3, 2200.4, measurements={"score": 0.5}),
        Annotation.polygon([[0, 0], [400, 0], [400, 400]], [[[100, 50], [200, 50], [200, 60]]]),
        Annotation.polygon(np.random.default_rng(0).uniform(0, 90000, (300, 2)), freehand=True),
        Annotation.multipolygon([[[[0, 0], [1, 0], [1, 1]]], [[[5, 5], [6, 5], [6, 6]]]]),
        Annotation.line([[1.001, 2.002], [3.003, 4.004], [5, 6]]),
        Annotation.points([[7.5, 8.5]]),
        Annotation.points([[7.5, 8.5], [9, 10]], name="Ünïcode naam"),
    ]
    path = tmp_path / "slide.svs.annotations.geojson"
    write_geojson(path, originals)
    read_back = read_geojson(path)
    for original, copy in zip(originals, read_back, strict=True):
        assert (copy.id, copy.kind, copy.rings) == (original.id, original.kind, original.rings)
        np.testing.assert_array_equal(copy.vertices, original.vertices)
        assert (copy.classification, copy.name) == (original.classification, original.name)
        assert copy.locked == original.locked
        assert copy.measurements == original.measurements
    assert abs(read_back[5].vertices[0, 0] - 1.001) < 0.01


def test_written_file_is_qupath_shaped(tmp_path: Path) -> None:
    path = tmp_path / "out.geojson"
    rect = Annotation.rectangle(0, 0, 10, 5, classification=AnnotationClass("Stroma", (150, 200, 150)))
    write_geojson(path, [rect, Annotation.points([[1, 2]])])
    data = json.loads(path.read_text())
    assert data["type"] == "FeatureCollection"
    feature = data["features"][0]
    assert feature["id"] == rect.id and feature["type"] == "Feature"
    assert feature["geometry"] == {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 5], [0, 5], [0, 0]]]}
    assert feature["properties"] == {
        "objectType": "annotation",
        "classification": {"name": "Stroma", "color": [150, 200, 150]},
        "metadata": {"medviewer.kind": "rectangle"},
    }
    assert data["features"][1]["geometry"] == {"type": "Point", "coordinates": [1, 2]}
    assert data["features"][1]["properties"] == {"objectType": "annotation"}


def test_an_ellipse_edited_elsewhere_comes_back_as_a_polygon(tmp_path: Path) -> None:
    path = tmp_path / "e.geojson"
    write_geojson(path, [Annotation.ellipse(0, 0, 100, 50)])
    data = json.loads(path.read_text())
    data["features"][0]["geometry"]["coordinates"][0][3] = [90, 90]  # someone dragged a vertex in QuPath
    path.write_text(json.dumps(data))
    assert read_geojson(path)[0].kind is AnnotationKind.POLYGON


def test_bare_feature_without_object_type_and_multipolygon_of_one(tmp_path: Path) -> None:
    path = tmp_path / "one.json"
    geometry = {"type": "MultiPolygon", "coordinates": [[[[0, 0], [4, 0], [4, 3], [0, 0]]]]}
    feature = {"type": "Feature", "geometry": geometry, "properties": None}
    path.write_text(json.dumps(feature))
    (annotation,) = read_geojson(path)
    assert annotation.kind is AnnotationKind.POLYGON and annotation.area() == 6


@pytest.mark.parametrize(
    ("content", "error", "reason"),
    [
        ('{"type": "FeatureCollection", "features": [', CorruptFileError, "not valid JSON"),
        ("\xff\xfe garbage", CorruptFileError, "not valid JSON"),
        ('{"type": "Topology"}', UnsupportedFileError, "not GeoJSON annotations"),
        ('{"type": "FeatureCollection"}', CorruptFileError, "no list of features"),
        ('{"type": "Feature", "geometry": null}', CorruptFileError, "feature 1: has no geometry"),
        ('{"type": "Feature", "geometry": {"type": "MultiLineString", "coordinates": []}}', CorruptFileError,
         "'MultiLineString' is not supported"),
        ('{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, "a"]]]}}',
         CorruptFileError, "not lists of numbers"),
        ('{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [0, 0]]]}}',
         CorruptFileError, "at least three vertices"),
        ('{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]}, '
         '"properties": {"classification": {"name": "T", "color": [1, 2]}}}', CorruptFileError, "not \\[red"),
    ],
)
def test_bad_files_raise_typed_errors_naming_the_file(tmp_path: Path, content: str, error: type, reason: str) -> None:
    path = tmp_path / "bad.geojson"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(error, match=reason) as raised:
        read_geojson(path)
    assert raised.value.path == path and str(path) in str(raised.value)


def test_missing_file() -> None:
    with pytest.raises(PathNotFoundError):
        read_geojson("/no/such/file.geojson")
