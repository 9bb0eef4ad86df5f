"""Opening what is not a plain image, as a user does: a folder with several series asks which one, a
segmentation is drawn over the series it was made on (found in the folder or the catalog), a structure
set without its series says which series it needs, and a structured report is read in the Report panel.

Real public files: pydicom's CT2 series and highdicom's SEG made on it, pydicom's SR and RT structure set.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.ui.app import make_settings
from medviewer.ui.main_window import MainWindow
from tests.support.paths import pydicom_file, real_file
from tests.support.windows import shown

TIMEOUT_MS = 60_000
SEG = real_file("highdicom/seg_image_ct_binary_overlap.dcm")  # 2 segments on all four CT2 slices


@pytest.fixture
def window(qtbot) -> MainWindow:
    return shown(qtbot, MainWindow(make_settings()), 1600, 1000)


def idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.busy(), timeout=TIMEOUT_MS)


@pytest.fixture
def study(ct2_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    shutil.copytree(ct2_dir, folder)
    shutil.copy(SEG, folder / "seg.dcm")
    return folder


def segment_voxels(window: MainWindow) -> int:
    label_map = window.volume_view.label_map
    return 0 if label_map is None else int(np.count_nonzero(label_map.array))


def test_a_folder_with_a_series_and_its_seg_asks_and_lists_the_images_first(qtbot, window: MainWindow, study: Path):
    window.open_paths([study])
    idle(qtbot, window)
    chooser = window.series_chooser
    assert chooser is not None and chooser.isVisible()
    assert window.volume_view.volume is None  # nothing opened behind the person's back
    assert [info.kind for info in chooser.entries()] == ["volume", "segmentation"]
    assert "volume: 4 slices of 16x16" in chooser.list.item(0).text()
    assert chooser.list.item(0).icon().isNull() is False  # a thumbnail of the CT
    chooser.choose(0)
    idle(qtbot, window)
    assert window.volume_view.volume.modality == "CT" and window.volume_view.label_map is None


def test_choosing_the_seg_opens_its_ct_underneath_and_draws_the_segments(qtbot, window: MainWindow, study: Path):
    window.open_paths([study])
    idle(qtbot, window)
    window.series_chooser.choose(1)
    idle(qtbot, window)
    volume = window.volume_view.volume
    seg = pydicom.dcmread(SEG)
    assert volume is not None and volume.metadata["series_uid"] == seg.ReferencedSeriesSequence[0].SeriesInstanceUID
    assert segment_voxels(window) > 0
    assert sorted(window.volume_view.label_map.names.values()) == sorted(
        str(item.SegmentLabel) for item in seg.SegmentSequence
    )


def test_a_seg_opened_alone_finds_its_series_in_the_catalog(qtbot, window: MainWindow, ct2_dir: Path):
    window.import_paths([ct2_dir])
    idle(qtbot, window)
    window.open_paths([SEG])
    idle(qtbot, window)
    assert window.volume_view.volume is not None and window.volume_view.volume.modality == "CT"
    assert segment_voxels(window) > 0


def test_a_seg_whose_series_is_nowhere_names_the_series_it_needs(qtbot, window: MainWindow):
    window.open_paths([SEG])
    idle(qtbot, window)
    needed = pydicom.dcmread(SEG).ReferencedSeriesSequence[0].SeriesInstanceUID
    (message,) = [m for m in window.message_bar.messages if "segmentation drawn on series" in m]
    assert str(SEG) in message and needed in message and "open or import that series" in message
    assert window.volume_view.volume is None


def test_an_rt_structure_set_without_its_series_says_which_series_it_needs(qtbot, window: MainWindow):
    path = pydicom_file("rtstruct.dcm")  # written without a preamble; its CT is not shipped
    window.open_paths([path])
    idle(qtbot, window)
    assert any("rt structure set drawn on series 1.2.826.0.1.3680043.8.498" in m for m in window.message_bar.messages)


def test_a_structured_report_is_read_in_the_report_panel(qtbot, window: MainWindow):
    window.open_paths([pydicom_file("test-SR.dcm")])
    idle(qtbot, window)
    assert window.tabs.currentWidget() is window.report_panel and window.report_panel.isVisible()
    lines = [line.strip() for line in window.report_panel.lines()]
    assert lines[0] == "Diagnosis" and "Diameter: 3 cm" in lines
    assert "Comprehensive SR Storage" in window.report_panel.title.text()
    assert not window.message_bar.messages  # a report is not an error


def test_the_segment_list_names_each_segment_in_its_colour_and_hides_one_on_request(
    qtbot, window: MainWindow, study: Path
):
    window.open_paths([study])
    idle(qtbot, window)
    window.series_chooser.choose(1)
    idle(qtbot, window)
    panel = window.volume_view.segment_panel
    label_map = window.volume_view.label_map
    rows = panel.rows()
    assert [label for label, _, _ in rows] == sorted(label_map.names) and all(visible for *_, visible in rows)
    assert all(text.startswith(label_map.names[label]) and "mL" in text for label, text, _ in rows)
    view = window.volume_view
    axial = view.views[next(iter(view.views))]
    first = rows[0][0]
    z = int(np.flatnonzero((label_map.array == first).any(axis=(1, 2)))[0])
    view.set_crosshair(np.array([z, *view.crosshair[1:]]))
    slice_labels = label_map.array[view.index]
    drawn = axial.labels.image
    assert drawn[slice_labels == first][..., 3].min() == 255  # drawn, opaque, in its colour
    panel.list.item(0).setCheckState(panel.list.item(0).checkState().Unchecked)
    drawn = axial.labels.image
    assert drawn[slice_labels == first][..., 3].max() == 0  # hidden
    other = slice_labels == rows[1][0]
    if other.any():
        assert drawn[other][..., 3].min() == 255  # the others still drawn


def test_a_seg_row_of_the_patient_panel_opens_its_ct_with_the_segments(qtbot, window: MainWindow, study: Path):
    window.import_paths([study])
    idle(qtbot, window)
    seg_uid = pydicom.dcmread(SEG, stop_before_pixels=True).SeriesInstanceUID
    (entry,) = [e for e in window.patient_panel.entries() if e.kind == "series" and e.series_uid == seg_uid]
    window.open_entry(entry)
    idle(qtbot, window)
    assert window.volume_view.volume is not None and window.volume_view.volume.modality == "CT"
    assert segment_voxels(window) > 0  # not the SEG's own frames shown as a grey image
    assert not [m for m in window.message_bar.messages if "no DICOM images" in m or "not shown" in m]


def test_every_stack_of_a_split_series_opens_from_the_chooser(qtbot, window: MainWindow):
    """pydicom's DICOMDIR: a CT scout series holds two stacks ("<uid>#1", "<uid>#2"); each opens."""
    window.open_paths([pydicom_file("dicomdirtests/DICOMDIR")])
    idle(qtbot, window)
    entries = window.series_chooser.entries()
    split = [row for row, info in enumerate(entries) if "#" in info.key]
    assert len(split) >= 2
    for row in split[:2]:
        window.open_paths([pydicom_file("dicomdirtests/DICOMDIR")])
        idle(qtbot, window)
        window.series_chooser.choose(row)
        idle(qtbot, window)
        volume = window.volume_view.volume
        assert volume is not None and volume.metadata["stack_key"].split("#")[0] == entries[row].series_uid
        assert not [m for m in window.message_bar.messages if "not in this folder" in m]


