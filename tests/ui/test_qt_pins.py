"""Guards the PySide6 pin: 6.12.0 with pyqtgraph 0.14 kills the interpreter ("none_dealloc") when an
ImageView with its histogram is painted. The paint runs in a child process so a crash fails this test
instead of taking the whole run down."""

from __future__ import annotations

import subprocess
import sys

PAINT_IMAGE_VIEW = """
import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QApplication
app = QApplication([])
view = pg.ImageView()
view.resize(400, 300)
view.setImage(np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32))
view.show()
for _ in range(5):
    app.processEvents()
image = view.grab().toImage()
histogram = view.getHistogramWidget().grab().toImage()
print(image.width(), image.height(), histogram.isNull())
view.close()
del view
app.processEvents()
"""


def test_image_view_with_histogram_paints_without_crashing():
    result = subprocess.run([sys.executable, "-c", PAINT_IMAGE_VIEW], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"painting an ImageView crashed: {result.stderr[-2000:]}"
    assert result.stdout.split() == ["400", "300", "False"]
