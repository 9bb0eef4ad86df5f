"""What a person can do with medviewer, without a window: the application layer.

Each action (open an image, run a model, keep a slide's annotations, import into the catalog, export) is a
function or a small class here that takes plain inputs, a progress callback and a cancel check, and returns a
typed result. It reads through ``io``, runs through ``ai``, and leaves the same traces wherever it was
started: the audit trail's event, the catalog's row, the stored result. The window (``medviewer.ui``) and
the command line (``medviewer.cli``) call these functions and only decide how to show what they return, so a
model run from a terminal is audited and catalogued exactly as one from the window. This is the role of a 3D
Slicer module's Logic class.

Nothing here imports Qt (an import-linter contract): a batch runner or a PACS listener uses it as it is.
"""
