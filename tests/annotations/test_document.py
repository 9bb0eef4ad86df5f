"""Edits through AnnotationDocument: each undoes and redoes exactly, and listeners hear of every one."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.annotations import DEFAULT_CLASSES, Annotation, AnnotationClass, AnnotationDocument, AnnotationEditError
from medviewer.annotations.changes import Translate


def _document() -> tuple[AnnotationDocument, list]:
    document = AnnotationDocument(classes=DEFAULT_CLASSES)
    events: list = []
    document.changed.append(events.append)
    return document, events


def _freehand() -> Annotation:
    angles = np.linspace(0, 2 * np.pi, 500, endpoint=False)
    return Annotation.polygon(np.column_stack([1000.3 + 77.7 * np.cos(angles), 2000.1 + 55.5 * np.sin(angles)]),
                              freehand=True)


def test_add_remove_undo_redo_keep_order_and_notify() -> None:
    document, events = _document()
    a, b, c = (Annotation.rectangle(i, i, i + 10, i + 10) for i in (0, 100, 200))
    document.add(a, b, c)
    document.remove(b.id, a.id)
    assert document.annotations == (c,)
    document.undo()
    assert document.annotations == (a, b, c)  # back in their drawing order
    document.redo()
    assert document.annotations == (c,)
    assert [e.description for e in events] == ["add annotation"] + ["delete annotation"] * 3
    assert [e.undone for e in events] == [False, False, True, False]
    assert events[1].annotation_ids == {a.id, b.id} and events[-1].revision == 4
    assert document.undo_description() == "delete annotation" and document.redo_description() is None


def test_move_undo_redo_restore_exact_coordinates() -> None:
    document, _ = _document()
    shape = _freehand()
    document.add(shape)
    original = shape.vertices.copy()
    document.move([shape.id], 0.1, -1234.567)
    moved = shape.vertices.copy()
    assert not np.array_equal(moved, original)
    document.undo()
    np.testing.assert_array_equal(shape.vertices, original)
    document.redo()
    np.testing.assert_array_equal(shape.vertices, moved)


def test_undo_history_holds_changes_not_copies() -> None:
    document, _ = _document()
    shape = _freehand()
    document.add(shape)
    document.move([shape.id], 5, 5)
    change = document._undo[-1]
    assert isinstance(change, Translate) and (change.dx, change.dy) == (5, 5)
    assert not any(isinstance(value, np.ndarray) for value in vars(change).values())


def test_a_drag_is_one_undo_step() -> None:
    document, events = _document()
    shape = _freehand()
    document.add(shape)
    original = shape.vertices.copy()
    for step in range(20):
        document.move([shape.id], 0.3, 0.7, continuing=step > 0)
    assert len(events) == 21  # the view redraws at every step
    np.testing.assert_allclose(shape.vertices - original, np.full_like(original, [6, 14]), atol=0.02)
    document.undo()
    np.testing.assert_array_equal(shape.vertices, original)
    assert document.undo_description() == "add annotation"


def test_vertex_edits_undo_exactly() -> None:
    document, _ = _document()
    polygon = Annotation.polygon([[0, 0], [100, 0], [100, 100], [0, 100]], [[[10, 10], [20, 10], [20, 20]]])
    document.add(polygon)
    snapshots = [(polygon.vertices.copy(), polygon.rings)]
    document.move_vertex(polygon.id, 2, 150.25, 120.5)
    document.move_vertex(polygon.id, 2, 151.25, 121.5, continuing=True)
    snapshots.append((polygon.vertices.copy(), polygon.rings))
    document.insert_vertex(polygon.id, 3, -5, 50)
    snapshots.append((polygon.vertices.copy(), polygon.rings))
    document.delete_vertex(polygon.id, 0)
    assert polygon.vertices[:4].tolist() == [[100, 0], [151.25, 121.5], [0, 100], [-5, 50]]
    snapshots.append((polygon.vertices.copy(), polygon.rings))
    for vertices, rings in reversed(snapshots[:-1]):
        document.undo()
        np.testing.assert_array_equal(polygon.vertices, vertices)
        assert polygon.rings == rings
    for vertices, rings in snapshots[1:]:
        document.redo()
        np.testing.assert_array_equal(polygon.vertices, vertices)
        assert polygon.rings == rings


def test_rectangle_corner_drag_past_the_opposite_corner_undoes_exactly() -> None:
    document, _ = _document()
    rect = Annotation.rectangle(0, 0, 100, 50)
    document.add(rect)
    document.move_vertex(rect.id, 2, -30, -20)  # bottom-right dragged beyond top-left
    assert rect.bounds() == (-30, -20, 0, 0)
    assert rect.area() == 600
    document.undo()
    assert rect.vertices.tolist() == [[0, 0], [100, 50]]


def test_refused_edits_change_nothing() -> None:
    document, events = _document()
    triangle = Annotation.polygon([[0, 0], [10, 0], [5, 5]])
    document.add(triangle)
    with pytest.raises(AnnotationEditError, match="at least three"):
        document.delete_vertex(triangle.id, 0)
    document.set_locked([triangle.id], True)
    with pytest.raises(AnnotationEditError, match="locked"):
        document.move([triangle.id], 1, 1)
    with pytest.raises(AnnotationEditError, match="no such annotation"):
        document.remove("not-an-id")
    assert triangle.vertices.tolist() == [[0, 0], [10, 0], [5, 5]]
    assert document.undo_description() == "lock" and len(events) == 2


def test_classify_rename_lock_undo() -> None:
    document, _ = _document()
    a, b = Annotation.points([[1, 1]]), Annotation.points([[2, 2]], name="first")
    document.add(a, b)
    document.classify([a.id, b.id], "Tumor")
    assert a.classification == b.classification == AnnotationClass("Tumor", (200, 0, 0))
    document.classify([b.id], None)
    document.rename(b.id, "second")
    document.set_locked([a.id], True)
    assert (a.locked, b.name, b.classification) == (True, "second", None)
    for _ in range(4):
        document.undo()
    assert (a.classification, b.classification, b.name, a.locked) == (None, None, "first", False)
    with pytest.raises(AnnotationEditError, match="no class called"):
        document.classify([a.id], "Nonexistent")


def test_class_edits_follow_through_annotations_and_undo() -> None:
    document, events = _document()
    tumour = Annotation.rectangle(0, 0, 1, 1, classification=AnnotationClass("Tumor", (1, 2, 3)))
    document.add(tumour)
    assert tumour.classification.colour == (200, 0, 0)  # the list's colour wins, as in QuPath
    document.add_class("Mitosis", (10, 20, 30))
    document.recolour_class("Tumor", (255, 0, 0))
    document.rename_class("Tumor", "Carcinoma")
    assert tumour.classification == AnnotationClass("Carcinoma", (255, 0, 0))
    assert document.classes[0] == tumour.classification and document.classes[-1].name == "Mitosis"
    document.remove_class("Carcinoma")
    assert tumour.classification is None and document.class_named("Carcinoma") is None
    assert events[-1].classes_changed and events[-1].annotation_ids == {tumour.id}
    with pytest.raises(AnnotationEditError, match="already a class"):
        document.rename_class("Stroma", "Mitosis")
    document.undo()
    assert tumour.classification == AnnotationClass("Carcinoma", (255, 0, 0))
    assert document.classes[0].name == "Carcinoma"
    for _ in range(3):
        document.undo()
    assert tumour.classification == AnnotationClass("Tumor", (200, 0, 0))
    assert document.classes == DEFAULT_CLASSES


def test_document_adopts_classes_from_loaded_annotations() -> None:
    loaded = [
        Annotation.points([[0, 0]], classification=AnnotationClass("Tumor", (9, 9, 9))),
        Annotation.points([[1, 1]], classification=AnnotationClass("Lymphocytes", (0, 128, 255))),
    ]
    document = AnnotationDocument(loaded, DEFAULT_CLASSES)
    assert loaded[0].classification.colour == (200, 0, 0)
    assert document.classes[-1] == AnnotationClass("Lymphocytes", (0, 128, 255))
    assert not document.dirty


def test_revision_and_dirty_flag() -> None:
    document, _ = _document()
    assert not document.dirty
    document.add(Annotation.points([[0, 0]]))
    assert document.dirty and document.revision == 1
    document.saved_revision = document.revision
    assert not document.dirty
    document.undo()
    assert document.dirty


def test_hit_testing_returns_topmost_first() -> None:
    document, _ = _document()
    big, small = Annotation.rectangle(0, 0, 100, 100), Annotation.ellipse(40, 40, 60, 60)
    document.add(big, small)
    assert document.annotations_at(50, 50) == [small, big]
    assert document.annotations_at(10, 10) == [big]
    assert document.annotations_at(101, 50, tolerance=2) == [big]
