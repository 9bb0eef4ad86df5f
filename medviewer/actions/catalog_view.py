"""The catalog as the patient panel and the window read it, through one connection they own.

The window asks many small indexed questions while a person types a search or clicks a row (each well under
a millisecond on a catalog of thousands of series), so they stay on its thread, through this class: the
window holds no SQL and no connection of its own. What changes the catalog (imports, runs, annotation files,
a slide's patient) runs as a job with its own connection, on the catalog lane.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from medviewer.actions.jobs import Job, JobKind, plain_job
from medviewer.catalog.browse import (
    AiResultEntry,
    AnnotationFileEntry,
    ai_results_for,
    annotation_files_for,
    assign_slide,
    patients,
    series_files,
)
from medviewer.catalog.schema import connect
from medviewer.catalog.search import SeriesHit, SlideEntry, search, slides
from medviewer.core.errors import CorruptFileError, MedviewerError


@dataclass(frozen=True)
class CatalogCheck:
    """Whether the catalog at a path can be used: None, or why not (``damaged``: it was copied aside, and a
    rebuild from the files it referenced is what to offer)."""

    problem: str | None = None
    damaged: bool = False


def check_catalog(path: Path) -> CatalogCheck:
    """Open the catalog once with SQLite's quick check and its schema brought up to date (a write), so the
    window's own connection afterwards only reads."""
    try:
        connect(path).close()
    except CorruptFileError as exc:
        return CatalogCheck(str(exc), damaged=True)
    except MedviewerError as exc:
        return CatalogCheck(str(exc))
    return CatalogCheck()


def check_job(path: Path) -> Job[CatalogCheck]:
    return plain_job(JobKind.EDIT_CATALOG, "Checking the catalog", lambda: check_catalog(path))


class CatalogView:
    """Read-only questions to the catalog at ``path``, on the thread that opened it."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._connection = connection

    @classmethod
    def open(cls, path: Path) -> CatalogView:
        """A reading connection to a catalog ``check_catalog`` has passed."""
        return cls(path, connect(path, verify=False))

    def close(self) -> None:
        self._connection.close()

    def series(self, text: str | None, modality: str | None, date_from: str | None) -> list[SeriesHit]:
        return search(self._connection, any_text=text, modality=modality, date_from=date_from)

    def slides(self) -> list[SlideEntry]:
        return slides(self._connection)

    def modalities(self) -> list[str]:
        """The modalities catalogued, SM among them when there are slides, for the panel's filter."""
        found = {row[0] for row in self._connection.execute("SELECT DISTINCT modality FROM series") if row[0]}
        if self._connection.execute("SELECT EXISTS (SELECT 1 FROM slides)").fetchone()[0]:
            found.add("SM")
        return sorted(found)

    def annotation_files(self, key: str) -> list[AnnotationFileEntry]:
        return annotation_files_for(self._connection, [key])

    def ai_results(self, key: str) -> list[AiResultEntry]:
        """The runs recorded for an image, newest first."""
        return ai_results_for(self._connection, [key])

    def patients(self) -> list[tuple[str, str]]:
        return patients(self._connection)

    def series_files(self, series_uid: str) -> list[Path]:
        return series_files(self._connection, series_uid)


def assign_slide_job(catalog: Path, slide: Path, patient: tuple[str, str] | None) -> Job[str | None]:
    """Link a slide whose file names no patient to a catalogued patient (None unlinks); the job's result is
    why not (a patient no longer in the catalog), or None."""

    def assign() -> str | None:
        connection = connect(catalog, verify=False)
        try:
            assign_slide(connection, slide, patient)
        except KeyError as exc:
            return str(exc.args[0])
        finally:
            connection.close()
        return None

    return plain_job(JobKind.EDIT_CATALOG, "Assigning the slide to a patient", assign)
