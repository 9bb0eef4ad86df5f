"""Driving the real widgets as a user does, and reading back what they drew."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np
from PySide6.QtCore import QPoint, QPointF
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:
    from medviewer.core import mpr
    from medviewer.ui.volume_view import VolumeView

W = TypeVar("W", bound=QWidget)


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


def viewport_point(viewer: VolumeView, plane: mpr.Plane, u: float, v: float) -> QPoint:
    view = viewer.views[plane]
    return view.mapFromScene(view.box.mapViewToScene(QPointF(u, v)))


def grab(widget) -> np.ndarray:
    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    width, height = image.width(), image.height()
    return (
        np.array(image.constBits(), dtype=np.uint8)
        .reshape(height, image.bytesPerLine())[:, : width * 3]
        .reshape(height, width, 3)
    )
