"""The window around the images: the problem strip follows the image shown, file names stay hidden under
the anonymised display, closed panels come back from the View menu, and Help lists the shortcuts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDockWidget

from medviewer.ui.app import make_settings
from medviewer.ui.main_window import MainWindow
from medviewer.ui.shortcuts import SHORTCUTS
from tests.support.paths import pydicom_file
from tests.support.windows import shown

LOAD_TIMEOUT_MS = 60_000


@pytest.fixture
def window(qtbot) -> MainWindow:
    return shown(qtbot, MainWindow(make_settings()), 1600, 1000)


def open_one(qtbot, window: MainWindow, path: Path) -> None:
    window.open_paths([path])
    qtbot.waitUntil(lambda: not window.busy(), timeout=LOAD_TIMEOUT_MS)


def test_an_images_warnings_show_with_that_image_only_and_once(qtbot, window: MainWindow, ct2_dir: Path):
    """pydicom's CT2 series has uneven slice steps: its warning belongs to it, not to the next image."""
    open_one(qtbot, window, ct2_dir)
    uneven = [m for m in window.message_bar.messages if "not uniform" in m]
    assert len(uneven) == 1 and window.message_bar.isVisible()
    open_one(qtbot, window, pydicom_file("MR_small.dcm"))
    assert not [m for m in window.message_bar.messages if "not uniform" in m]
    assert not window.message_bar.isVisible()
    open_one(qtbot, window, ct2_dir)  # shown again: its warning is back, once
    assert [m for m in window.message_bar.messages if "not uniform" in m] == uneven


def test_under_the_anonymised_display_no_message_or_recent_entry_names_the_file(
    qtbot, window: MainWindow, tmp_path: Path
):
    folder = tmp_path / "SMITH_JOHN_19610304"
    folder.mkdir()
    broken = folder / "SMITH_JOHN_CHEST.dcm"
    broken.write_bytes(b"DICM" * 10)
    good = folder / "SMITH_JOHN_HEAD.dcm"
    shutil.copy(pydicom_file("MR_small.dcm"), good)
    open_one(qtbot, window, good)
    open_one(qtbot, window, broken)
    assert any("SMITH_JOHN" in m for m in window.message_bar.messages)
    window.anonymise_action.setChecked(True)
    shown_text = " ".join(window.message_bar.messages) + window.message_bar.label.text()
    assert "SMITH" not in shown_text and "JOHN" not in shown_text
    assert "not a DICOM file" in shown_text or "cannot be read" in shown_text  # the message still says why
    recent = [action.text() for action in window.recent_menu.actions()]
    assert recent and not any("SMITH" in text for text in recent)
    assert "SMITH" not in window.statusBar().currentMessage() and "SMITH" not in window.windowTitle()
    window.anonymise_action.setChecked(False)
    assert any("SMITH_JOHN" in action.text() for action in window.recent_menu.actions())


def test_a_closed_panel_comes_back_from_the_view_menu(qtbot, window: MainWindow):
    view_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    for dock in window.findChildren(QDockWidget):
        dock.close()
        assert not dock.isVisible()
        toggle = next(a for a in view_menu.actions() if a.text() == dock.windowTitle())
        toggle.trigger()
        qtbot.waitUntil(dock.isVisible)


def test_help_lists_the_keyboard_shortcuts(qtbot, window: MainWindow):
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    (action,) = [a for a in help_menu.actions() if "shortcuts" in a.text().lower()]
    assert action.shortcut().toString() == "F1"
    action.trigger()
    dialog = window.shortcuts_dialog
    qtbot.waitUntil(dialog.isVisible)
    rows = {(dialog.table.item(r, 1).text(), dialog.table.item(r, 2).text()) for r in range(dialog.table.rowCount())}
    assert rows == {(keys, what) for _, keys, what in SHORTCUTS}
    assert ("Ctrl+Z", "Undo the last annotation change") in rows
    dialog.reject()
