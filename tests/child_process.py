"""Running a piece of Python in a child process and reading the JSON it prints last.

Hostile-input tests open files that, if a reader regresses, would take gigabytes or hang: in a child, with
its own address-space limit and a timeout, a regression fails the test instead of the machine, and the
child's own peak memory can be measured (``tests.benchmarks.memory``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


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
