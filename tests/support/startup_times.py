"""Seconds from process start to the window shown, and to torch imported, read from the application's log.

The startup test checks their order (the window first, torch in the background after it); the startup
benchmark reports their medians."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVENT = re.compile(r"startup: (window shown|torch imported) at ([0-9.]+)")


def measure_once(paths: list[str] | None = None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "MEDVIEWER_HOME": home, "QT_QPA_PLATFORM": "offscreen"}
        started = time.time()
        subprocess.run(
            [sys.executable, "-m", "medviewer", "--screenshot", str(Path(home) / "shot.png"), *(paths or [])],
            check=True,
            capture_output=True,
            env=env,
            timeout=300,
        )
        log_text = (Path(home) / "logs" / "medviewer.log").read_text()
    times = {name: float(at) - started for name, at in EVENT.findall(log_text)}
    return {"window_shown_s": times["window shown"], "torch_imported_s": times["torch imported"]}
