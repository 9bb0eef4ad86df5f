"""Helpers for the window tests."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import TypeVar

import pytest
from PySide6.QtWidgets import QWidget

W = TypeVar("W", bound=QWidget)


@pytest.fixture(autouse=True)
def collect_on_the_gui_thread() -> Iterator[None]:
    """Collect each test's closed windows here, on the GUI thread.

    Window objects sit in reference cycles (pyqtgraph items, signal lambdas). Left to the cyclic collector,
    they can be freed on a loader thread, where a QObject's destructor waits for a lock the GUI thread holds
    while the GUI thread waits for the GIL: the suite hung that way once in CI."""
    yield
    gc.collect()


def shown(qtbot: object, widget: W, width: int = 1200, height: int = 800) -> W:
    """``widget`` owned by the test, at a size a reader would use, shown and exposed (so it paints)."""
    qtbot.addWidget(widget)
    widget.resize(width, height)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def open_and_choose(qtbot: object, window: object, path: object, row: int = 0, timeout: int = 60_000) -> None:
    """Open ``path`` in the window as a user does; when the series chooser asks, open its row ``row``."""
    window.series_chooser = None
    window.open_paths([path])
    qtbot.waitUntil(lambda: not window.busy(), timeout=timeout)
    chooser = window.series_chooser
    if chooser is not None and chooser.isVisible():
        chooser.choose(row)
        qtbot.waitUntil(lambda: not window.busy(), timeout=timeout)
