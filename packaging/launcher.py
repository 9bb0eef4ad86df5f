"""Entry script for the PyInstaller build: the same ``main`` as the ``medviewer`` command."""

import sys

from medviewer.cli import main

sys.exit(main())
