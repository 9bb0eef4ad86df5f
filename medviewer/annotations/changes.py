"""Edits as reversible changes: each records what it altered (a delta, a vertex, a field's old and new
value), never a copy of the document, so a long session's undo history stays small.

``apply`` and ``revert`` are exact inverses: coordinates live on the 1/1024 px grid (see ``geometry``),
where a move and its undo restore the very same numbers. Only ``AnnotationDocument`` runs changes.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from medviewer.annotations import geometry
from medviewer.annotations.model import Annotation, AnnotationClass


@dataclass
class DocumentState:
    """What changes act on: the annotations in drawing order (last on top) and the class list."""

    annotations: list[Annotation] = field(default_factory=list)
    classes: list[AnnotationClass] = field(default_factory=list)
    by_id: dict[str, Annotation] = field(default_factory=dict)

    def insert(self, position: int, annotation: Annotation) -> None:
        self.annotations.insert(position, annotation)
        self.by_id[annotation.id] = annotation

    def pop(self, annotation_id: str) -> int:
        position = self.annotations.index(self.by_id.pop(annotation_id))
        del self.annotations[position]
        return position


class Change(abc.ABC):
    #: Said in the Edit menu ("Undo move"): what kind of edit, never an annotation's name.
    description: str
    #: Annotations whose drawing may be stale afterwards: present ones to redraw, absent ones to drop.
    annotation_ids: frozenset[str]
    #: Whether the class list itself changed (the UI then saves it to the user's config).
    classes_changed = False

    @abc.abstractmethod
    def apply(self, state: DocumentState) -> None: ...

    @abc.abstractmethod
    def revert(self, state: DocumentState) -> None: ...

    def merged_with(self, later: Change) -> Change | None:
        """One change doing both this and ``later``, when a drag's steps should undo as one; else None."""
        return None


class AddAnnotations(Change):
    description = "add annotation"

    def __init__(self, annotations: tuple[Annotation, ...]) -> None:
        self.annotations = annotations
        self.annotation_ids = frozenset(a.id for a in annotations)

    def apply(self, state: DocumentState) -> None:
        for annotation in self.annotations:
            state.insert(len(state.annotations), annotation)

    def revert(self, state: DocumentState) -> None:
        for annotation in self.annotations:
            state.pop(annotation.id)


class RemoveAnnotations(Change):
    description = "delete annotation"

    def __init__(self, state: DocumentState, ids: frozenset[str]) -> None:
        #: (position, annotation) in ascending position, so reinserting in order restores the stacking.
        self.entries = sorted((state.annotations.index(state.by_id[i]), state.by_id[i]) for i in ids)
        self.annotation_ids = ids

    def apply(self, state: DocumentState) -> None:
        for _, annotation in reversed(self.entries):
            state.pop(annotation.id)

    def revert(self, state: DocumentState) -> None:
        for position, annotation in self.entries:
            state.insert(position, annotation)


class Translate(Change):
    description = "move"

    def __init__(self, ids: frozenset[str], dx: float, dy: float) -> None:
        # Snapped here so that merged steps sum to exactly the moves made.
        self.annotation_ids, (self.dx, self.dy) = ids, geometry.snap([dx, dy]).tolist()

    def apply(self, state: DocumentState) -> None:
        for annotation_id in self.annotation_ids:
            state.by_id[annotation_id].translate(self.dx, self.dy)

    def revert(self, state: DocumentState) -> None:
        for annotation_id in self.annotation_ids:
            state.by_id[annotation_id].translate(-self.dx, -self.dy)

    def merged_with(self, later: Change) -> Change | None:
        if isinstance(later, Translate) and later.annotation_ids == self.annotation_ids:
            return Translate(self.annotation_ids, self.dx + later.dx, self.dy + later.dy)
        return None


class MoveHandle(Change):
    description = "move vertex"

    def __init__(self, annotation_id: str, index: int, before: tuple[float, float], after: tuple[float, float]):
        self.annotation_ids = frozenset({annotation_id})
        self.annotation_id, self.index, self.before, self.after = annotation_id, index, before, after

    def apply(self, state: DocumentState) -> None:
        state.by_id[self.annotation_id].set_handle(self.index, *self.after)

    def revert(self, state: DocumentState) -> None:
        state.by_id[self.annotation_id].set_handle(self.index, *self.before)

    def merged_with(self, later: Change) -> Change | None:
        if isinstance(later, MoveHandle) and (later.annotation_id, later.index) == (self.annotation_id, self.index):
            return MoveHandle(self.annotation_id, self.index, self.before, later.after)
        return None


