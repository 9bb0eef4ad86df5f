"""What an annotation is: a shape in level-0 slide pixels (x right, y down), a class, a name, a lock.

An ``Annotation`` keeps every vertex in one read-only ``(N, 2)`` array plus ``rings``, the vertex count
of each ring of each polygon part, so moves, bounds and hit tests are single numpy operations and an edit
replaces the array rather than changing it under a painter or a saver holding the old one. Rectangles
and ellipses keep the two defining corners of their box (in the order drawn, not normalised, so that an
edit and its undo address the same corner); their polygon form is derived when needed.

The mutating methods here are the plain operations and record nothing; edits a person makes go through
``AnnotationDocument``, which turns each into an undoable change.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

import numpy as np

from medviewer.annotations import geometry

#: Microns per pixel: one value, (x, y) when a scanner reports two, or None when the slide does not say.
Mpp = float | tuple[float, float] | None
Colour = tuple[int, int, int]


class AnnotationKind(str, enum.Enum):
    RECTANGLE = "rectangle"
    ELLIPSE = "ellipse"
    POLYGON = "polygon"
    FREEHAND = "freehand"  # a polygon drawn freehand: the same geometry, told apart for the person
    LINE = "line"  # an open polyline (QuPath's line and polyline)
    POINTS = "points"  # one or more points
    MULTIPOLYGON = "multipolygon"  # several polygons as one annotation, as files may hold


BOX_KINDS = frozenset({AnnotationKind.RECTANGLE, AnnotationKind.ELLIPSE})
AREA_KINDS = BOX_KINDS | {AnnotationKind.POLYGON, AnnotationKind.FREEHAND, AnnotationKind.MULTIPOLYGON}
#: How far a vertex may move in a save and reload (see ``geometry``) and still be the same vertex.
ROUND_TRIP_PX = 0.01
_SINGLE_RING_MINIMUM = {AnnotationKind.LINE: 2, AnnotationKind.POINTS: 1}
_POLYGON_RING_MINIMUM = 3


class AnnotationEditError(ValueError):
    """A shape annotations cannot hold, or an edit the annotation does not allow; the message says which."""


@dataclass(frozen=True)
class AnnotationClass:
    """A classification, as QuPath has them: a name and the colour its annotations are drawn in."""

    name: str
    colour: Colour

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a class needs a name")
        if len(self.colour) != 3 or any(not isinstance(c, int) or not 0 <= c <= 255 for c in self.colour):
            raise ValueError(f"colour of class {self.name!r} must be three integers from 0 to 255")
        object.__setattr__(self, "colour", tuple(self.colour))


class AnnotationProperties(TypedDict, total=False):
    """What the shape constructors pass on to ``Annotation``: every field but the geometry."""

    classification: AnnotationClass | None
    name: str | None
    locked: bool
    measurements: dict[str, float]
    id: str


@dataclass(eq=False)
class Annotation:
    kind: AnnotationKind
    vertices: np.ndarray
    #: Vertex counts: one tuple per polygon part, one number per ring (outer ring first, then holes).
    #: Lines, points, rectangles and ellipses have a single part with a single "ring".
    rings: tuple[tuple[int, ...], ...]
    classification: AnnotationClass | None = None
    name: str | None = None
    locked: bool = False
    measurements: dict[str, float] = field(default_factory=dict)
    id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def __post_init__(self) -> None:
        self.kind = AnnotationKind(self.kind)
        self.vertices = geometry.snap(np.asarray(self.vertices, dtype=np.float64).reshape(-1, 2))
        self.rings = tuple(tuple(int(n) for n in part) for part in self.rings)
        _check_shape(self.kind, self.vertices, self.rings)

    # Construction ---------------------------------------------------------------------------------

    @classmethod
    def rectangle(
        cls, x0: float, y0: float, x1: float, y1: float, **properties: Unpack[AnnotationProperties]
    ) -> Annotation:
        return cls(AnnotationKind.RECTANGLE, np.array([[x0, y0], [x1, y1]]), ((2,),), **properties)

    @classmethod
    def ellipse(
        cls, x0: float, y0: float, x1: float, y1: float, **properties: Unpack[AnnotationProperties]
    ) -> Annotation:
        """The ellipse inscribed in the box with corners (x0, y0) and (x1, y1)."""
        return cls(AnnotationKind.ELLIPSE, np.array([[x0, y0], [x1, y1]]), ((2,),), **properties)

    @classmethod
    def polygon(
        cls,
        outer: object,
        holes: Sequence[object] = (),
        freehand: bool = False,
        **properties: Unpack[AnnotationProperties],
    ) -> Annotation:
        rings = [geometry.open_ring(outer), *(geometry.open_ring(hole) for hole in holes)]
        kind = AnnotationKind.FREEHAND if freehand else AnnotationKind.POLYGON
        return cls(kind, np.concatenate(rings), (tuple(len(r) for r in rings),), **properties)

    @classmethod
    def multipolygon(
        cls, polygons: Sequence[Sequence[object]], **properties: Unpack[AnnotationProperties]
    ) -> Annotation:
        """``polygons``: for each part, its outer ring then its holes."""
        parts = [[geometry.open_ring(ring) for ring in polygon] for polygon in polygons]
        flat = [ring for part in parts for ring in part]
        if not flat:
            raise AnnotationEditError("a multipolygon needs at least one polygon")
        rings = tuple(tuple(len(r) for r in part) for part in parts)
        return cls(AnnotationKind.MULTIPOLYGON, np.concatenate(flat), rings, **properties)

    @classmethod
    def line(cls, points: object, **properties: Unpack[AnnotationProperties]) -> Annotation:
        path = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return cls(AnnotationKind.LINE, path, ((len(path),),), **properties)

    @classmethod
    def points(cls, points: object, **properties: Unpack[AnnotationProperties]) -> Annotation:
        array = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return cls(AnnotationKind.POINTS, array, ((len(array),),), **properties)

    # Shape ------------------------------------------------------------------------------------------

    def parts(self) -> list[list[np.ndarray]]:
        """The shape as open rings grouped by polygon part: what a painter or a file writer needs.

        A rectangle gives its four corners and an ellipse its polygon (see ``geometry.ellipse_polygon``);
        a line gives its path and points their points, each as one part with one ring.
        """
        if self.kind is AnnotationKind.RECTANGLE:
            return [[_box_corners(self.vertices)]]
        if self.kind is AnnotationKind.ELLIPSE:
            (x0, y0), (x1, y1) = self.vertices
            return [[geometry.ellipse_polygon(x0, y0, x1, y1)]]
        rings = iter(np.split(self.vertices, np.cumsum(_ring_sizes(self.rings))[:-1]))
        return [[next(rings) for _ in part] for part in self.rings]

    def handles(self) -> np.ndarray:
        """Points a person can drag, indexed as the vertex edits index them: the box corners of a
        rectangle or ellipse (in the order (x0,y0), (x1,y0), (x1,y1), (x0,y1)), else every vertex."""
        return _box_corners(self.vertices) if self.kind in BOX_KINDS else self.vertices

    def same_as(self, other: Annotation, tolerance: float = ROUND_TRIP_PX) -> bool:
        """Whether ``other`` says the same as this annotation (kind, shape within ``tolerance`` px, class
        name, name, lock, measurements), ids aside: how a second import of one file is recognised.

        Box corners are compared as boxes, as a file gives them back in min/max order, not as drawn."""
        if (self.kind, self.rings, self.name, self.locked) != (other.kind, other.rings, other.name, other.locked):
            return False
        if _class_name(self.classification) != _class_name(other.classification):
            return False
        if not _same_measurements(self.measurements, other.measurements):
            return False
        mine, theirs = self.vertices, other.vertices
        if self.kind in BOX_KINDS:
            mine, theirs = np.sort(mine, axis=0), np.sort(theirs, axis=0)
        return bool(np.abs(mine - theirs).max() <= tolerance)

    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) in level-0 pixels."""
        low, high = self.vertices.min(axis=0), self.vertices.max(axis=0)
        return float(low[0]), float(low[1]), float(high[0]), float(high[1])

    # Measurement ----------------------------------------------------------------------------------

    def area(self, mpp: Mpp = None) -> float:
        """Area in µm², or in px² when ``mpp`` is None. An ellipse's is exact (pi * a * b); a polygon's
        is its outer rings' minus its holes'; lines and points have none."""
        sx, sy = _scales(mpp)
        if self.kind is AnnotationKind.ELLIPSE:
            a, b = _semi_axes(self.vertices)
            return math.pi * a * b * sx * sy
        if self.kind not in AREA_KINDS:
            return 0.0
        total = 0.0
        for outer, *holes in self.parts():
            total += geometry.ring_area(outer) - sum(geometry.ring_area(hole) for hole in holes)
        return total * sx * sy

    def perimeter(self, mpp: Mpp = None) -> float:
        """Perimeter in µm, or px when ``mpp`` is None: every ring's, holes included; a line's length;
        zero for points. An ellipse's uses Ramanujan's second approximation, not its polygon."""
        sx, sy = _scales(mpp)
        if self.kind is AnnotationKind.ELLIPSE:
            a, b = _semi_axes(self.vertices)
            return geometry.ellipse_perimeter(a * sx, b * sy)
        if self.kind is AnnotationKind.POINTS:
            return 0.0
        closed = self.kind is not AnnotationKind.LINE
        scale = np.array([sx, sy])
        return sum(geometry.path_length(ring * scale, closed) for part in self.parts() for ring in part)

    # Hit testing ----------------------------------------------------------------------------------

    def hit(self, x: float, y: float, tolerance: float = 0.0) -> bool:
        """Whether (x, y) is inside the shape, or within ``tolerance`` level-0 pixels of its outline,
        line or points. The UI passes its pick radius in screen pixels times the view's downsample."""
        x_min, y_min, x_max, y_max = self.bounds()
        if not (x_min - tolerance <= x <= x_max + tolerance and y_min - tolerance <= y <= y_max + tolerance):
            return False  # the cheap test first: a click is far from most annotations on a slide
        if self.kind is AnnotationKind.POINTS:
            return bool(geometry.point_distances(self.vertices, x, y).min() <= tolerance)
        closed = self.kind is not AnnotationKind.LINE
        parts = self.parts()
        if closed and any(_inside_part(part, x, y) for part in parts):
            return True
        return any(geometry.segment_distances(r, x, y, closed).min() <= tolerance for p in parts for r in p)

    def nearest_handle(self, x: float, y: float, tolerance: float) -> int | None:
        """Index of the handle closest to (x, y) if it lies within ``tolerance`` pixels."""
        distances = geometry.point_distances(self.handles(), x, y)
        index = int(np.argmin(distances))
        return index if distances[index] <= tolerance else None

    def nearest_edge(self, x: float, y: float, tolerance: float) -> int | None:
        """Index of the vertex starting the edge closest to (x, y), within ``tolerance``: a new vertex
        clicked on that edge goes in with ``insert_vertex(after=index)``. None for shapes without
        editable edges (rectangles, ellipses, points)."""
        if self.kind in BOX_KINDS or self.kind is AnnotationKind.POINTS:
            return None
        closed = self.kind is not AnnotationKind.LINE
        best, best_distance = None, tolerance
        for start, stop in _ring_spans(self.rings):
            distances = geometry.segment_distances(self.vertices[start:stop], x, y, closed)
            edge = int(np.argmin(distances))
            if distances[edge] <= best_distance:
                best, best_distance = start + edge, float(distances[edge])
        return best

    # Plain edits (no undo: see AnnotationDocument) -----------------------------------------------

    def translate(self, dx: float, dy: float) -> None:
        self.vertices = geometry.snap(self.vertices + geometry.snap([dx, dy]))

    def set_handle(self, index: int, x: float, y: float) -> None:
        """Move handle ``index`` to (x, y); a box corner drags the two box edges that meet there."""
        xy = geometry.snap([x, y])
        vertices = self.vertices.copy()
        if self.kind in BOX_KINDS:
            x_row, y_row = _BOX_CORNER_SOURCES[_check_index(index, 4)]
            vertices[x_row, 0], vertices[y_row, 1] = xy
        else:
            vertices[_check_index(index, len(vertices))] = xy
        self.vertices = geometry.snap(vertices)

    def insert_vertex(self, after: int, x: float, y: float) -> None:
        """Add a vertex after vertex ``after``, in the same ring; it takes index ``after + 1``."""
        self._require_free_vertices()
        self.restore_vertex(after + 1, _ring_of(self.rings, _check_index(after, len(self.vertices))), x, y)

    def delete_vertex(self, index: int) -> int:
        """Remove vertex ``index``; returns the number of the ring that held it (see ``restore_vertex``)."""
        self._require_free_vertices()
        ring = _ring_of(self.rings, _check_index(index, len(self.vertices)))
        sizes = _with_ring_size(self.rings, ring, -1)
        _check_shape(self.kind, self.vertices[:-1], sizes)
        self.vertices, self.rings = geometry.snap(np.delete(self.vertices, index, axis=0)), sizes
        return ring

    def restore_vertex(self, index: int, ring: int, x: float, y: float) -> None:
        """Insert a vertex at ``index`` as part of ring number ``ring``: the inverse of ``delete_vertex``."""
        self._require_free_vertices()
        self.vertices = geometry.snap(np.insert(self.vertices, index, [x, y], axis=0))
        self.rings = _with_ring_size(self.rings, ring, +1)

    def _require_free_vertices(self) -> None:
        if self.kind in BOX_KINDS:
            raise AnnotationEditError(f"a {self.kind.value} has four fixed corners: none can be added or removed")


