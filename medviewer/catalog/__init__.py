"""The local catalog: an SQLite index of patients, studies, series, instances and slides.

Filled by ``Importer`` (headers only, incremental, in the background) and read by the patient panel and
``medviewer list``. One connection per thread: call ``connect()`` in the thread that uses it.
"""

from medviewer.catalog.importer import Importer, ImportReport, Progress, Unreadable
from medviewer.catalog.maintenance import check_missing, rebuild
from medviewer.catalog.schema import catalog_path, connect
from medviewer.catalog.search import SeriesHit, search

__all__ = [
    "ImportReport",
    "Importer",
    "Progress",
    "SeriesHit",
    "Unreadable",
    "catalog_path",
    "check_missing",
    "connect",
    "rebuild",
    "search",
]