def test_each_report_of_a_series_is_its_own_row_and_the_title_follows_the_report(
    qtbot, window: MainWindow, ct2_dir: Path, tmp_path: Path
):
    window.open_paths([ct2_dir])
    idle(qtbot, window)
    folder = tmp_path / "reports"
    folder.mkdir()
    for number, name in enumerate(("test-SR.dcm", "reportsi.dcm")):
        ds = pydicom.dcmread(pydicom_file(name))
        ds.SeriesInstanceUID, ds.SOPInstanceUID = "1.2.3.99", f"1.2.3.99.{number}"
        ds.save_as(folder / f"report{number}.dcm")
    window.open_paths([folder])
    idle(qtbot, window)
    entries = window.series_chooser.entries()
    assert [info.kind for info in entries] == ["structured report", "structured report"]
    window.series_chooser.choose(1)
    idle(qtbot, window)
    titles = {0: "Diagnosis", 1: "Document Title"}
    shown = window.report_panel.lines()[0].strip()
    assert shown in titles.values()
    assert "report" in window.windowTitle() and "CT" not in window.windowTitle()  # not the CT's patient
    assert not [m for m in window.message_bar.messages if "not uniform" in m]  # the CT's warning stays with it
    window.tabs.setCurrentWidget(window.volume_view)
    assert "CT" in window.windowTitle() and [m for m in window.message_bar.messages if "not uniform" in m]


def test_under_the_anonymised_display_segment_titles_and_inner_paths_are_hidden(
    qtbot, window: MainWindow, ct2_dir: Path, tmp_path: Path
):
    folder = tmp_path / "ROE_RICHARD"
    shutil.copytree(ct2_dir, folder / "CT")
    shutil.copy(SEG, folder / "ROE_RICHARD_seg.dcm")
    (folder / "CT" / "ROE_broken.dcm").write_bytes(b"\x08\x00\x16\x00" + b"UI" + b"\x1a\x00" + b"1.2" * 9)
    window.anonymise_action.setChecked(True)
    window.open_paths([folder])
    idle(qtbot, window)
    window.series_chooser.choose([info.kind for info in window.series_chooser.entries()].index("segmentation"))
    idle(qtbot, window)
    assert segment_voxels(window) > 0
    visible = " ".join(window.message_bar.messages) + window.volume_view.segment_panel.title.text()
    visible += window.statusBar().currentMessage() + window.windowTitle()
    assert "ROE" not in visible and "RICHARD" not in visible
    window.anonymise_action.setChecked(False)
    assert "ROE_RICHARD_seg.dcm" in window.volume_view.segment_panel.title.text()


def test_an_overlays_warnings_leave_with_its_volume(qtbot, window: MainWindow, study: Path):
    window.open_paths([study])
    idle(qtbot, window)
    window.series_chooser.choose(1)
    idle(qtbot, window)
    assert [m for m in window.message_bar.messages if "overlap" in m]
    window.open_paths([pydicom_file("MR_small.dcm")])
    idle(qtbot, window)
    assert not [m for m in window.message_bar.messages if "overlap" in m]


def test_patient_panel_rows_say_what_each_series_is(qtbot, window: MainWindow, study: Path):
    shutil.copy(pydicom_file("test-SR.dcm"), study / "report.dcm")
    window.import_paths([study])
    idle(qtbot, window)
    panel = window.patient_panel
    details = {e.series_uid: panel.item_for(e.key).text(1) for e in panel.entries() if e.kind == "series"}
    seg_uid = pydicom.dcmread(SEG, stop_before_pixels=True).SeriesInstanceUID
    sr_uid = pydicom.dcmread(study / "report.dcm", stop_before_pixels=True).SeriesInstanceUID
    assert details[seg_uid] == "segmentation" and details[sr_uid] == "structured report"
    assert "4 image(s)" in details.values()  # the CT
