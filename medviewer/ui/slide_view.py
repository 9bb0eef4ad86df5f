"""The slide browser: the slide's overview placed in level-0 pixel coordinates.

Placing the overview in level-0 coordinates from the start means tiles, annotations and heatmaps
drawn later line up with it without conversion.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from medviewer.io.slide import Slide


class SlideView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.slide: Slide | None = None
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("w")
        self.view = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.image = pg.ImageItem()
        self.view.addItem(self.image)
        self.caption = QLabel("Open a whole-slide image (File ▸ Open, or drop it here).")
        self.caption.setObjectName("slideCaption")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.caption)
        layout.addWidget(self.graphics, 1)

    def set_slide(self, slide: Slide, overview: np.ndarray) -> None:
        self.slide = slide
        width, height = slide.dimensions
        self.image.setImage(overview, autoLevels=False, levels=(0, 255))
        self.image.setRect(QRectF(0, 0, width, height))
        self.view.autoRange(padding=0.02)
        mpp = f"{slide.mpp:.3g} µm/px" if slide.mpp else "no MPP in file"
        self.caption.setText(
            f"{slide.path.name}  ·  {width} × {height} px  ·  {slide.level_count} levels  ·  {mpp}  ·  {slide.vendor}"
        )
