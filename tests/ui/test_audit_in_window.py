"""A damaged audit trail does not stop the window: the image opens and the window says the event was not
recorded, naming the trail's file."""

from __future__ import annotations

import os
from pathlib import Path

from medviewer.catalog import audit
from medviewer.ui.app import make_settings
from medviewer.ui.main_window import MainWindow
from tests.support.paths import pydicom_file
from tests.support.windows import shown


def test_an_open_with_a_damaged_trail_shows_the_image_and_says_it_was_not_recorded(qtbot, tmp_path: Path):
    audit.record("open", audit.path_subject(tmp_path), {})
    audit._connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for side in ("-wal", "-shm"):
        Path(f"{audit.audit_path()}{side}").unlink(missing_ok=True)
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"not a database " * 1000)
    os.replace(garbage, audit.audit_path())  # the trail's file overwritten by something else
    window = shown(qtbot, MainWindow(make_settings()), 1200, 800)
    window.open_paths([pydicom_file("CT_small.dcm")])
    qtbot.waitUntil(lambda: not window.busy(), timeout=60_000)
    assert window.volume_view.volume is not None
    assert [m for m in window.message_bar.messages if "Not recorded in the audit trail" in m and "audit.sqlite" in m]
