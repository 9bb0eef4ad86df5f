"""Where annotations are kept beside a slide, loading them on open, damaged files, and the autosaver."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medviewer.annotations import (
    Annotation,
    AnnotationDocument,
    Autosaver,
    load_sidecar,
    read_geojson,
    sidecar,
    write_geojson,
)
from medviewer.core.logs import setup_logging


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def slide(tmp_path: Path) -> Path:
    folder = tmp_path / "Doe^Jane 1970"  # hospital exports name folders after patients
    folder.mkdir()
    path = folder / "S21-1234.svs"
    path.write_bytes(b"not really a slide")
    return path


def test_sidecar_sits_beside_the_slide_and_edits_are_saved_after_the_delay(slide: Path) -> None:
    loaded = load_sidecar(slide)
    assert loaded.path == slide.parent / "S21-1234.svs.annotations.geojson"
    assert loaded.annotations == [] and loaded.problems == []
    document = AnnotationDocument(loaded.annotations)
    clock = FakeClock()
    saver = Autosaver(document, loaded.path, delay_s=1.5, clock=clock)
    assert saver.save_if_due() is None  # nothing edited: no file is made
    document.add(Annotation.rectangle(0, 0, 10, 10, name="Doe biopsy"))
    assert saver.due_at == 101.5
    clock.now = 101.0
    assert saver.save_if_due() is None and not loaded.path.exists()
    clock.now = 101.5
    result = saver.save_if_due()
    assert result.error is None and result.revision == 1 and not document.dirty
    assert [a.name for a in read_geojson(loaded.path)] == ["Doe biopsy"]
    document.move([document.annotations[0].id], 5, 5)
    assert saver.close().error is None  # closing the slide saves at once
    reopened = load_sidecar(slide)
    assert reopened.annotations[0].bounds() == (5, 5, 15, 15)
    assert saver.flush() is None


def test_read_only_slide_folder_falls_back_to_the_user_data_folder(
    slide: Path, medviewer_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sidecar.os, "access", lambda path, mode: Path(path) != slide.parent)
    loaded = load_sidecar(slide)
    assert loaded.path.parent == medviewer_home / "data" / "annotations"
    assert loaded.path.name.startswith("S21-1234.svs-") and loaded.path.name.endswith(".annotations.geojson")
    other = slide.parent.parent / "elsewhere" / slide.name  # same name, other folder: another file
    assert sidecar.in_user_data(other) != loaded.path


def test_the_newer_of_two_sidecars_is_read(slide: Path) -> None:
    beside, fallback = sidecar.beside_slide(slide), sidecar.in_user_data(slide)
    write_geojson(beside, [Annotation.points([[1, 1]])])
    write_geojson(fallback, [Annotation.points([[2, 2]])])
    os.utime(beside, (1_000_000, 1_000_000))
    assert load_sidecar(slide).annotations[0].vertices.tolist() == [[2, 2]]


def test_damaged_sidecar_is_kept_reported_and_never_overwritten(slide: Path) -> None:
    beside = sidecar.beside_slide(slide)
    damaged = b'{"type": "FeatureCollection", "features": [{"type": "Feat'
    beside.write_bytes(damaged)
    loaded = load_sidecar(slide)
    assert loaded.annotations == [] and loaded.path == beside
    (backup,) = slide.parent.glob("S21-1234.svs.annotations.geojson.corrupt-*")
    assert backup.read_bytes() == damaged
    (problem,) = loaded.problems
    assert str(beside) in problem and backup.name in problem and "not valid JSON" in problem
    document = AnnotationDocument(loaded.annotations)
    saver = Autosaver(document, loaded.path)
    document.add(Annotation.points([[3, 3]]))
    assert saver.flush().error is None
    assert backup.read_bytes() == damaged and len(read_geojson(beside)) == 1
    beside.write_bytes(damaged)  # damaged again, in the same second: a second backup, the first kept
    load_sidecar(slide)
    assert len(list(slide.parent.glob("*.corrupt-*"))) == 2


def test_damaged_newer_sidecar_falls_back_to_the_older_one(slide: Path) -> None:
    beside, fallback = sidecar.beside_slide(slide), sidecar.in_user_data(slide)
    write_geojson(fallback, [Annotation.points([[2, 2]])])
    os.utime(fallback, (1_000_000, 1_000_000))
    beside.write_text("{")
    loaded = load_sidecar(slide)
    assert loaded.annotations[0].vertices.tolist() == [[2, 2]] and len(loaded.problems) == 1


def test_failed_save_is_reported_retried_and_logged_without_names(slide: Path) -> None:
    log_file = setup_logging()
    document = AnnotationDocument()
    clock = FakeClock()
    missing_folder = slide.parent / "gone"
    saver = Autosaver(document, missing_folder / "x.annotations.geojson", delay_s=1, clock=clock)
    document.add(Annotation.points([[0, 0]], name="Doe biopsy"))
    clock.now += 1
    result = saver.save_if_due()
    assert result.error is not None and str(missing_folder) in result.error and document.dirty
    assert saver.due_at == clock.now + 1  # tried again a moment later
    missing_folder.mkdir()
    clock.now += 1
    assert saver.save_if_due().error is None and not document.dirty
    slide.parent.joinpath(slide.name + ".annotations.geojson").write_text("[1")
    load_sidecar(slide)
    text = log_file.read_text()
    assert "autosave" in text and "damaged" in text
    assert "Doe" not in text and "S21-1234" not in text
