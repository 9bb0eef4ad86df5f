"""Adding a file's annotations to a document, so that importing the same file again adds nothing.

QuPath gives every object a UUID and keeps it through export and import; a GeoJSON file read twice, or
a colleague's export of annotations this slide already holds, therefore brings ids the document knows.
An annotation whose id is already there and which says the same (``Annotation.same_as``) is skipped;
one with a known id but a different shape or class (edited since, here or there) is kept as a copy under
a new id, so neither version is lost. Files without ids (ASAP XML, GeoJSON without ``id``) get new ids
on reading and are always added.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from medviewer.annotations.document import AnnotationDocument
from medviewer.annotations.model import Annotation


@dataclass(frozen=True)
class ImportSummary:
    #: Annotations added to the document (copies included).
    added: int
    #: Annotations already in the document, same id and same content: not added again.
    skipped: int
    #: Of ``added``: annotations whose id the document held for a different annotation, added under a new id.
    copies: int


def import_into(document: AnnotationDocument, imported: Iterable[Annotation]) -> ImportSummary:
    """Add ``imported`` to ``document``: the classes it lacks first (with the file's colours), then the new
    annotations in one undo step."""
    added: list[Annotation] = []
    skipped = copies = 0
    for annotation in imported:
        if annotation.id in document:
            if document.get(annotation.id).same_as(annotation):
                skipped += 1
                continue
            annotation.id = str(uuid.uuid4())
            copies += 1
        added.append(annotation)
    for annotation in added:
        cls = annotation.classification
        if cls is not None and document.class_named(cls.name) is None:
            document.add_class(cls.name, cls.colour)
    if added:
        document.add(*added)
    return ImportSummary(added=len(added), skipped=skipped, copies=copies)
