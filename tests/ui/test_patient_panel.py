"""The patient panel on the catalog, as a user works with it: import, search, open, pseudonyms, missing
files, and a damaged catalog at start-up."""

from __future__ import annotations

import os
import shutil
from contextlib import closing
from pathlib import Path

import pydicom
import pytest
from pydicom.fileset import FileSet
from PySide6.QtWidgets import QMessageBox

from medviewer.catalog import connect
from medviewer.catalog.browse import record_ai_result, series_key
from medviewer.ui.app import make_settings
from medviewer.ui.main_window import MainWindow
from medviewer.ui.patient_panel import MISSING_COLOUR, UNASSIGNED_SLIDES, PatientPanel, dicom_date
from tests.support.dicom_copies import write_files
from tests.support.paths import pydicom_file
from tests.support.windows import shown

TIMEOUT_MS = 60_000


@pytest.fixture
def window(qtbot) -> MainWindow:
    return shown(qtbot, MainWindow(make_settings()), 1600, 1000)


@pytest.fixture
def dicomdir_tree(tmp_path: Path) -> Path:
    """pydicom's real DICOMDIR tree (2 patients), copied so a test may delete files."""
    source = pydicom_file("dicomdirtests/DICOMDIR").parent
    target = tmp_path / "dicomdirtests"
    for name in ("77654033", "98892001", "98892003"):
        shutil.copytree(source / name, target / name)
    shutil.copy(source / "DICOMDIR", target / "DICOMDIR")
    return target


def idle(qtbot, window: MainWindow) -> None:
    assert window.wait_until_idle(TIMEOUT_MS)


def top_rows(panel: PatientPanel) -> list[str]:
    return [panel.tree.topLevelItem(i).text(0) for i in range(panel.tree.topLevelItemCount())]


def all_texts(panel: PatientPanel) -> str:
    return "\n".join(item.text(c) + item.toolTip(c) for item in panel._items() for c in (0, 1))


def test_an_imported_dicomdir_is_listed_with_the_patients_studies_and_series_pydicom_finds(
    qtbot, window: MainWindow, dicomdir_tree: Path
):
    window.import_paths([dicomdir_tree / "DICOMDIR"])
    assert window.patient_panel.progress_box.isVisibleTo(window.patient_panel)
    idle(qtbot, window)
    assert not window.patient_panel.progress_box.isVisibleTo(window.patient_panel)
    assert "Import finished" in window.statusBar().currentMessage()
    fileset = FileSet(pydicom.dcmread(dicomdir_tree / "DICOMDIR"))
    panel = window.patient_panel
    patients = {panel.tree.topLevelItem(i) for i in range(panel.tree.topLevelItemCount())}
    assert len(patients) == len(fileset.find_values("PatientID"))
    studies = [p.child(i) for p in patients for i in range(p.childCount())]
    assert len(studies) == len(fileset.find_values("StudyInstanceUID"))
    series = [e for e in panel.entries() if e.kind == "series"]
    assert len(series) == len(fileset.find_values("SeriesInstanceUID"))
    counts = {e.series_uid: panel.item_for(e.key).text(1) for e in series}
    for uid in counts:
        assert counts[uid].startswith(f"{len(fileset.find(SeriesInstanceUID=uid))} image(s)")
    # thumbnails come from the background maker (every series of this tree holds images)
    assert all(not panel.item_for(e.key).icon(0).isNull() for e in series)


def test_search_box_and_modality_filter_narrow_the_tree(qtbot, window: MainWindow, dicomdir_tree: Path):
    window.import_paths([dicomdir_tree / "DICOMDIR"])
    idle(qtbot, window)
    panel = window.patient_panel
    assert len(top_rows(panel)) == 2
    panel.search_box.setText("77654033")  # a patient ID
    assert len(top_rows(panel)) == 1
    shown_ids = {panel.tree.topLevelItem(0).text(1).split()[0]}
    assert shown_ids == {"77654033"}
    panel.search_box.setText("no such patient")
    assert top_rows(panel) == []
    panel.search_box.clear()
    modalities = [panel.modality_box.itemText(i) for i in range(panel.modality_box.count())]
    assert "MR" in modalities and "CT" in modalities
    panel.modality_box.setCurrentText("MR")
    assert panel.entries() and all(e.label.startswith("MR") for e in panel.entries())


def test_double_click_opens_a_catalog_series_in_the_volume_viewer(qtbot, window: MainWindow, demo_dir: Path):
    window.open_paths([demo_dir / "ct2"])
    idle(qtbot, window)
    panel = window.patient_panel
    (entry,) = [e for e in panel.entries() if e.kind == "series"]
    window.opened.clear()  # as after a restart: the series must be read again from its catalogued files
    item = panel.item_for(entry.key)
    panel.tree.itemActivated.emit(item, 0)
    idle(qtbot, window)
    assert window.volume_view.volume.shape == (48, 256, 256)
    assert window.shown_key == entry.key
    assert "DEMO" in window.windowTitle()


