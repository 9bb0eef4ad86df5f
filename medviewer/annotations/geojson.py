"""QuPath-compatible GeoJSON: what QuPath 0.4/0.5 writes with File > Export objects as GeoJSON, and reads.

Written: a FeatureCollection, one Feature per line, each with its UUID as ``id``, the geometry in level-0
pixels (rings closed, first point repeated last) and ``properties``::

    {"objectType": "annotation", "name": "...", "classification": {"name": "Tumor", "color": [200, 0, 0]},
     "isLocked": true, "measurements": {"Score": 0.9}, "metadata": {"medviewer.kind": "ellipse"}}

``name``, ``isLocked`` (only when true), ``measurements`` and ``metadata`` appear only when there is
something to say. A classification always carries its colour, since QuPath refuses one without.
Rectangles and ellipses are written as Polygons, as QuPath writes them (an ellipse as its polygon, see
``geometry.ellipse_polygon``); ``metadata`` (string values, which QuPath keeps as object metadata) says
which shape it was, and reading restores a rectangle or ellipse only when the polygon still is one.
Lines are LineStrings, points Point or MultiPoint.

Read, besides that: a bare Feature or a JSON list of Features (QuPath's export without "feature
collection"), features without ``objectType`` or ``id``, a classification given as a plain string or
with QuPath 0.2's packed ``colorRGB``, measurements as a legacy list of ``{"name", "value"}``, Polygons
with holes and MultiPolygons. Anything else (MultiLineString, GeometryCollection, malformed JSON or
coordinates) raises a ``medviewer.core.errors`` error naming the file and the feature.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from medviewer.annotations import geometry
from medviewer.annotations.class_list import colour_for_name
from medviewer.annotations.model import Annotation, AnnotationClass, AnnotationKind
from medviewer.core.errors import CorruptFileError, PathNotFoundError, UnsupportedFileError
from medviewer.io.atomic_write import write_atomic

KIND_KEY = "medviewer.kind"
_KINDS_KEPT_IN_METADATA = (AnnotationKind.RECTANGLE, AnnotationKind.ELLIPSE, AnnotationKind.FREEHAND)
_ELLIPSE_FIT_TOLERANCE = 1e-3  # relative departure of a vertex from the ellipse it should lie on


class _FeatureError(ValueError):
    """A problem in one feature; the reader adds the file and the feature's number."""


# Writing ------------------------------------------------------------------------------------------------


#: Names an exported file may end with as it is: QuPath reads both.
GEOJSON_SUFFIXES = (".geojson", ".json")


def export_path(path: str | Path) -> Path:
    """The file an export chosen as ``path`` goes to: ``.geojson`` appended when the name lacks it (or
    ``.json``), as a save dialog hands back what was typed, and QuPath and file browsers go by the suffix."""
    path = Path(path)
    return path if path.suffix.lower() in GEOJSON_SUFFIXES else path.with_name(path.name + ".geojson")


def write_geojson(path: str | Path, annotations: Iterable[Annotation]) -> None:
    """Save atomically (see ``atomic_write``): a crash leaves the previous file or the new one."""
    write_atomic(Path(path), geojson_bytes(annotations))


def geojson_bytes(annotations: Iterable[Annotation]) -> bytes:
    """The FeatureCollection, one feature per line so that files diff and skim well."""
    lines = ",\n".join(json.dumps(_feature(a), ensure_ascii=False) for a in annotations)
    return ('{"type": "FeatureCollection", "features": [\n' + lines + "\n]}\n").encode("utf-8")


def _feature(annotation: Annotation) -> dict:
    properties: dict[str, object] = {"objectType": "annotation"}
    if annotation.name:
        properties["name"] = annotation.name
    if annotation.classification is not None:
        properties["classification"] = {
            "name": annotation.classification.name,
            "color": list(annotation.classification.colour),
        }
    if annotation.locked:
        properties["isLocked"] = True
    if annotation.measurements:
        properties["measurements"] = dict(annotation.measurements)
    if annotation.kind in _KINDS_KEPT_IN_METADATA:
        properties["metadata"] = {KIND_KEY: annotation.kind.value}
    return {"type": "Feature", "id": annotation.id, "geometry": _geometry(annotation), "properties": properties}