class InsertVertex(Change):
    description = "add vertex"

    def __init__(self, annotation_id: str, after: int, xy: tuple[float, float]) -> None:
        self.annotation_ids = frozenset({annotation_id})
        self.annotation_id, self.after, self.xy = annotation_id, after, xy

    def apply(self, state: DocumentState) -> None:
        state.by_id[self.annotation_id].insert_vertex(self.after, *self.xy)

    def revert(self, state: DocumentState) -> None:
        state.by_id[self.annotation_id].delete_vertex(self.after + 1)


class AppendPoint(Change):
    """One more point on a points annotation; undo takes that last point off again."""

    description = "add point"

    def __init__(self, annotation_id: str, xy: tuple[float, float]) -> None:
        self.annotation_ids = frozenset({annotation_id})
        self.annotation_id, self.xy = annotation_id, xy

    def apply(self, state: DocumentState) -> None:
        points = state.by_id[self.annotation_id]
        points.restore_vertex(len(points.vertices), 0, *self.xy)

    def revert(self, state: DocumentState) -> None:
        points = state.by_id[self.annotation_id]
        points.delete_vertex(len(points.vertices) - 1)


class DeleteVertex(Change):
    description = "delete vertex"

    def __init__(self, annotation_id: str, index: int, xy: tuple[float, float]) -> None:
        self.annotation_ids = frozenset({annotation_id})
        self.annotation_id, self.index, self.xy = annotation_id, index, xy
        self.ring = -1  # known once applied

    def apply(self, state: DocumentState) -> None:
        self.ring = state.by_id[self.annotation_id].delete_vertex(self.index)

    def revert(self, state: DocumentState) -> None:
        state.by_id[self.annotation_id].restore_vertex(self.index, self.ring, *self.xy)


class SetField(Change):
    """Classification, name or lock of some annotations: each one's old value and the new one."""

    def __init__(self, description: str, field_name: str, old: dict[str, object], new: object) -> None:
        self.description, self.field_name, self.old, self.new = description, field_name, old, new
        self.annotation_ids = frozenset(old)

    def apply(self, state: DocumentState) -> None:
        for annotation_id in self.old:
            setattr(state.by_id[annotation_id], self.field_name, self.new)

    def revert(self, state: DocumentState) -> None:
        for annotation_id, value in self.old.items():
            setattr(state.by_id[annotation_id], self.field_name, value)


class AddClass(Change):
    description = "add class"
    classes_changed = True
    annotation_ids = frozenset()

    def __init__(self, added: AnnotationClass) -> None:
        self.added = added

    def apply(self, state: DocumentState) -> None:
        state.classes.append(self.added)

    def revert(self, state: DocumentState) -> None:
        state.classes.remove(self.added)


class ReplaceClass(Change):
    """Rename or recolour a class: the list entry and every annotation of that class follow."""

    classes_changed = True

    def __init__(self, description: str, state: DocumentState, old: AnnotationClass, new: AnnotationClass) -> None:
        self.description, self.old, self.new = description, old, new
        self.annotation_ids = frozenset(a.id for a in state.annotations if a.classification == old)

    def apply(self, state: DocumentState) -> None:
        _swap_class(state, self.annotation_ids, self.old, self.new)

    def revert(self, state: DocumentState) -> None:
        _swap_class(state, self.annotation_ids, self.new, self.old)


class RemoveClass(Change):
    """Remove a class from the list; its annotations become unclassified (and come back with undo)."""

    description = "remove class"
    classes_changed = True

    def __init__(self, state: DocumentState, removed: AnnotationClass) -> None:
        self.removed, self.position = removed, state.classes.index(removed)
        self.annotation_ids = frozenset(a.id for a in state.annotations if a.classification == removed)

    def apply(self, state: DocumentState) -> None:
        del state.classes[self.position]
        for annotation_id in self.annotation_ids:
            state.by_id[annotation_id].classification = None

    def revert(self, state: DocumentState) -> None:
        state.classes.insert(self.position, self.removed)
        for annotation_id in self.annotation_ids:
            state.by_id[annotation_id].classification = self.removed


def _swap_class(state: DocumentState, ids: frozenset[str], old: AnnotationClass, new: AnnotationClass) -> None:
    state.classes[state.classes.index(old)] = new
    for annotation_id in ids:
        state.by_id[annotation_id].classification = new
