"""Damaged files and failing decoders in the real window: every open ends in a message naming the file and the
cause (never a status stuck on "Opening..."), and a decoder that panics while slide tiles are read leaves the
tile striped and the slide browsable, as any damaged tile does."""

from __future__ import annotations

import shutil
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QTimer

import medviewer.actions.opening
import medviewer.io.nifti
from medviewer import cli
from medviewer.ui.app import make_settings
from medviewer.ui.main_window import MainWindow
from tests.support.paths import nibabel_file, real_file
from tests.support.windows import shown

TIMEOUT_MS = 60_000


class PanicException(BaseException):
    """What pyo3 raises when a Rust decoder panics (pylibjpeg-rle on damaged RLE): named so, and outside
    ``Exception``, so every ``except Exception`` lets it through."""


def _panic(*_args: object, **_kwargs: object) -> None:
    raise PanicException("index out of bounds: the len is 8192 but the index is 8193")


@pytest.fixture
def window(qtbot) -> MainWindow:
    return shown(qtbot, MainWindow(make_settings()), 1200, 800)


def _open_and_wait(qtbot, window: MainWindow, path: Path) -> None:
    window.open_paths([path])
    qtbot.waitUntil(lambda: not window.busy(), timeout=TIMEOUT_MS)


def _assert_refused(window: MainWindow, path: Path, *words: str) -> None:
    """One message names the file and says why; nothing was shown and nothing is still opening."""
    said = [m for m in window.message_bar.messages if str(path) in m and all(w in m for w in words)]
    assert said, window.message_bar.messages
    assert window.statusBar().currentMessage() == f"Could not open {path.name}"
    assert window.volume_view.volume is None and window.slide_view.slide is None


def test_a_nifti_of_no_slices_is_refused_with_its_reason(qtbot, window: MainWindow, tmp_path: Path):
    """dim[3] = 0 in nibabel's anatomical.nii reached the viewer as a 33 x 41 x 0 volume and a TypeError."""
    raw = bytearray(nibabel_file("anatomical.nii").read_bytes())
    struct.pack_into(">h", raw, 46, 0)  # dim[3], big-endian as the file
    path = tmp_path / "no-slices.nii"
    path.write_bytes(bytes(raw))
    _open_and_wait(qtbot, window, path)
    _assert_refused(window, path, "the NIfTI header declares a 33 x 41 x 0 array")


def test_a_decoder_panic_under_a_reader_is_reported_as_a_damaged_file(
    qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch
):
    """The panic comes from where a decoder runs (reading the voxels of a real file): the open door turns it
    into the file's CorruptFileError."""
    monkeypatch.setattr(medviewer.io.nifti, "_read_voxels", _panic)
    path = nibabel_file("anatomical.nii")
    _open_and_wait(qtbot, window, path)
    _assert_refused(window, path, "is damaged: its decoder failed (PanicException)")


def test_a_panic_past_the_readers_still_ends_the_open(qtbot, window: MainWindow, monkeypatch: pytest.MonkeyPatch):
    """The job runner's own last line: whatever escapes the readers, the window gets a failure, not silence."""
    monkeypatch.setattr(medviewer.actions.opening, "open_for_viewing", _panic)
    path = nibabel_file("anatomical.nii")
    _open_and_wait(qtbot, window, path)
    _assert_refused(window, path, "damaged", "PanicException")


def test_a_decoder_panic_while_tiles_are_read_draws_them_striped_and_browsing_goes_on(
    qtbot, window: MainWindow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "CMU-1-Small-Region.svs"
    shutil.copy(real_file("wsi/CMU-1-Small-Region.svs"), path)
    _open_and_wait(qtbot, window, path)
    view = window.slide_view
    assert view.slide is not None and view.slide.path == path
    view.set_magnification(40)
    view.centre_on(1500, 2500)
    qtbot.waitUntil(lambda: not window.busy() and view.is_refined(), timeout=TIMEOUT_MS)
    monkeypatch.setattr(view.slide, "read_region", _panic)
    view.loader.cache.clear()
    view.centre_on(300, 300)
    qtbot.waitUntil(lambda: not window.busy() and view.is_refined(), timeout=TIMEOUT_MS)
    striped = view.tile_items[(0, 0, 0)].image
    assert tuple(striped[0, 0]) == (220, 0, 0, 255) and (striped[..., 1] == 255).any()
    said = [m for m in window.message_bar.messages if str(path) in m and "PanicException" in m]
    assert len(said) == 1 and "striped" in said[0]
    monkeypatch.undo()  # the decoder recovers: once the view comes back, the place is drawn from the file
    view.centre_on(1500, 2500)
    qtbot.waitUntil(lambda: not window.busy() and view.is_refined(), timeout=TIMEOUT_MS)
    view.centre_on(300, 300)
    qtbot.waitUntil(lambda: not window.busy() and view.is_refined(), timeout=TIMEOUT_MS)
    location, size = view.pyramid.tile_region((0, 0, 0))
    np.testing.assert_array_equal(view.tile_items[(0, 0, 0)].image, view.slide.read_region(location, 0, size))


def test_what_escapes_a_thread_or_a_qt_slot_is_one_line_on_the_terminal(
    qapp, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, medviewer_home: Path
):
    """Past every reader's boundary, a panic in a worker thread or in a slot of the running application is
    logged with where it was raised and told in one line, as the entry point tells its own."""

    def command(_argv: object) -> int:
        QTimer.singleShot(0, _panic)
        worker = threading.Thread(target=_panic)
        worker.start()
        worker.join()
        QTimer.singleShot(100, qapp.quit)
        qapp.exec()
        return 0

    monkeypatch.setitem(cli.SUBCOMMANDS, "info", command)
    hooks = sys.excepthook, threading.excepthook
    assert cli.main(["info"]) == 0
    err = capfd.readouterr().err
    log_file = medviewer_home / "logs" / "medviewer.log"
    line = f"medviewer: an unexpected error occurred (PanicException); details are in {log_file}"
    assert err.splitlines() == [line, line] and "Traceback" not in err
    assert (sys.excepthook, threading.excepthook) == hooks  # the program's hooks only while it runs
    logged = log_file.read_text()
    assert logged.count("unexpected error: PanicException at") == 2 and "in _panic" in logged
