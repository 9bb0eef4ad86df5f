"""The volume viewer: one slice at a time, in millimetres, with window/level on a histogram.

The image item is placed in patient millimetres (its rectangle is columns x spacing by rows x
spacing), so anisotropic pixels show with their true aspect and later overlays and measurements
share one coordinate system. The wheel moves through slices as in radiology workstations;
Ctrl+wheel zooms around the cursor.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QLabel, QSlider, QVBoxLayout, QWidget

from medviewer.core.volume import Volume

GREY = {"mode": "rgb", "ticks": [(0.0, (0, 0, 0, 255)), (1.0, (255, 255, 255, 255))]}
INVERTED_GREY = {"mode": "rgb", "ticks": [(0.0, (255, 255, 255, 255)), (1.0, (0, 0, 0, 255))]}


class _SliceViewBox(pg.ViewBox):
    """Wheel steps slices; Ctrl+wheel zooms (pyqtgraph's default) around the cursor."""

    def __init__(self, step_slice: object) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._step_slice = step_slice

    def wheelEvent(self, ev: object, axis: object = None) -> None:  # noqa: N802 (Qt naming)
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        self._step_slice(-1 if ev.delta() > 0 else 1)
        ev.accept()


class VolumeView(QWidget):
    slice_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.volume: Volume | None = None
        self.index = 0
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("k")
        self.view = _SliceViewBox(self.step)
        self.graphics.addItem(self.view, row=0, col=0)
        self.image = pg.ImageItem()
        self.view.addItem(self.image)
        self.histogram = pg.HistogramLUTItem()
        self.histogram.setImageItem(self.image)
        self.histogram.gradient.restoreState(GREY)
        self.histogram.sigLevelsChanged.connect(self._update_caption)
        self.graphics.addItem(self.histogram, row=0, col=1)
        self.caption = QLabel("Open a DICOM series or NIfTI file (File ▸ Open, or drop it here).")
        self.caption.setObjectName("volumeCaption")
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setEnabled(False)
        self.slider.valueChanged.connect(self.show_slice)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.slider)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def set_volume(self, volume: Volume) -> None:
        self.volume = volume
        width, centre = volume.display_window()
        self.histogram.gradient.restoreState(INVERTED_GREY if volume.invert_display else GREY)
        self.slider.blockSignals(True)
        self.slider.setRange(0, volume.shape[0] - 1)
        self.slider.setEnabled(True)
        self.slider.blockSignals(False)
        self.show_slice(volume.shape[0] // 2)
        self.image.setLevels((centre - width / 2, centre + width / 2))
        self.histogram.setLevels(centre - width / 2, centre + width / 2)
        self.reset_view()

    def reset_view(self) -> None:
        self.view.autoRange(padding=0.02)

    def step(self, delta: int) -> None:
        if self.volume is not None:
            self.show_slice(int(np.clip(self.index + delta, 0, self.volume.shape[0] - 1)))

    def show_slice(self, index: int) -> None:
        volume = self.volume
        if volume is None:
            return
        self.index = index
        pixels = volume.array[index]
        levels = self.image.levels if self.image.image is not None else None
        self.image.setImage(
            pixels, autoLevels=False, levels=levels if levels is not None else (pixels.min(), pixels.max())
        )
        sx, sy = volume.spacing[0], volume.spacing[1]
        self.image.setRect(QRectF(0, 0, pixels.shape[1] * sx, pixels.shape[0] * sy))
        if self.slider.value() != index:
            self.slider.blockSignals(True)
            self.slider.setValue(index)
            self.slider.blockSignals(False)
        self._update_caption()
        self.slice_changed.emit(index)

    def window(self) -> tuple[float, float]:
        """(width, centre) now shown."""
        low, high = self.histogram.getLevels()
        return float(high - low), float((high + low) / 2)

    def _update_caption(self) -> None:
        volume = self.volume
        if volume is None:
            return
        width, centre = self.window()
        position = volume.index_to_world((self.index, 0, 0))
        normal = volume.direction[:, 2]
        self.caption.setText(
            f"{volume.modality or 'Volume'} {volume.description}  ·  slice {self.index + 1}/{volume.shape[0]}"
            f"  ·  {float(position @ normal):.1f} mm  ·  W {width:.0f} L {centre:.0f}"
            f"  ·  {volume.spacing[0]:.2f} × {volume.spacing[1]:.2f} × {volume.spacing[2]:.2f} mm"
        )

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        steps = {Qt.Key.Key_PageUp: -1, Qt.Key.Key_PageDown: 1, Qt.Key.Key_Up: -1, Qt.Key.Key_Down: 1}
        if event.key() in steps:
            self.step(steps[event.key()])
        elif event.key() == Qt.Key.Key_R:
            self.reset_view()
        else:
            super().keyPressEvent(event)
