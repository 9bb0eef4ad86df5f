"""Helpers for the window tests."""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtWidgets import QWidget

W = TypeVar("W", bound=QWidget)


def shown(qtbot: object, widget: W, width: int = 1200, height: int = 800) -> W:
    """``widget`` owned by the test, at a size a reader would use, shown and exposed (so it paints)."""
    qtbot.addWidget(widget)
    widget.resize(width, height)
    widget.show()
    qtbot.waitExposed(widget)
    return widget
