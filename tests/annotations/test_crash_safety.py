"""A writer killed with SIGKILL at random moments always leaves the old or the new sidecar, never a mix.

A helper process imports medviewer once and forks one writer per kill (a fresh interpreter per kill would
spend the test's time starting Python). Each writer saves two versions of a few-megabyte sidecar in
turn through ``write_atomic``, the function ``write_geojson`` and the autosaver use, so most kills land
inside a write; after each kill the file must be byte for byte one of the two versions.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medviewer.annotations import Annotation, read_geojson
from medviewer.annotations.geojson import geojson_bytes
from tests.support.paths import REPO

KILLS = 200

_FORK_SERVER = """
import os, sys
from pathlib import Path
from medviewer.io.atomic_write import write_atomic

target = Path(sys.argv[1])
versions = [Path(sys.argv[2]).read_bytes(), Path(sys.argv[3]).read_bytes()]
print("ready", flush=True)
for _ in sys.stdin:
    pid = os.fork()
    if pid == 0:
        count = 0
        while True:
            write_atomic(target, versions[count % 2])
            count += 1
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print("reaped", flush=True)
"""


def _version(seed: int, count: int) -> bytes:
    rng = np.random.default_rng(seed)
    shapes = [Annotation.polygon(rng.uniform(0, 100000, (60, 2)), freehand=True, name=f"v{seed}") for _ in range(count)]
    return geojson_bytes(shapes)


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="needs fork and SIGKILL")
def test_sidecar_survives_hundreds_of_kills_mid_write(tmp_path: Path) -> None:
    old, new = _version(1, 1500), _version(2, 1700)
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    folder = tmp_path / "slides"
    folder.mkdir()
    target = folder / "slide.svs.annotations.geojson"
    target.write_bytes(old)
    server = subprocess.Popen(
        [sys.executable, "-c", _FORK_SERVER, str(target), str(tmp_path / "old"), str(tmp_path / "new")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
    )
    rng = random.Random(0)
    seen = {old: 0, new: 0}
    killed_mid_write = 0
    try:
        assert server.stdout.readline().strip() == "ready"
        for kill in range(KILLS):
            server.stdin.write("go\n")
            server.stdin.flush()
            writer = int(server.stdout.readline())
            time.sleep(rng.uniform(0.002, 0.03))
            os.kill(writer, signal.SIGKILL)
            assert server.stdout.readline().strip() == "reaped"
            content = target.read_bytes()
            assert content in seen, f"kill {kill}: the sidecar is neither version ({len(content)} bytes)"
            seen[content] += 1
            strays = list(folder.glob(".*.tmp"))
            killed_mid_write += bool(strays)
            for stray in strays:
                stray.unlink()
        assert read_geojson(target)[0].name in ("v1", "v2")
    finally:
        server.kill()
        server.wait()
    print(f"{KILLS} kills: {killed_mid_write} mid-write, versions seen {seen[old]} old / {seen[new]} new")
    assert killed_mid_write >= KILLS // 4 and min(seen.values()) > 0
