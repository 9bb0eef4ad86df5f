"""Running medviewer, or a piece of Python, in a child process.

Hostile-input tests open files that, if a reader regresses, would take gigabytes or hang: in a child, with
its own address-space limit and a timeout, a regression fails the test instead of the machine, and the
child's own peak memory can be measured (``tests.support.memory``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO


def json_from_child(script: str, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> dict:
    """Run ``python -c script args...`` in the repository; its last stdout line, as JSON. A non-zero exit
    (an untyped error, a crash) fails here with the child's stderr."""
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def run_medviewer(*args: str, home: Path, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real entry point in a child process, offscreen, with its own MEDVIEWER_HOME."""
    child_env = {**os.environ, "MEDVIEWER_HOME": str(home), "QT_QPA_PLATFORM": "offscreen", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "medviewer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=child_env,
        cwd=REPO,
    )