def _geometry(annotation: Annotation) -> dict:
    parts = annotation.parts()
    if annotation.kind is AnnotationKind.POINTS:
        points = parts[0][0].tolist()
        return {"type": "Point", "coordinates": points[0]} if len(points) == 1 else {
            "type": "MultiPoint", "coordinates": points}
    if annotation.kind is AnnotationKind.LINE:
        return {"type": "LineString", "coordinates": parts[0][0].tolist()}
    polygons = [[np.vstack([ring, ring[:1]]).tolist() for ring in part] for part in parts]
    if annotation.kind is AnnotationKind.MULTIPOLYGON:
        return {"type": "MultiPolygon", "coordinates": polygons}
    return {"type": "Polygon", "coordinates": polygons[0]}


# Reading ------------------------------------------------------------------------------------------------


def read_geojson(path: str | Path) -> list[Annotation]:
    path = Path(path)
    if not path.is_file():
        raise PathNotFoundError(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))  # some Windows tools start with a BOM
    except json.JSONDecodeError as error:
        raise CorruptFileError(path, f"not valid JSON ({error.msg} at line {error.lineno})") from error
    except UnicodeDecodeError as error:
        raise CorruptFileError(path, "not valid JSON (not UTF-8 text)") from error
    annotations: list[Annotation] = []
    seen_ids: set[str] = set()
    for number, feature in enumerate(_features(data, path), start=1):
        try:
            annotation = _annotation(feature)
        except (ValueError, TypeError) as error:
            raise CorruptFileError(path, f"feature {number}: {error}") from error
        if annotation.id in seen_ids:
            annotation.id = str(uuid.uuid4())  # a copied feature: both are kept, as QuPath does
        seen_ids.add(annotation.id)
        annotations.append(annotation)
    return annotations


def _features(data: object, path: Path) -> list[object]:
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise CorruptFileError(path, "the FeatureCollection has no list of features")
        return features
    if isinstance(data, dict) and data.get("type") == "Feature":
        return [data]
    if isinstance(data, list) and all(isinstance(f, dict) and f.get("type") == "Feature" for f in data):
        return data
    raise UnsupportedFileError(path, "not GeoJSON annotations (no FeatureCollection, Feature or list of Features)")


def _annotation(feature: object) -> Annotation:
    if not isinstance(feature, dict):
        raise _FeatureError("is not a JSON object")
    properties = feature.get("properties") or {}
    if not isinstance(properties, dict):
        raise _FeatureError("its properties are not a JSON object")
    metadata = properties.get("metadata")
    hint = metadata.get(KIND_KEY) if isinstance(metadata, dict) else None
    annotation = _shape(feature.get("geometry"), hint)
    annotation.id = _uuid_or_new(feature.get("id"))
    annotation.classification = _classification(properties.get("classification"))
    name = properties.get("name")
    annotation.name = str(name) if name not in (None, "") else None
    annotation.locked = properties.get("isLocked") is True
    annotation.measurements = _measurements(properties.get("measurements"))
    return annotation


def _shape(geometry: object, hint: object) -> Annotation:
    if not isinstance(geometry, dict):
        raise _FeatureError("has no geometry")
    kind, coordinates = geometry.get("type"), geometry.get("coordinates")
    if kind == "Point":
        return Annotation.points(_positions([coordinates]))
    if kind == "MultiPoint":
        return Annotation.points(_positions(coordinates))
    if kind == "LineString":
        return Annotation.line(_positions(coordinates))
    if kind == "MultiPolygon":
        if not isinstance(coordinates, list):
            raise _FeatureError("its MultiPolygon coordinates are not a list of polygons")
        if len(coordinates) != 1:
            return Annotation.multipolygon([_rings(polygon) for polygon in coordinates])
        coordinates = coordinates[0]
    if kind in ("Polygon", "MultiPolygon"):
        rings = _rings(coordinates)
        return _box_shape(rings, hint) or Annotation.polygon(rings[0], rings[1:], freehand=hint == "freehand")
    raise _FeatureError(f"geometry type {kind!r} is not supported (only polygons, lines and points are)")


