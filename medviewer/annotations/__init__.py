"""Slide annotations: the model, QuPath GeoJSON and ASAP XML, edits with undo, and crash-safe autosave. No Qt.

Coordinates are level-0 slide pixels, x to the right and y down. The window drives it like this::

    loaded = load_sidecar(slide_path)                 # annotations saved earlier, and where to save
    document = AnnotationDocument(loaded.annotations, load_classes())
    autosaver = Autosaver(document, loaded.path)      # call autosaver.save_if_due() from a timer
    document.changed.append(redraw)                   # redraw(event): event.annotation_ids changed
    document.add(Annotation.rectangle(0, 0, 100, 50, classification=document.class_named("Tumor")))
    document.undo(); document.redo()
"""

from medviewer.annotations.asap_xml import read_asap_xml
from medviewer.annotations.autosave import Autosaver, SaveResult
from medviewer.annotations.class_list import DEFAULT_CLASSES, load_classes, save_classes
from medviewer.annotations.document import AnnotationDocument, ChangeEvent
from medviewer.annotations.geojson import export_path, read_geojson, write_geojson
from medviewer.annotations.importing import ImportSummary, import_into
from medviewer.annotations.model import Annotation, AnnotationClass, AnnotationEditError, AnnotationKind, Mpp
from medviewer.annotations.sidecar import LoadedSidecar, load_sidecar

__all__ = [
    "DEFAULT_CLASSES",
    "Annotation",
    "AnnotationClass",
    "AnnotationDocument",
    "AnnotationEditError",
    "AnnotationKind",
    "Autosaver",
    "ChangeEvent",
    "ImportSummary",
    "LoadedSidecar",
    "Mpp",
    "SaveResult",
    "export_path",
    "import_into",
    "load_classes",
    "load_sidecar",
    "read_asap_xml",
    "read_geojson",
    "save_classes",
    "write_geojson",
]
