"""Measurements stay with their series in the window: across series, across windows, from the patient panel;
a grid that changed is refused in the message strip; and File ▸ Export measurements as DICOM SR writes them."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom.data
import pytest
from pydicom.sr.codedict import codes

from medviewer.annotations.measurement_store import series_identity, sidecar_path
from medviewer.catalog import audit
from medviewer.catalog.browse import series_key
from medviewer.core.measurements import Measurement, MeasurementKind, distance_mm
from medviewer.core.mpr import Plane
from medviewer.ui.app import make_settings
from medviewer.ui.main_window import MainWindow
from medviewer.ui.measurement_panel import KEPT_NOTE, NOT_KEPT_NOTE
from tests.support.windows import open_and_choose, shown

LOAD_TIMEOUT_MS = 60_000
CT2 = Path(pydicom.data.get_testdata_file("dicomdirtests/77654033/CT2/17106")).parent
MR2 = Path(pydicom.data.get_testdata_file("dicomdirtests/98892003/MR2/4950")).parent
DISTANCE = Measurement(MeasurementKind.DISTANCE, Plane.AXIAL, 0, [(1.2, 1.1), (6.3, 5.4)])


def new_window(qtbot) -> MainWindow:
    return shown(qtbot, MainWindow(make_settings()), 1400, 900)


def open_and_wait(qtbot, window: MainWindow, path: Path) -> None:
    """Open a folder; MR2 holds seven stacks (localizers), so the chooser asks and its first row is opened."""
    open_and_choose(qtbot, window, path, timeout=LOAD_TIMEOUT_MS)


def lengths(window: MainWindow) -> list[float]:
    view = window.volume_view
    return [distance_mm(view.volume, m) for m in view.measurements if m.kind is MeasurementKind.DISTANCE]


def test_a_measurement_comes_back_with_its_series_in_this_window_and_the_next(qtbot, medviewer_home: Path):
    window = new_window(qtbot)
    open_and_wait(qtbot, window, CT2)
    view = window.volume_view
    assert view.measurements == [] and view.measurement_panel.note.text() == KEPT_NOTE
    view.add_measurement(DISTANCE)
    expected = distance_mm(view.volume, DISTANCE)
    assert window.wait_until_idle(LOAD_TIMEOUT_MS)  # saved at once, by the job runner's write lane
    kept = list((medviewer_home / "data" / "measurements").glob("*.measurements.json"))
    assert len(kept) == 1 and "1.3.6.1.4.1.5962" not in kept[0].name  # under a digest

    open_and_wait(qtbot, window, MR2)
    assert view.volume.modality == "MR"
    assert view.measurements == [] and view.measurement_panel.texts() == []

    open_and_wait(qtbot, window, CT2)
    assert view.measurements == [DISTANCE] and lengths(window) == [pytest.approx(expected, rel=1e-12)]
    assert view.measurement_panel.texts() == [f"Distance (axial 1): {expected:.1f} mm"]
    assert not [m for m in window.message_bar.messages if "measurement" in m]
    window.close()

    second = new_window(qtbot)
    open_and_wait(qtbot, second, CT2)
    assert second.volume_view.measurements == [DISTANCE]
    assert lengths(second) == [pytest.approx(expected, rel=1e-12)]
    # deleting is a change like any other, and is kept
    second.volume_view.delete_measurement(0)
    open_and_wait(qtbot, second, MR2)
    open_and_wait(qtbot, second, CT2)
    assert second.volume_view.measurements == []
    second.close()


def test_a_series_opened_from_the_patient_panel_gets_its_measurements_back(qtbot):
    window = new_window(qtbot)
    open_and_wait(qtbot, window, CT2)  # also catalogued, quietly
    window.volume_view.add_measurement(DISTANCE)
    window.close()

    second = new_window(qtbot)
    qtbot.waitUntil(lambda: not second.busy(), timeout=LOAD_TIMEOUT_MS)
    uid = pydicom.dcmread(CT2 / "17106", stop_before_pixels=True).SeriesInstanceUID
    entry = next(e for e in second.patient_panel.entries() if e.kind == "series" and e.series_uid == uid)
    second.open_entry(entry)
    qtbot.waitUntil(lambda: not second.busy(), timeout=LOAD_TIMEOUT_MS)
    assert second.volume_view.volume.metadata["series_uid"] == uid
    assert second.volume_view.measurements == [DISTANCE]


def test_measurements_made_on_another_grid_are_refused_in_the_message_strip(qtbot):
    window = new_window(qtbot)
    open_and_wait(qtbot, window, CT2)
    window.volume_view.add_measurement(DISTANCE)
    assert window.wait_until_idle(LOAD_TIMEOUT_MS)
    path = window.shown_volume.sidecar.path
    stored = json.loads(path.read_text())
    stored["grid"]["origin"][2] += 5.0  # as if made when the series was read with another first slice
    path.write_text(json.dumps(stored))

    open_and_wait(qtbot, window, MR2)
    open_and_wait(qtbot, window, CT2)
    assert window.volume_view.measurements == []
    (warning,) = [m for m in window.message_bar.messages if "another grid" in m]
    assert warning.startswith(f"{path}: 1 measurement(s) saved for this series were made on another grid")
    assert window.message_bar.isVisible()
    assert len(list(path.parent.glob(path.name + ".other-grid-*"))) == 1


def test_a_nifti_file_keeps_its_measurements_by_its_path_and_cannot_leave_as_sr(qtbot, tmp_path: Path):
    path = tmp_path / "brain.nii.gz"
    nib.save(
        nib.Nifti1Image(np.arange(6 * 7 * 8, dtype=np.int16).reshape(8, 7, 6), np.diag([2.0, 2.0, 3.0, 1.0])), path
    )
    window = new_window(qtbot)
    open_and_wait(qtbot, window, path)
    view = window.volume_view
    view.add_measurement(Measurement(MeasurementKind.ELLIPSE, Plane.AXIAL, 2, [(1.0, 1.0), (9.0, 11.0)]))
    assert window.shown_volume.sidecar.path == sidecar_path(series_identity(view.volume, path))
    window._ask_export_measurements()  # refused before any file dialog
    refusal = window.message_bar.messages[-1]
    assert refusal.startswith(f"{path}: measurements can be exported as a DICOM SR only from a DICOM series")
    open_and_wait(qtbot, window, MR2)
    open_and_wait(qtbot, window, path)
    assert [m.kind for m in view.measurements] == [MeasurementKind.ELLIPSE]


def test_export_measurements_as_dicom_sr_writes_the_shown_measurements(qtbot, tmp_path: Path):
    window = new_window(qtbot)
    actions = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "Export &measurements as DICOM SR…" in actions
    open_and_wait(qtbot, window, CT2)
    view = window.volume_view
    view.add_measurement(DISTANCE)
    view.add_measurement(Measurement(MeasurementKind.RECTANGLE, Plane.AXIAL, 0, [(0.5, 0.5), (6.0, 7.0)]))
    output = tmp_path / "measurements.dcm"
    window.export_measurements(output)
    qtbot.waitUntil(lambda: not window.busy(), timeout=LOAD_TIMEOUT_MS)
    assert window.statusBar().currentMessage() == "Saved 2 measurement(s) to measurements.dcm"
    groups = hd.sr.srread(output).content.get_planar_roi_measurement_groups()
    (length,) = groups[0].get_measurements(name=codes.SCT.Length)
    assert length.value == pytest.approx(distance_mm(view.volume, DISTANCE), rel=1e-9)
    (exported,) = audit.events(event="export")
    assert exported.subject == series_key(view.volume.metadata["series_uid"])
    assert exported.details == {"what": "measurements DICOM SR"}
    saves = audit.events(event="annotation_save")
    assert [e.details for e in saves[:2]] == [{"measurements": 2}, {"measurements": 1}]


def test_measurements_that_cannot_be_kept_say_so(qtbot):
    window = new_window(qtbot)
    open_and_wait(qtbot, window, CT2)
    window.volume_view.add_measurement(DISTANCE)
    assert window.wait_until_idle(LOAD_TIMEOUT_MS)
    path = window.shown_volume.sidecar.path
    path.write_text(json.dumps({"format": "medviewer-measurements", "version": 99}))
    open_and_wait(qtbot, window, MR2)
    open_and_wait(qtbot, window, CT2)
    assert window.shown_volume.sidecar is None
    assert window.volume_view.measurement_panel.note.text() == NOT_KEPT_NOTE
    assert any(
        m.startswith(f"{path}: the measurements were saved by a newer medviewer") for m in window.message_bar.messages
    )
    window.volume_view.add_measurement(DISTANCE)  # drawn, but the newer file is not written over
    assert window.wait_until_idle(LOAD_TIMEOUT_MS)
    assert json.loads(path.read_text())["version"] == 99
