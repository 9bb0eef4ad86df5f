"""The generated pyramid the phantom tests read, written once per session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_pyramid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 4096 x 3072 JPEG pyramid of three levels (about 2 s)."""
    from medviewer.demo.slide_phantom import write_pyramid_slide

    path = tmp_path_factory.mktemp("pyramid") / "small.tiff"
    write_pyramid_slide(path, 4096, 3072, seed=0, levels=3)
    return path
