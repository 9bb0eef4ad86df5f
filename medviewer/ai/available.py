"""Where the window finds model packages: the demo bundles shipped in ``models/``, and those a user added.

A model found here is not yet trusted: ``package.load_module`` still checks its SHA-256 against the
approved list before torch reads it.
"""

from __future__ import annotations

from pathlib import Path

from medviewer.core.app_dirs import RESOURCES_DIR

#: ``models/<name>/bundle`` folders beside ``resources/`` in the project.
BUILTIN_MODELS_DIR = RESOURCES_DIR.parent / "models"


def builtin_bundles() -> list[Path]:
    return sorted(p for p in BUILTIN_MODELS_DIR.glob("*/bundle") if (p / "configs" / "metadata.json").is_file())
