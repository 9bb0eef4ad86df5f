"""Shapes, measurements in µm and pixels, hit tests and plain vertex edits of one annotation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medviewer.annotations import Annotation, AnnotationClass, AnnotationEditError, AnnotationKind
from medviewer.annotations.geometry import ellipse_polygon, ring_area

MPP = 0.25  # µm per pixel: a 40x scan


def test_rectangle_area_and_perimeter_in_microns_and_pixels() -> None:
    rect = Annotation.rectangle(1000, 1000, 1200, 1100)
    assert rect.area(MPP) == pytest.approx(200 * 100 * 0.25**2)  # 1250 µm²
    assert rect.perimeter(MPP) == pytest.approx(600 * 0.25)  # 150 µm
    assert rect.area() == 20000 and rect.perimeter() == 600
    assert rect.area((0.25, 0.5)) == pytest.approx(50 * 50)  # anisotropic pixels: 50 µm x 50 µm
    assert rect.perimeter((0.25, 0.5)) == pytest.approx(200)


def test_ellipse_area_is_exact_and_perimeter_is_ramanujans() -> None:
    ellipse = Annotation.ellipse(0, 0, 400, 200)  # semi-axes 200 and 100 px = 50 and 25 µm
    assert ellipse.area(MPP) == pytest.approx(math.pi * 50 * 25, rel=1e-12)
    # Exact perimeter of the 50 x 25 µm ellipse: 4 * 50 * E(e² = 0.75) = 242.2112055...
    assert ellipse.perimeter(MPP) == pytest.approx(242.2112055393, rel=1e-9)
    circle = Annotation.ellipse(10, 10, 30, 30)
    assert circle.perimeter() == pytest.approx(2 * math.pi * 10)


def test_ellipse_polygon_stays_within_a_quarter_pixel_and_touches_its_box() -> None:
    ring = ellipse_polygon(0, 0, 20000, 10000)
    assert len(ring) % 4 == 0
    np.testing.assert_allclose(ring.min(axis=0), [0, 0], atol=1e-9)
    np.testing.assert_allclose(ring.max(axis=0), [20000, 10000], atol=1e-9)
    # The polygon's area falls short of the ellipse by less than a quarter-pixel strip along the outline.
    shortfall = math.pi * 10000 * 5000 - ring_area(ring)
    assert 0 < shortfall < 0.25 * Annotation.ellipse(0, 0, 20000, 10000).perimeter()


def test_polygon_with_hole_and_multipolygon_areas() -> None:
    outer = [[0, 0], [400, 0], [400, 400], [0, 400]]
    hole = [[100, 100], [100, 200], [200, 200], [200, 100], [100, 100]]  # given closed: the repeat is dropped
    donut = Annotation.polygon(outer, [hole])
    assert donut.rings == ((4, 4),)
    assert donut.area() == 400 * 400 - 100 * 100
    assert donut.area(0.5) == pytest.approx(150000 * 0.25)
    assert donut.perimeter() == 1600 + 400  # both rings
    two = Annotation.multipolygon([[[[0, 0], [10, 0], [10, 10]]], [outer, hole]])
    assert two.kind is AnnotationKind.MULTIPOLYGON
    assert two.area() == 50 + 150000


def test_lines_and_points_have_length_but_no_area() -> None:
    line = Annotation.line([[0, 0], [300, 400], [300, 500]])
    assert line.area(MPP) == 0 and line.perimeter(MPP) == pytest.approx(600 * 0.25)
    points = Annotation.points([[1, 2], [3, 4]])
    assert points.area() == 0 and points.perimeter() == 0


def test_hit_test_inside_outside_hole_and_tolerance() -> None:
    hole = [[100, 100], [200, 100], [200, 200], [100, 200]]
    donut = Annotation.polygon([[0, 0], [400, 0], [400, 400], [0, 400]], [hole])
    assert donut.hit(50, 50)
    assert not donut.hit(150, 150)  # in the hole
    assert donut.hit(150, 103, tolerance=5)  # near the hole's edge
    assert not donut.hit(410, 50) and donut.hit(410, 50, tolerance=10)
    line = Annotation.line([[0, 0], [100, 0]])
    assert line.hit(50, 3, tolerance=3) and not line.hit(50, 3.5, tolerance=3)
    assert not line.hit(50, 0.5)  # lines are hit only within the tolerance
    points = Annotation.points([[10, 10], [50, 50]])
    assert points.hit(53, 54, tolerance=5) and not points.hit(30, 30, tolerance=5)
    ellipse = Annotation.ellipse(0, 0, 100, 50)
    assert ellipse.hit(50, 25) and not ellipse.hit(2, 2) and ellipse.hit(99.9, 25)


def test_bounds_handles_and_nearest_edge() -> None:
    rect = Annotation.rectangle(300, 200, 100, 50)  # drawn from bottom right to top left
    assert rect.bounds() == (100, 50, 300, 200)
    assert rect.handles().tolist() == [[300, 200], [100, 200], [100, 50], [300, 50]]
    assert rect.nearest_handle(101, 52, tolerance=5) == 2
    assert rect.nearest_handle(200, 120, tolerance=5) is None
    triangle = Annotation.polygon([[0, 0], [100, 0], [50, 80]])
    assert triangle.nearest_edge(50, 1, tolerance=2) == 0
    assert triangle.nearest_edge(20, 40, tolerance=5) == 2  # the closing edge, from vertex 2 back to 0
    assert triangle.nearest_edge(50, 40, tolerance=5) is None


def test_translate_and_vertex_edits() -> None:
    polygon = Annotation.polygon([[0, 0], [10, 0], [10, 10], [0, 10]], [[[2, 2], [4, 2], [4, 4], [2, 4]]])
    polygon.translate(0.5, -1.25)
    assert polygon.vertices[:2].tolist() == [[0.5, -1.25], [10.5, -1.25]]
    polygon.set_handle(1, 20, 0)
    assert polygon.vertices[1].tolist() == [20, 0]
    polygon.insert_vertex(3, 5, 12)  # after the outer ring's last vertex: it stays in the outer ring
    assert polygon.rings == ((5, 4),)
    assert polygon.vertices[4].tolist() == [5, 12]
    assert polygon.delete_vertex(5) == 1  # the hole's first vertex, from ring 1
    assert polygon.rings == ((5, 3),)
    with pytest.raises(AnnotationEditError, match="at least three"):
        polygon.delete_vertex(6)
    polygon.restore_vertex(5, 1, 2.5, 2.75)  # back at the start of the hole, not the end of the outer ring
    assert polygon.rings == ((5, 4),) and polygon.vertices[5].tolist() == [2.5, 2.75]
    ellipse = Annotation.ellipse(0, 0, 10, 10)
    ellipse.set_handle(1, 30, -5)  # top right corner: moves the right and the top edges
    assert ellipse.bounds() == (0, -5, 30, 10)
    with pytest.raises(AnnotationEditError, match="four fixed corners"):
        ellipse.insert_vertex(0, 1, 1)
    with pytest.raises(AnnotationEditError, match="no vertex 4"):
        ellipse.set_handle(4, 1, 1)


def test_shapes_that_cannot_be_annotations_are_refused() -> None:
    with pytest.raises(AnnotationEditError, match="at least three"):
        Annotation.polygon([[0, 0], [1, 1]])
    with pytest.raises(AnnotationEditError, match="finite"):
        Annotation.line([[0, 0], [math.nan, 1]])
    with pytest.raises(AnnotationEditError, match="at least 2"):
        Annotation.line([[0, 0]])
    with pytest.raises(ValueError, match="three integers"):
        AnnotationClass("Tumor", (300, 0, 0))


def test_coordinates_are_kept_on_a_fine_grid() -> None:
    a = Annotation.points([[0.1, 1234567.123456]])
    assert abs(a.vertices[0, 0] - 0.1) <= 1 / 2048 and a.vertices[0, 0] * 1024 == round(a.vertices[0, 0] * 1024)
    assert not a.vertices.flags.writeable
