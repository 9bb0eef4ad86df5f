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
