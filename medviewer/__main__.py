"""``python -m medviewer`` runs the same entry point as the ``medviewer`` command."""

import sys

from medviewer.cli import main

sys.exit(main())