def test_opened_images_join_the_panel_and_nifti_is_listed_outside_the_catalog(
    qtbot, window: MainWindow, demo_dir: Path
):
    window.open_paths([demo_dir / "ct", demo_dir / "ct2", demo_dir / "slide.tiff", demo_dir / "ct.nii.gz"])
    idle(qtbot, window)
    rows = top_rows(window.patient_panel)
    assert UNASSIGNED_SLIDES in rows
    assert len([r for r in rows if r.startswith("DEMO, ")]) == 2
    assert "Open files outside the catalog" in rows
    slide_entry = next(e for e in window.patient_panel.entries() if e.kind == "slide")
    assert "20480×15360" in window.patient_panel.item_for(slide_entry.key).text(1)


def test_anonymised_display_uses_stable_pseudonyms_in_panel_title_and_corner_text(
    qtbot, window: MainWindow, demo_dir: Path, tmp_path: Path
):
    slide = tmp_path / "SMITH_JOHN_12345.tiff"  # file names can be patients' names
    shutil.copy(demo_dir / "slide.tiff", slide)
    window.open_paths([demo_dir / "ct", slide, demo_dir / "ct2"], activate_first_only=True)
    idle(qtbot, window)
    patient = window.volume_view.volume.patient
    family = patient.name.split("^")[0]
    assert family in window.windowTitle()
    window.anonymise_action.setChecked(True)
    panel_text, title = all_texts(window.patient_panel), window.windowTitle()
    corner = window.volume_view.views[next(iter(window.volume_view.views))].corner_labels["top_left"].text()
    hidden = (family, patient.patient_id, dicom_date(patient.study_date), "SMITH", "12345")
    for text in (panel_text, title, corner, window.statusBar().currentMessage()):
        for value in hidden:
            assert value not in text
    alias = title.split(" — ")[1]
    assert alias.startswith("Patient ") and alias in panel_text and alias in corner
    patients = [r for r in top_rows(window.patient_panel) if r.startswith("Patient ")]
    assert len(set(patients)) == 2  # two patients, two pseudonyms
    window.open_entry(next(e for e in window.patient_panel.entries() if e.kind == "slide"))
    assert "SMITH" not in window.windowTitle() and window.windowTitle().startswith("medviewer — Image ")
    window.anonymise_action.setChecked(False)
    assert "SMITH_JOHN_12345.tiff" in all_texts(window.patient_panel)
    window.anonymise_action.setChecked(True)
    assert alias in all_texts(window.patient_panel)  # the same pseudonym again


def test_files_deleted_since_import_are_greyed_and_a_click_says_so(qtbot, window: MainWindow, dicomdir_tree: Path):
    window.import_paths([dicomdir_tree / "DICOMDIR"])
    idle(qtbot, window)
    entry = next(e for e in window.patient_panel.entries() if e.kind == "series")
    files = window.catalog.series_files(entry.series_uid)
    for path in files:
        Path(path).unlink()  # while the window is open: no start-up check has seen it
    window.patient_panel.tree.itemActivated.emit(window.patient_panel.item_for(entry.key), 0)
    assert "moved or deleted" in window.statusBar().currentMessage()
    idle(qtbot, window)  # the click ran the check again, so the row now says so
    item = window.patient_panel.item_for(entry.key)
    assert item.foreground(0).color() == MISSING_COLOUR
    assert f"{len(files)} missing" in item.text(1)
    window.patient_panel.tree.itemActivated.emit(item, 0)
    assert "moved or deleted" in window.statusBar().currentMessage()
    assert window.message_bar.messages == []  # a fact, not an error


def test_two_patients_sharing_an_id_keep_their_own_rows_and_search_finds_names_and_descriptions(
    qtbot, window: MainWindow, dicomdir_tree: Path, tmp_path: Path
):
    source = next(p for p in (dicomdir_tree / "98892001").rglob("*") if p.is_file())
    folder = tmp_path / "same-id"
    folder.mkdir()
    for n, name in enumerate(("ALPHA^ANNA", "BETA^BERT")):
        ds = pydicom.dcmread(source)
        ds.PatientID, ds.PatientName, ds.AccessionNumber = "SHARED-1", name, f"ACC{n}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = f"2.25.{100 + n}", f"2.25.{200 + n}"
        ds.SOPInstanceUID, ds.StudyDescription = f"2.25.{300 + n}", f"Knee {name[:4]}"
        ds.save_as(folder / f"{n}.dcm")
    window.import_paths([folder])
    idle(qtbot, window)
    panel = window.patient_panel
    assert {"ALPHA, ANNA", "BETA, BERT"} <= set(top_rows(panel))
    panel.search_box.setText("bert")  # part of a name, any case
    assert top_rows(panel) == ["BETA, BERT"]
    panel.search_box.setText("ACC0")  # an accession number
    assert top_rows(panel) == ["ALPHA, ANNA"]
    panel.search_box.setText("knee")  # a study description
    assert sorted(top_rows(panel)) == ["ALPHA, ANNA", "BETA, BERT"]


