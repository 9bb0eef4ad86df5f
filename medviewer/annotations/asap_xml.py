"""Import of ASAP XML annotations (ASAP, the CAMELYON challenges' format), in level-0 pixels::

    <ASAP_Annotations>
      <Annotations>
        <Annotation Name="Annotation 0" Type="Polygon" PartOfGroup="tumor" Color="#F4FA58">
          <Coordinates><Coordinate Order="0" X="10.5" Y="20"/>...</Coordinates>
        </Annotation>
      </Annotations>
      <AnnotationGroups><Group Name="tumor" PartOfGroup="None" Color="#64FE2E"/></AnnotationGroups>
    </ASAP_Annotations>

The group an annotation is part of becomes its class, in the group's colour (the annotation's own colour
when the group is not listed; "None" means unclassified). Types: Polygon; Rectangle (a rectangle when
its four corners form an axis-aligned box, else a polygon); Spline, read as the polygon through its
control points (ASAP draws a smooth curve through them, which can bulge a little beyond it); Dot and
PointSet as points; Measurement as a line. Coordinates are taken in their ``Order``; a decimal comma,
which ASAP writes under some locales, is read as a point.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

from medviewer.annotations import geometry
from medviewer.annotations.class_list import colour_for_name
from medviewer.annotations.model import Annotation, AnnotationClass, Colour
from medviewer.core.errors import CorruptFileError, PathNotFoundError, UnsupportedFileError

_NO_GROUP = ("", "None")


def read_asap_xml(path: str | Path) -> list[Annotation]:
    path = Path(path)
    if not path.is_file():
        raise PathNotFoundError(path)
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise CorruptFileError(path, f"not valid XML (line {error.position[0]})") from error
    if root.tag != "ASAP_Annotations":
        raise UnsupportedFileError(path, f"not ASAP annotations (the XML root is <{root.tag}>)")
    group_colours = {
        group.get("Name", ""): group.get("Color")
        for group in root.iterfind("AnnotationGroups/Group")
    }
    annotations = []
    for number, element in enumerate(root.iterfind("Annotations/Annotation"), start=1):
        try:
            annotations.append(_annotation(element, group_colours))
        except ValueError as error:
            raise CorruptFileError(path, f"annotation {number}: {error}") from error
    return annotations


def _annotation(element: ElementTree.Element, group_colours: dict[str, str | None]) -> Annotation:
    kind = element.get("Type", "")
    points = _coordinates(element)
    if kind in ("Polygon", "Spline"):
        annotation = Annotation.polygon(points)
    elif kind == "Rectangle":
        box = geometry.rectangle_corners(geometry.open_ring(points))
        annotation = Annotation.rectangle(*box) if box else Annotation.polygon(points)
    elif kind in ("Dot", "PointSet"):
        annotation = Annotation.points(points)
    elif kind == "Measurement":
        annotation = Annotation.line(points)
    else:
        raise ValueError(f"annotation type {kind!r} is not one ASAP writes")
    annotation.name = element.get("Name") or None
    group = element.get("PartOfGroup", "")
    if group not in _NO_GROUP:
        colour = group_colours.get(group) or element.get("Color")
        annotation.classification = AnnotationClass(group, _hex_colour(colour) if colour else colour_for_name(group))
    return annotation


def _coordinates(element: ElementTree.Element) -> np.ndarray:
    rows: list[tuple[int, float, float]] = []
    for coordinate in element.iterfind("Coordinates/Coordinate"):
        try:
            order = int(coordinate.get("Order", len(rows)))
            x, y = (float(coordinate.get(axis, "").replace(",", ".")) for axis in ("X", "Y"))
        except ValueError:
            raise ValueError("a coordinate lacks a numeric X, Y or Order") from None
        rows.append((order, x, y))
    if not rows:
        raise ValueError("it has no coordinates")
    rows.sort()
    return np.array([(x, y) for _, x, y in rows])


def _hex_colour(text: str) -> Colour:
    """'#F4FA58' as (244, 250, 88)."""
    digits = text.strip().lstrip("#")
    if len(digits) != 6:
        raise ValueError(f"colour {text!r} is not #RRGGBB")
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)
