"""Opening, annotating and importing through the actions, without Qt: what a batch runner or a PACS
listener will call, leaving the traces the window leaves."""

from __future__ import annotations

import json
import shutil
from contextlib import closing
from pathlib import Path

import nibabel as nib
import numpy as np
import openslide
import pytest

from medviewer.actions.catalog_import import import_into_catalog
from medviewer.actions.catalog_view import CatalogView
from medviewer.actions.opening import open_file, open_image, to_catalog
from medviewer.actions.slide_annotations import AnnotationSession
from medviewer.actions.trail import identity_of
from medviewer.annotations.geojson import read_geojson
from medviewer.annotations.model import Annotation
from medviewer.catalog import audit
from medviewer.catalog.browse import slide_key
from medviewer.catalog.schema import catalog_path, connect
from medviewer.core.errors import MedviewerError
from medviewer.io.preview import OpenedImage
from medviewer.io.slide import Slide
from tests.support.paths import nibabel_file, real_file


def test_opening_a_real_slide_reads_it_and_records_the_open():
    path = real_file("wsi/CMU-1-Small-Region.svs")
    opened = open_file(path)
    assert isinstance(opened.content, OpenedImage) and isinstance(opened.content.image, Slide)
    with openslide.OpenSlide(str(path)) as reference:  # the independent reader agrees on the size
        assert opened.content.image.dimensions == reference.dimensions
    opened.content.image.close()
    [event] = audit.events(event="open")
    assert event.subject == audit.path_subject(path) and event.details == {"kind": "slide"}
    identity = identity_of(opened.content.image, path)
    assert identity.key == slide_key(path) and identity.in_catalog


def test_a_nifti_volume_opens_with_nibabels_values_and_is_not_catalogued():
    path = nibabel_file("anatomical.nii")
    opened = open_image(path)
    reference = np.asarray(nib.load(path).dataobj, dtype=np.float64)
    assert opened.image.array.size == reference.size
    assert np.isclose(float(opened.image.array.astype(np.float64).sum()), float(reference.sum()), rtol=1e-6)
    assert to_catalog(opened.image, path) == []  # no patient or series to file it under
    assert [e.details for e in audit.events(event="open")] == [{"kind": "volume"}]


def test_a_damaged_file_is_refused_naming_it_and_the_failed_open_is_recorded(tmp_path: Path):
    damaged = tmp_path / "cut.nii"
    damaged.write_bytes(nibabel_file("anatomical.nii").read_bytes()[:200])
    with pytest.raises(MedviewerError) as refused:
        open_file(damaged)
    assert str(damaged) in str(refused.value)
    [event] = audit.events(event="failed_open")
    assert event.subject == audit.path_subject(damaged)
    assert audit.events(event="open") == []


@pytest.fixture
def slide_copy(tmp_path: Path) -> Path:
    path = tmp_path / "CMU-1-Small-Region.svs"
    shutil.copy(real_file("wsi/CMU-1-Small-Region.svs"), path)
    return path


def test_an_annotation_session_saves_audits_lists_and_reopens(slide_copy: Path):
    catalog = catalog_path()
    import_into_catalog([slide_copy], catalog)
    session = AnnotationSession(slide_copy, catalog)
    assert session.opening_problems == () and len(session.document) == 0
    imported = session.import_file(real_file("annotations/qupath_0.5_export.geojson"))
    assert imported.summary.added == len(read_geojson(real_file("annotations/qupath_0.5_export.geojson")))
    again = session.import_file(real_file("annotations/qupath_0.5_export.geojson"))
    assert again.summary.added == 0 and "already on this slide" in again.notes[0]

    snapshot = session.due_save(now=float("inf"))  # the autosave delay has long passed
    assert snapshot is not None and snapshot.path == session.sidecar
    outcome = session.write_save(snapshot)  # any thread: the window runs it on its write lane
    session.settle(outcome)
    assert outcome.result.error is None and not outcome.problems and not session.document.dirty
    assert [e.details for e in audit.events(event="annotation_save")] == [{"annotations": imported.summary.added}]
    with closing(CatalogView.open(catalog)) as view:
        [listed] = view.annotation_files(slide_key(slide_copy))
    assert Path(listed.path) == session.sidecar and listed.format == "QuPath GeoJSON"

    reopened = AnnotationSession(slide_copy, catalog)
    assert {a.id for a in reopened.document.annotations} == {a.id for a in session.document.annotations}


def test_a_last_save_that_cannot_be_written_goes_to_the_data_folder(slide_copy: Path):
    session = AnnotationSession(slide_copy)
    rectangle = Annotation.rectangle(10.0, 20.0, 110.0, 220.0)
    session.document.add(rectangle)
    snapshot = session.closing_save()
    assert snapshot is not None
    snapshot.path.mkdir()  # something else took the sidecar's name meanwhile: the write fails, as on a full disk
    outcome = session.write_save(snapshot, last=True)
    assert outcome.result.error is not None and str(snapshot.path) in outcome.result.error
    [message] = outcome.problems.messages
    rescue = Path(message.split("saved to ")[1].split(" instead")[0])
    assert [a.id for a in read_geojson(rescue)] == [rectangle.id]


def test_an_export_is_written_recorded_and_listed_with_the_slide(slide_copy: Path, tmp_path: Path):
    catalog = catalog_path()
    session = AnnotationSession(slide_copy, catalog)
    session.import_file(real_file("annotations/asap_camelyon_style.xml"))
    written, problems = session.write_export(session.export_snapshot(tmp_path / "out"))
    assert written == tmp_path / "out.geojson" and not problems
    assert len(read_geojson(written)) == len(session.document)
    [event] = audit.events(event="export")
    assert event.subject == audit.path_subject(written) and event.details == {"what": "annotations GeoJSON"}
    with closing(CatalogView.open(catalog)) as view:
        assert [Path(f.path) for f in view.annotation_files(slide_key(slide_copy))] == [written]


def test_an_import_stops_when_asked_and_keeps_what_it_wrote(tmp_path: Path, ct2_dir: Path):
    folders = []
    for n in range(3):
        folder = tmp_path / f"copy{n}"
        shutil.copytree(ct2_dir, folder)
        folders.append(folder)
    asked = []

    def cancelled() -> bool:
        asked.append(True)
        return True

    report = import_into_catalog(folders, catalog_path(), cancelled=cancelled)
    assert asked and report.cancelled
    with closing(connect(catalog_path())) as connection:
        assert connection.execute("SELECT COUNT(*) FROM instances").fetchone()[0] < 12
    complete = import_into_catalog(folders, catalog_path())
    assert not complete.cancelled and complete.added + complete.unchanged == 12
    assert json.loads(json.dumps(complete.elapsed_s)) >= 0