_BOX_CORNER_SOURCES = ((0, 0), (1, 0), (1, 1), (0, 1))  # for each corner: which stored vertex gives x, and y


def _box_corners(box: np.ndarray) -> np.ndarray:
    return np.array([[box[xr, 0], box[yr, 1]] for xr, yr in _BOX_CORNER_SOURCES])


def _semi_axes(box: np.ndarray) -> tuple[float, float]:
    a, b = np.abs(box[1] - box[0]) / 2
    return float(a), float(b)


def _scales(mpp: Mpp) -> tuple[float, float]:
    if mpp is None:
        return 1.0, 1.0
    sx, sy = (mpp, mpp) if isinstance(mpp, (int, float)) else mpp
    if not (sx > 0 and sy > 0):
        raise ValueError(f"microns per pixel must be positive, not {mpp}")
    return float(sx), float(sy)


def _class_name(classification: AnnotationClass | None) -> str | None:
    return classification.name if classification is not None else None


def _same_measurements(a: dict[str, float], b: dict[str, float]) -> bool:
    """Equal keys and values, a missing value (NaN, as files write null) equal to another missing one."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def _inside_part(part: list[np.ndarray], x: float, y: float) -> bool:
    outer, *holes = part
    return geometry.point_in_ring(outer, x, y) and not any(geometry.point_in_ring(h, x, y) for h in holes)


def _ring_sizes(rings: tuple[tuple[int, ...], ...]) -> list[int]:
    return [n for part in rings for n in part]


def _ring_spans(rings: tuple[tuple[int, ...], ...]) -> list[tuple[int, int]]:
    ends = np.cumsum(_ring_sizes(rings))
    return [(int(end - n), int(end)) for end, n in zip(ends, _ring_sizes(rings), strict=True)]


def _ring_of(rings: tuple[tuple[int, ...], ...], index: int) -> int:
    return int(np.searchsorted(np.cumsum(_ring_sizes(rings)), index, side="right"))


def _with_ring_size(rings: tuple[tuple[int, ...], ...], ring: int, delta: int) -> tuple[tuple[int, ...], ...]:
    counter = iter(range(sum(len(part) for part in rings)))
    return tuple(tuple(n + delta if next(counter) == ring else n for n in part) for part in rings)


def _check_index(index: int, count: int) -> int:
    if not 0 <= index < count:
        raise AnnotationEditError(f"there is no vertex {index} (the shape has {count})")
    return index


def _check_shape(kind: AnnotationKind, vertices: np.ndarray, rings: tuple[tuple[int, ...], ...]) -> None:
    """Refuse shapes that cannot be drawn or measured, saying what is wrong."""
    sizes = _ring_sizes(rings)
    if not rings or any(not part for part in rings) or sum(sizes) != len(vertices):
        raise AnnotationEditError(f"the ring sizes {rings} do not match the {len(vertices)} vertices")
    if not np.isfinite(vertices).all():
        raise AnnotationEditError("coordinates must be finite numbers")
    if kind is not AnnotationKind.MULTIPOLYGON and len(rings) != 1:
        raise AnnotationEditError(f"a {kind.value} has one part, not {len(rings)}")
    if kind in BOX_KINDS:
        if sizes != [2]:
            raise AnnotationEditError(f"a {kind.value} is given by two corners")
    elif kind in _SINGLE_RING_MINIMUM:
        if len(sizes) != 1 or sizes[0] < _SINGLE_RING_MINIMUM[kind]:
            raise AnnotationEditError(f"a {kind.value} needs at least {_SINGLE_RING_MINIMUM[kind]} point(s)")
    elif min(sizes) < _POLYGON_RING_MINIMUM:
        raise AnnotationEditError("every polygon ring needs at least three vertices")