def _rings(polygon: object) -> list[np.ndarray]:
    if not isinstance(polygon, list) or not polygon:
        raise _FeatureError("a polygon has no rings")
    return [_positions(ring) for ring in polygon]


def _positions(values: object) -> np.ndarray:
    """(N, 2) coordinates; a third value (z) is dropped, as QuPath has a plane per object instead."""
    try:
        array = np.array(values, dtype=np.float64)
    except (ValueError, TypeError):
        raise _FeatureError("its coordinates are not lists of numbers") from None
    if array.ndim != 2 or array.shape[1] < 2 or len(array) == 0:
        raise _FeatureError("its coordinates are not lists of [x, y] positions")
    return array[:, :2]


def _box_shape(rings: list[np.ndarray], hint: object) -> Annotation | None:
    """The rectangle or ellipse a polygon was written from, if the metadata says so and it still is one."""
    if hint not in (AnnotationKind.RECTANGLE.value, AnnotationKind.ELLIPSE.value) or len(rings) != 1:
        return None
    ring = geometry.open_ring(rings[0])
    if hint == AnnotationKind.RECTANGLE.value:
        box = geometry.rectangle_corners(ring)
        return Annotation.rectangle(*box) if box else None
    (x0, y0), (x1, y1) = ring.min(axis=0), ring.max(axis=0)
    a, b = (x1 - x0) / 2, (y1 - y0) / 2
    if a <= 0 or b <= 0:
        return None
    radius = np.hypot((ring[:, 0] - (x0 + a)) / a, (ring[:, 1] - (y0 + b)) / b)
    return Annotation.ellipse(x0, y0, x1, y1) if np.abs(radius - 1).max() < _ELLIPSE_FIT_TOLERANCE else None


def _uuid_or_new(value: object) -> str:
    """The feature's UUID; old QuPath wrote the object type here and other tools write numbers."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return str(uuid.uuid4())


def _classification(value: object) -> AnnotationClass | None:
    if value is None:
        return None
    if isinstance(value, str):
        return AnnotationClass(value, colour_for_name(value)) if value.strip() else None
    if not isinstance(value, dict):
        raise _FeatureError("its classification is neither a name nor an object")
    names = value.get("names")  # QuPath writes a derived class ("Tumor: Positive") as its parts
    name = ": ".join(map(str, names)) if isinstance(names, list) and names else value.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _FeatureError("its classification has no name")
    return AnnotationClass(name, _colour(value, name))


def _colour(classification: dict, name: str) -> tuple[int, int, int]:
    if "color" in classification:
        colour = classification["color"]
        if not isinstance(colour, list) or len(colour) not in (3, 4) or not all(isinstance(c, int) for c in colour):
            raise _FeatureError(f"the colour of class {name!r} is not [red, green, blue]")
        return colour[0], colour[1], colour[2]
    packed = classification.get("colorRGB")
    if isinstance(packed, int):
        return (packed >> 16) & 255, (packed >> 8) & 255, packed & 255
    return colour_for_name(name)


def _measurements(value: object) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, list):  # QuPath before 0.4: [{"name": ..., "value": ...}, ...]
        try:
            value = {entry["name"]: entry["value"] for entry in value}
        except (TypeError, KeyError):
            raise _FeatureError("its measurement list holds entries without name and value") from None
    if not isinstance(value, dict):
        raise _FeatureError("its measurements are neither a list nor an object")
    try:
        return {str(k): math.nan if v is None else float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise _FeatureError("a measurement is not a number") from None
