"""Render the README's viewer screenshot: the demo CT in three views, lung window, two measurements.

Run with ``make screenshots`` (after ``make run`` has made ``demo-data/``). Everything shown is made
through the same calls the mouse and keys make, so the picture is what a reader gets.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PySide6.QtCore import QPointF  # noqa: E402

from medviewer.core import mpr  # noqa: E402
from medviewer.core.measurements import Measurement, MeasurementKind  # noqa: E402
from medviewer.ui.app import SCREENSHOT_SIZE, SCREENSHOT_TIMEOUT_MS, application, make_settings, shut_down  # noqa: E402
from medviewer.ui.main_window import MainWindow  # noqa: E402

LUNG_PRESET = 1


def main(demo: Path, out: Path) -> None:
    truth = json.loads((demo / "ground_truth.json").read_text())
    app = application()
    window = MainWindow(make_settings())
    window.resize(*SCREENSHOT_SIZE)
    window.show()
    window.open_paths([demo / "ct"])
    if not window.wait_until_idle(SCREENSHOT_TIMEOUT_MS):
        raise SystemExit("the demo CT did not load in time")
    view = window.volume_view
    volume = view.volume
    lesion = truth["ct"]["lesions"][0]
    centre = volume.world_to_index(lesion["center_lps_mm"])
    view.set_crosshair(np.round(centre))
    view.apply_preset(LUNG_PRESET)
    k, u, v = mpr.index_to_display(volume.shape, volume.spacing, mpr.Plane.AXIAL, np.round(centre))
    radius = lesion["radius_mm"]
    view.add_measurement(
        Measurement(
            MeasurementKind.DISTANCE,
            mpr.Plane.AXIAL,
            int(k),
            [(u - radius, v + radius * 1.6), (u + radius, v + radius * 1.6)],
        )
    )
    view.add_measurement(
        Measurement(
            MeasurementKind.ELLIPSE,
            mpr.Plane.AXIAL,
            int(k),
            [(u - radius * 0.7, v - radius * 0.7), (u + radius * 0.7, v + radius * 0.7)],
        )
    )
    view.views[mpr.Plane.AXIAL].box.scaleBy((0.5, 0.5), center=QPointF(u, v))
    window.ai_panel.schedule_probe()
    window.wait_until_idle(SCREENSHOT_TIMEOUT_MS)
    app.processEvents()
    out.parent.mkdir(parents=True, exist_ok=True)
    window.grab().save(str(out), "PNG")
    print(out)
    shut_down(app, window)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
