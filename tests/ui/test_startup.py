"""The window appears before torch is imported; screenshot mode renders the real window."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.support.child_process import run_medviewer
from tests.support.startup_times import measure_once

WINDOW_WITHOUT_TORCH = """
import sys
from medviewer.ui.app import application, make_settings, shut_down
from medviewer.ui.main_window import MainWindow
app = application()
window = MainWindow(make_settings())
window.show()
app.processEvents()
print(window.isVisible(), 'torch' in sys.modules, 'monai' in sys.modules)
shut_down(app, window)
"""


def test_window_is_shown_without_importing_torch(medviewer_home: Path):
    result = subprocess.run([sys.executable, "-c", WINDOW_WITHOUT_TORCH], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False"]


@pytest.mark.slow
def test_torch_is_imported_in_the_background_after_the_window_is_shown():
    times = measure_once()
    assert 0 < times["window_shown_s"] < times["torch_imported_s"]


@pytest.mark.slow
def test_screenshot_shows_demo_ct_and_slide(demo_dir: Path, medviewer_home: Path, tmp_path: Path):
    out = tmp_path / "shot.png"
    result = run_medviewer(
        "--screenshot",
        str(out),
        str(demo_dir / "ct"),
        str(demo_dir / "slide.tiff"),
        str(demo_dir / "ct2"),
        home=medviewer_home,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    pixels = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert pixels.shape == (1000, 1600, 3)
    # The CT slice fills the centre: black air and lungs, grey soft tissue, white bone.
    centre = pixels[300:700, 600:1000].mean(axis=2)
    assert (
        (centre < 15).mean() > 0.1 and (centre > 240).mean() > 0.005 and ((centre > 90) & (centre < 170)).mean() > 0.1
    )
    # The slide's thumbnail is in the patient panel (left): pink tissue pixels.
    left = pixels[:, :330]
    pink = (left[..., 0] - left[..., 1] > 40) & (left[..., 2] - left[..., 1] > 20)
    assert pink.sum() > 300
    # The AI panel reports the runtime it found.
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_bad_paths_on_the_command_line_open_the_window_anyway(medviewer_home: Path, tmp_path: Path):
    text = tmp_path / "letter.dcm"
    text.write_text("Dear colleague\n")
    out = tmp_path / "shot.png"
    result = run_medviewer("--screenshot", str(out), str(tmp_path / "nowhere"), str(text), home=medviewer_home)
    assert result.returncode == 0, result.stderr
    assert out.exists()
    assert "Traceback" not in result.stderr
    log_text = (medviewer_home / "logs" / "medviewer.log").read_text()
    assert log_text.count("could not open") == 2
