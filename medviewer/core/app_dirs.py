"""Where medviewer writes its files.

``MEDVIEWER_HOME``, when set, puts everything it writes (settings, logs) under one folder so
that tests and scripts never touch a user's real profile; otherwise the platform's per-user folders.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import platformdirs

APP_NAME = "medviewer"
#: Shipped data (icons, window presets): resources/ sits beside the package in a checkout and in the
#: PyInstaller folder alike.
RESOURCES_DIR = Path(__file__).resolve().parents[2] / "resources"


def _folder(name_under_home: str, platform_folder: Callable[[str], str]) -> Path:
    home = os.environ.get("MEDVIEWER_HOME")
    path = Path(home).expanduser() / name_under_home if home else Path(platform_folder(APP_NAME))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    return _folder("config", platformdirs.user_config_dir)


def log_dir() -> Path:
    return _folder("logs", platformdirs.user_log_dir)


def data_dir() -> Path:
    """Files kept for the user that are neither settings nor logs (e.g. annotations of read-only slides)."""
    return _folder("data", platformdirs.user_data_dir)