def test_earlier_ai_results_are_listed_with_their_series(qtbot, window: MainWindow, demo_dir: Path):
    window.open_paths([demo_dir / "ct2"])
    idle(qtbot, window)
    panel = window.patient_panel
    entry = next(e for e in panel.entries() if e.kind == "series")
    with closing(connect(window.catalog_file)) as connection:
        record_ai_result(connection, series_key(entry.series_uid), "ct-lesion-demo", "1.0", "ab" * 32, "lesion 0.97")
    panel.tree.setCurrentItem(panel.item_for(entry.key))
    panel.refresh_details()  # as the window does when it records a result
    rows = [panel.details.topLevelItem(i).text(0) for i in range(panel.details.topLevelItemCount())]
    assert rows == ["AI: ct-lesion-demo 1.0"]


@pytest.mark.slow
def test_an_import_shows_progress_and_can_be_cancelled(qtbot, window: MainWindow, tmp_path: Path, monkeypatch):
    write_files(tmp_path / "many", 1500)
    seen: list[str] = []
    show = window.patient_panel.show_import_progress

    def shown_then_cancelled(fraction: float | None, words: str) -> None:
        show(fraction, words)
        if fraction:  # past "Looking for files…": the import's own counts
            seen.append(window.patient_panel.progress_label.text())
            window.patient_panel.cancel_button.click()

    monkeypatch.setattr(window.patient_panel, "show_import_progress", shown_then_cancelled)
    window.import_paths([tmp_path / "many"])
    idle(qtbot, window)
    assert seen and "files/s" in seen[0]
    assert "Import cancelled" in window.statusBar().currentMessage()
    conn = connect(window.catalog_file)
    imported = conn.execute("SELECT COUNT(*) FROM instances").fetchone()[0]
    conn.close()
    assert 0 < imported < 1500


def test_a_damaged_catalog_is_kept_aside_and_rebuilt_on_request(
    qtbot, medviewer_home: Path, tmp_path: Path, monkeypatch
):
    window = shown(qtbot, MainWindow(make_settings()), 1200, 800)
    catalog = window.catalog_file
    idle(qtbot, window)  # its start-up check of missing files has closed its connection
    window.close()
    catalog.write_bytes(b"this is not an SQLite database" * 100)
    asked: list[str] = []

    def answer_yes(parent, title, text, *args, **kwargs):
        asked.append(text)
        return QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer_yes)
    window = shown(qtbot, MainWindow(make_settings()), 1200, 800)
    # checked in the background as the window opens: a rebuild is offered, saying the catalog is damaged
    qtbot.waitUntil(lambda: bool(asked), timeout=TIMEOUT_MS)
    assert "damaged" in asked[0]
    assert str(catalog) in asked[0] or catalog.name in asked[0]
    idle(qtbot, window)
    assert list(catalog.parent.glob(f"{catalog.name}.damaged-*"))
    assert window.catalog is not None and not window.patient_panel.status.isVisibleTo(window.patient_panel)
    write_files(tmp_path / "after", 3)
    window.import_paths([tmp_path / "after"])
    idle(qtbot, window)
    with closing(connect(window.catalog_file)) as connection:
        assert connection.execute("SELECT COUNT(*) FROM instances").fetchone()[0] == 3


def test_a_slide_assigned_to_a_patient_is_listed_under_them_and_keeps_the_link_on_reimport(
    qtbot, window: MainWindow, demo_dir: Path, tmp_path: Path
):
    slide = tmp_path / "slide.tiff"
    shutil.copy(demo_dir / "slide.tiff", slide)
    window.import_paths([demo_dir / "ct2", slide])
    idle(qtbot, window)
    panel = window.patient_panel
    entry = next(e for e in panel.entries() if e.kind == "slide")
    assert panel.item_for(entry.key).parent().text(0) == UNASSIGNED_SLIDES
    [(patient_id, name)] = window.catalog.patients()
    panel.assign(entry, (patient_id, name))
    idle(qtbot, window)  # a change to the catalog: a job on its lane
    assert panel.item_for(entry.key).parent().text(1).startswith(patient_id)
    later = slide.stat().st_mtime_ns + 10**9
    os.utime(slide, ns=(later, later))  # changed on disk: read again, and a TIFF names no patient
    window.import_paths([slide])
    idle(qtbot, window)
    assert "1 slide(s)" in window.statusBar().currentMessage()
    assert panel.item_for(entry.key).parent().text(1).startswith(patient_id)
    panel.assign(entry, None)
    idle(qtbot, window)
    assert panel.item_for(entry.key).parent().text(0) == UNASSIGNED_SLIDES
