"""Volume viewer benchmark: milliseconds to change slice in one 512x512 view and to move the crosshair.

Run with ``python -m tests.benchmarks.volume_view [REPEATS]``. Each step includes window/level, the
colour lookup and a synchronous render of the views involved (``grab``, which paints them as the
screen would); the budget is one 60 Hz frame (16.7 ms). As a reference measured in the same run, it
also times rendering a ready-made 512x512 image scaled into a widget of the same size, and prints
each median as a multiple of it.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtGui import QImage, QPixmap  # noqa: E402
from PySide6.QtWidgets import QApplication, QLabel  # noqa: E402

from medviewer.core import mpr  # noqa: E402
from medviewer.core.volume import Volume  # noqa: E402
from medviewer.demo.ct_phantom import CtGeometry, make_chest_phantom  # noqa: E402
from medviewer.ui.volume_view import VolumeView  # noqa: E402

FRAME_MS = 1000 / 60


def timed(action, repeats: int) -> float:
    """Median milliseconds of ``action`` over ``repeats`` calls, after two warm-up calls."""
    for _ in range(2):
        action(0)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        action(i)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(repeats: int = 60) -> None:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    geometry = CtGeometry(shape=(120, 512, 512), pixel_mm=0.7, slice_mm=2.5)
    array, _ = make_chest_phantom(np.random.default_rng(0), geometry, lesion_count=2)
    volume = Volume(array, spacing=(0.7, 0.7, 2.5), origin=geometry.origin, modality="CT")
    viewer = VolumeView()
    viewer.resize(1400, 900)
    viewer.show()
    viewer.set_volume(volume)
    app.processEvents()
    axial = viewer.views[mpr.Plane.AXIAL]

    def change_slice(i: int) -> None:
        viewer.step(1 if i % 40 < 20 else -1, mpr.Plane.AXIAL)
        axial.viewport().grab()

    def move_crosshair(i: int) -> None:
        viewer.set_crosshair(np.array([30 + i % 60, 150 + (i * 3) % 200, 150 + (i * 5) % 200]))
        for view in viewer.views.values():
            view.viewport().grab()

    image = QImage(512, 512, QImage.Format.Format_RGB32)
    image.fill(0x404040)
    reference = QLabel()
    reference.setScaledContents(True)
    reference.setPixmap(QPixmap.fromImage(image))
    reference.resize(axial.viewport().size())
    reference.show()

    def paint_reference(_i: int) -> None:
        reference.grab()

    slice_ms = timed(change_slice, repeats)
    crosshair_ms = timed(move_crosshair, repeats)
    reference_ms = timed(paint_reference, repeats)
    print(f"axial view {axial.viewport().width()}x{axial.viewport().height()} px, volume 512x512x120 int16")
    print(f"change slice (one view):     median {slice_ms:6.2f} ms  ({slice_ms / FRAME_MS:.2f} frames at 60 Hz)")
    print(f"move crosshair (three views): median {crosshair_ms:6.2f} ms  ({crosshair_ms / FRAME_MS:.2f} frames)")
    print(f"reference QImage paint:       median {reference_ms:6.2f} ms")
    print(f"ratios to reference: slice {slice_ms / reference_ms:.1f}x, crosshair {crosshair_ms / reference_ms:.1f}x")
    viewer.close()
    reference.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
