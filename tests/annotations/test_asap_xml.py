"""ASAP XML import from a hand-written CAMELYON-style file."""

from __future__ import annotations

from pathlib import Path

import pytest

from medviewer.annotations import AnnotationClass, AnnotationKind, read_asap_xml
from medviewer.core.errors import CorruptFileError, UnsupportedFileError
from tests.support.paths import real_file


def test_asap_file_imports_shapes_groups_and_colours() -> None:
    polygon, rectangle, spline, dot, point_set = read_asap_xml(real_file("annotations/asap_camelyon_style.xml"))
    assert polygon.kind is AnnotationKind.POLYGON and polygon.name == "Annotation 0"
    assert polygon.vertices.tolist() == [[1000, 1000], [1200, 1000], [1200, 1100], [1000, 1100]]  # by Order
    assert polygon.classification == AnnotationClass("_0", (255, 0, 0))
    assert rectangle.kind is AnnotationKind.RECTANGLE and rectangle.bounds() == (2000.5, 3000.25, 2100.5, 3050.25)
    assert rectangle.area(0.5) == pytest.approx(100 * 50 * 0.25)
    assert rectangle.classification == AnnotationClass("tumor", (0x64, 0xFE, 0x2E))  # the group's colour
    assert spline.kind is AnnotationKind.POLYGON and spline.area() == 4000
    assert dot.kind is AnnotationKind.POINTS and dot.vertices.tolist() == [[4321.75, 1234.5]]  # decimal commas
    assert dot.classification is None
    assert point_set.classification == AnnotationClass("lymphocytes", (0, 0, 255))  # unlisted group: own colour


@pytest.mark.parametrize(
    ("content", "error", "reason"),
    [
        ("<ASAP_Annotations><Annotations>", CorruptFileError, "not valid XML"),
        ("<Annotations/>", UnsupportedFileError, "not ASAP annotations"),
        ('<ASAP_Annotations><Annotations><Annotation Type="Polygon"><Coordinates>'
         '<Coordinate Order="0" X="1"/></Coordinates></Annotation></Annotations></ASAP_Annotations>',
         CorruptFileError, "annotation 1: a coordinate lacks"),
        ('<ASAP_Annotations><Annotations><Annotation Type="Blob"><Coordinates>'
         '<Coordinate Order="0" X="1" Y="1"/></Coordinates></Annotation></Annotations></ASAP_Annotations>',
         CorruptFileError, "'Blob' is not one ASAP writes"),
    ],
)
def test_bad_asap_files(tmp_path: Path, content: str, error: type, reason: str) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(content)
    with pytest.raises(error, match=reason):
        read_asap_xml(path)
