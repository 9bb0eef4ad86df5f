"""Window tests: each test's closed windows collected on the GUI thread."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def collect_on_the_gui_thread() -> Iterator[None]:
    """Collect each test's closed windows here, on the GUI thread.

    Window objects sit in reference cycles (pyqtgraph items, signal lambdas). Left to the cyclic collector,
    they can be freed on a loader thread, where a QObject's destructor waits for a lock the GUI thread holds
    while the GUI thread waits for the GIL: the suite hung that way once in CI."""
    yield
    gc.collect()
