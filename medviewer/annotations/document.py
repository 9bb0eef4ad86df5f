"""The annotations of one slide and every edit made to them, with undo and redo: the UI's model and controller.

Like a napari layer model it holds no Qt: the slide view calls the edit methods and listens through
``changed``, a plain list of callables, each given a ``ChangeEvent`` after every edit, undo and redo.
The view redraws the annotations the event names (those no longer in the document are to be removed
from the scene); the autosaver notes that a save is due; a class-list editor saves the classes to the
user's config when ``classes_changed`` is true.

Drags: call ``move`` or ``move_vertex`` at each mouse step with ``continuing=True`` after the first, and
the whole drag becomes one undo step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from medviewer.annotations import changes
from medviewer.annotations.class_list import DEFAULT_CLASSES
from medviewer.annotations.model import Annotation, AnnotationClass, AnnotationEditError, AnnotationKind, Colour

#: Undo steps kept; older ones are forgotten.
UNDO_LIMIT = 1000


@dataclass(frozen=True)
class ChangeEvent:
    #: The edit's kind ("move", "delete annotation"): for a status line such as "Undone: move".
    description: str
    #: Annotations to redraw; those no longer in the document are to be removed from the view.
    annotation_ids: frozenset[str]
    #: The class list changed: the window saves it with ``save_classes(document.classes)``.
    classes_changed: bool
    revision: int
    undone: bool = False


class AnnotationDocument:
    def __init__(self, annotations: Iterable[Annotation] = (), classes: Iterable[AnnotationClass] = DEFAULT_CLASSES):
        """Takes ownership of ``annotations``. Classes are known by name: an annotation whose class is
        in ``classes`` is drawn in the list's colour (as QuPath does), and classes the list lacks are
        added to it (for this document only: nothing is saved to the user's config)."""
        self._state = changes.DocumentState()
        for known in classes:
            if self.class_named(known.name) is None:
                self._state.classes.append(known)
        for annotation in annotations:
            if annotation.id in self._state.by_id:
                raise ValueError(f"two annotations share the id {annotation.id}")
            if annotation.classification is not None:
                annotation.classification = self._adopt_class(annotation.classification)
            self._state.insert(len(self._state.annotations), annotation)
        self.changed: list[Callable[[ChangeEvent], None]] = []
        self._undo: list[changes.Change] = []
        self._redo: list[changes.Change] = []
        self.revision = 0
        self.saved_revision = 0

    # Reading ----------------------------------------------------------------------------------------

    @property
    def annotations(self) -> tuple[Annotation, ...]:
        """In drawing order: the last is on top."""
        return tuple(self._state.annotations)

    @property
    def classes(self) -> tuple[AnnotationClass, ...]:
        return tuple(self._state.classes)

    def __len__(self) -> int:
        return len(self._state.annotations)

    def __contains__(self, annotation_id: object) -> bool:
        return annotation_id in self._state.by_id

    def get(self, annotation_id: str) -> Annotation:
        return self._state.by_id[annotation_id]

    def class_named(self, name: str) -> AnnotationClass | None:
        return next((c for c in self._state.classes if c.name == name), None)

    def annotations_at(self, x: float, y: float, tolerance: float = 0.0) -> list[Annotation]:
        """Annotations hit at (x, y) (level-0 px, ``tolerance`` in level-0 px), topmost first."""
        return [a for a in reversed(self._state.annotations) if a.hit(x, y, tolerance)]

    @property
    def dirty(self) -> bool:
        """Whether there are edits not yet saved (``saved_revision`` is set by whoever saves)."""
        return self.revision != self.saved_revision

    # Annotation edits -------------------------------------------------------------------------------

    def add(self, *annotations: Annotation) -> None:
        """Add new annotations on top; a classification must name a class in the list."""
        if not annotations or any(a.id in self._state.by_id for a in annotations):
            raise AnnotationEditError("no annotation given" if not annotations else "the annotation is already there")
        for annotation in annotations:
            if annotation.classification is not None:
                annotation.classification = self._require_class(annotation.classification.name)
        self._push(changes.AddAnnotations(annotations))

    def remove(self, *annotation_ids: str) -> None:
        self._push(changes.RemoveAnnotations(self._state, self._existing(annotation_ids)))

    def move(self, annotation_ids: Iterable[str], dx: float, dy: float, continuing: bool = False) -> None:
        ids = self._existing(annotation_ids)
        self._require_unlocked(ids)
        self._push(changes.Translate(ids, dx, dy), merge=continuing)

    def move_vertex(self, annotation_id: str, index: int, x: float, y: float, continuing: bool = False) -> None:
        """Move handle ``index`` (see ``Annotation.handles``) to (x, y)."""
        annotation = self._editable(annotation_id)
        handles = annotation.handles()
        if not 0 <= index < len(handles):
            raise AnnotationEditError(f"there is no vertex {index} (the shape has {len(handles)})")
        before = (float(handles[index, 0]), float(handles[index, 1]))
        self._push(changes.MoveHandle(annotation_id, index, before, (x, y)), merge=continuing)

    def insert_vertex(self, annotation_id: str, after: int, x: float, y: float) -> None:
        self._editable(annotation_id)
        self._push(changes.InsertVertex(annotation_id, after, (x, y)))

    def add_point(self, x: float, y: float, class_name: str | None = None) -> str:
        """Add a point to the class's points annotation (the topmost unlocked one), or start one when there
        is none: as with QuPath's Points tool, a count is one MultiPoint per class rather than an object per
        click. Returns the id of the annotation that holds the point."""
        cls = None if class_name is None else self._require_class(class_name)
        holder = next(
            (
                a
                for a in reversed(self._state.annotations)
                if a.kind is AnnotationKind.POINTS and not a.locked and a.classification == cls
            ),
            None,
        )
        if holder is None:
            holder = Annotation.points([[x, y]], classification=cls)
            self.add(holder)
        else:
            self._push(changes.AppendPoint(holder.id, (x, y)))
        return holder.id

    def delete_vertex(self, annotation_id: str, index: int) -> None:
        annotation = self._editable(annotation_id)
        if not 0 <= index < len(annotation.vertices):
            raise AnnotationEditError(f"there is no vertex {index} (the shape has {len(annotation.vertices)})")
        xy = (float(annotation.vertices[index, 0]), float(annotation.vertices[index, 1]))
        self._push(changes.DeleteVertex(annotation_id, index, xy))

    def classify(self, annotation_ids: Iterable[str], class_name: str | None) -> None:
        """Give annotations a class from the list, or none (``class_name`` None)."""
        new = None if class_name is None else self._require_class(class_name)
        self._set_field("classify", "classification", annotation_ids, new)

    def rename(self, annotation_id: str, name: str | None) -> None:
        self._set_field("rename", "name", [annotation_id], name or None)

    def set_locked(self, annotation_ids: Iterable[str], locked: bool) -> None:
        self._set_field("lock" if locked else "unlock", "locked", annotation_ids, locked)

    # Class edits ------------------------------------------------------------------------------------

    def add_class(self, name: str, colour: Colour) -> None:
        if self.class_named(name) is not None:
            raise AnnotationEditError(f"there is already a class called {name!r}")
        self._push(changes.AddClass(AnnotationClass(name, colour)))

    def rename_class(self, name: str, new_name: str) -> None:
        old = self._require_class(name)
        if new_name != name and self.class_named(new_name) is not None:
            raise AnnotationEditError(f"there is already a class called {new_name!r}")
        new = AnnotationClass(new_name, old.colour)
        self._push(changes.ReplaceClass("rename class", self._state, old, new))

    def recolour_class(self, name: str, colour: Colour) -> None:
        old = self._require_class(name)
        new = AnnotationClass(name, colour)
        self._push(changes.ReplaceClass("recolour class", self._state, old, new))

    def remove_class(self, name: str) -> None:
        """Remove a class; its annotations become unclassified (undo gives it back to them)."""
        self._push(changes.RemoveClass(self._state, self._require_class(name)))

    # Undo -------------------------------------------------------------------------------------------

    def undo_description(self) -> str | None:
        """What Undo would undo ("move", "delete annotation", ...), or None when there is nothing."""
        return self._undo[-1].description if self._undo else None

    def redo_description(self) -> str | None:
        return self._redo[-1].description if self._redo else None

    def undo(self) -> None:
        if not self._undo:
            raise AnnotationEditError("there is nothing to undo")
        change = self._undo.pop()
        change.revert(self._state)
        self._redo.append(change)
        self._notify(change, undone=True)

    def redo(self) -> None:
        if not self._redo:
            raise AnnotationEditError("there is nothing to redo")
        change = self._redo.pop()
        change.apply(self._state)
        self._undo.append(change)
        self._notify(change)

    # Internals --------------------------------------------------------------------------------------

    def _push(self, change: changes.Change, merge: bool = False) -> None:
        """Apply a change and record it (merged into the previous step when a drag continues).

        A change that fails to apply (an edit the shape refuses) raises before anything is recorded.
        """
        change.apply(self._state)
        combined = self._undo[-1].merged_with(change) if merge and self._undo and not self._redo else None
        if combined is not None:
            self._undo[-1] = combined
        else:
            self._undo.append(change)
            del self._undo[:-UNDO_LIMIT]
        self._redo.clear()
        self._notify(change)

    def _notify(self, change: changes.Change, undone: bool = False) -> None:
        self.revision += 1
        event = ChangeEvent(change.description, change.annotation_ids, change.classes_changed, self.revision, undone)
        for callback in list(self.changed):
            callback(event)

    def _set_field(self, description: str, field_name: str, ids: Iterable[str], value: object) -> None:
        old = {i: getattr(self._state.by_id[i], field_name) for i in self._existing(ids)}
        self._push(changes.SetField(description, field_name, old, value))

    def _existing(self, annotation_ids: Iterable[str]) -> frozenset[str]:
        ids = frozenset(annotation_ids)
        missing = ids - self._state.by_id.keys()
        if missing or not ids:
            raise AnnotationEditError("no such annotation in the document" if missing else "no annotation given")
        return ids

    def _editable(self, annotation_id: str) -> Annotation:
        self._require_unlocked(self._existing([annotation_id]))
        return self._state.by_id[annotation_id]

    def _require_unlocked(self, ids: frozenset[str]) -> None:
        if any(self._state.by_id[i].locked for i in ids):
            raise AnnotationEditError("the annotation is locked: unlock it to change its shape")

    def _require_class(self, name: str) -> AnnotationClass:
        found = self.class_named(name)
        if found is None:
            raise AnnotationEditError(f"there is no class called {name!r}")
        return found

    def _adopt_class(self, classification: AnnotationClass) -> AnnotationClass:
        known = self.class_named(classification.name)
        if known is None:
            self._state.classes.append(classification)
            return classification
        return known
