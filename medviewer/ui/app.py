"""Starting the window: Qt application, settings file, first paint, then background warm-up.

The window is shown before anything heavy is imported; the AI runtime probe (which imports torch)
starts from the event loop once the window is up. Screenshot mode waits for every pending load and
the probe, then saves the whole window as a PNG.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from pyqtgraph.util.garbage_collector import GarbageCollector
from PySide6.QtCore import QCoreApplication, QEvent, QSettings
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from medviewer import __version__
from medviewer.core.app_dirs import RESOURCES_DIR, config_dir
from medviewer.ui.main_window import MainWindow

log = logging.getLogger(__name__)
SCREENSHOT_SIZE = (1600, 1000)
SCREENSHOT_TIMEOUT_MS = 180_000


def has_display() -> bool:
    if sys.platform != "linux" or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def make_settings() -> QSettings:
    return QSettings(str(config_dir() / "medviewer.ini"), QSettings.Format.IniFormat)


GC_INTERVAL_S = 1.0
_collector: GarbageCollector | None = None


def application() -> QApplication:
    """The QApplication, with Python's cyclic garbage collection moved onto the GUI thread.

    Viewers leave QObjects in reference cycles (pyqtgraph items, signal lambdas). The collector runs on
    whichever thread happens to allocate, so it could free them on a tile or loader thread, where a
    QObject's destructor waits for a lock the GUI thread holds while the GUI thread waits for the GIL.
    pyqtgraph's GarbageCollector turns automatic collection off and collects on a GUI-thread timer."""
    global _collector
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication), "a QCoreApplication already runs; widgets need a QApplication"
    if _collector is None:
        _collector = GarbageCollector(interval=GC_INTERVAL_S)
    app.setApplicationName("medviewer")
    app.setApplicationVersion(__version__)
    app.setOrganizationName("medviewer")
    app.setWindowIcon(QIcon(str(RESOURCES_DIR / "icons" / "medviewer.png")))
    return app


def shut_down(app: QApplication, window: MainWindow) -> None:
    """Destroy the window and Qt before the interpreter does.

    Left to interpreter finalisation, PySide6 and pyqtgraph objects are destroyed in arbitrary order
    and the process can die with a segmentation fault after its work is done.
    """
    window.close()
    window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    app.shutdown()


def run_app(paths: list[Path], screenshot: Path | None = None, process_start: float | None = None) -> int:
    if screenshot is not None and not os.environ.get("QT_QPA_PLATFORM") and not has_display():
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    if not has_display():
        print(
            "medviewer: no display is available; use --screenshot FILE to render the window to a PNG.", file=sys.stderr
        )
        return 2
    app = application()
    window = MainWindow(make_settings())
    if screenshot is not None:
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    shown = time.time()
    log.info("startup: window shown at %.3f (%.2f s after start)", shown, shown - (process_start or shown))
    window.ai_panel.runtime_ready.connect(
        lambda at: log.info("startup: torch imported at %.3f (%.2f s after start)", at, at - (process_start or at))
    )
    window.ai_panel.schedule_probe()
    window.open_paths(paths, activate_first_only=True)
    if screenshot is None:
        code = app.exec()
        shut_down(app, window)
        return code
    finished = window.wait_until_idle(SCREENSHOT_TIMEOUT_MS)
    app.processEvents()
    if not finished:
        window.message_bar.add("Loading did not finish within the screenshot time limit.")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(screenshot), "PNG")
    print(screenshot)
    shut_down(app, window)
    return 0
