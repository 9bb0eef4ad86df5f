"""Temporary files left by saves killed mid-write are cleared when the slide is opened again."""

from __future__ import annotations

import os
import time
from pathlib import Path

from medviewer.annotations.sidecar import beside_slide, load_sidecar


def test_old_temporaries_beside_the_sidecar_are_removed_and_recent_ones_kept(tmp_path: Path):
    slide = tmp_path / "case.svs"
    slide.write_bytes(b"")
    sidecar = beside_slide(slide)
    old = tmp_path / f".{sidecar.name}.0123456789ab.tmp"
    recent = tmp_path / f".{sidecar.name}.ba9876543210.tmp"
    unrelated = tmp_path / ".other.geojson.0123456789ab.tmp"
    for path in (old, recent, unrelated):
        path.write_bytes(b"{")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    os.utime(unrelated, (an_hour_ago, an_hour_ago))
    load_sidecar(slide)
    assert not old.exists() and recent.exists() and unrelated.exists()
