"""The real window on a real X server: a plain Xvfb with a window manager (openbox), as the README says.

Every other GUI test runs Qt offscreen, which needs none of the X libraries a desktop install needs; this
one loads Qt's xcb platform, so a missing library (libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, ...)
fails here as it would on a workstation. It needs Debian's xvfb and openbox, which ``.ci/run`` installs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.paths import REPO

NEEDED = ("Xvfb", "openbox")
pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in NEEDED) and not os.environ.get("MEDVIEWER_REQUIRE_TOOLS"),
    reason="Xvfb and openbox are not installed; .ci/run installs them and requires them",
)

#: Shows the window on the X display, waits until it is mapped and painted, then grabs the X server's
#: whole screen (what a person would see, window manager included), not the widget's own rendering.
CHILD = """
import sys
from pathlib import Path
from PySide6.QtCore import QTimer
from medviewer.ui.app import application, make_settings
from medviewer.ui.main_window import MainWindow
app = application()
assert app.platformName() == "xcb", app.platformName()
window = MainWindow(make_settings())
window.resize(1280, 800)
window.show()
window.open_paths([Path(sys.argv[2])])
assert window.wait_until_idle(60_000)
for _ in range(20):
    app.processEvents()
screen = app.primaryScreen().grabWindow(0)
screen.save(sys.argv[1], "PNG")
print(window.windowHandle().isExposed(), window.volume_view.volume is not None)
window.close()
"""


def _free_display() -> int:
    for number in range(90, 140):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise RuntimeError("no free X display number")


@pytest.mark.slow
def test_the_window_opens_under_xvfb_with_a_window_manager(tmp_path: Path, demo_dir: Path):
    display = f":{_free_display()}"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
    env = {key: value for key, value in os.environ.items() if key != "QT_QPA_PLATFORM"}
    env.update(DISPLAY=display, MEDVIEWER_HOME=str(tmp_path / "home"))
    try:
        for _ in range(100):
            if Path(f"/tmp/.X11-unix/X{display[1:]}").exists():
                break
            time.sleep(0.05)
        manager = subprocess.Popen(["openbox"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            shot = tmp_path / "screen.png"
            child = subprocess.run(
                [sys.executable, "-c", CHILD, str(shot), str(demo_dir / "ct")],
                env=env,
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=180,
            )
        finally:
            manager.terminate()
            manager.wait(timeout=10)
    finally:
        xvfb.terminate()
        xvfb.wait(timeout=10)
    assert child.returncode == 0, child.stderr[-3000:]
    assert child.stdout.split() == ["True", "True"]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    assert pixels.shape == (800, 1280, 3)
    # the CT's bright bone and dark air on the X server's own screen, and the window's grey chrome
    assert (pixels.max(axis=2) > 200).mean() > 0.01 and (pixels.max(axis=2) < 20).mean() > 0.05
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
