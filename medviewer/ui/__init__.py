"""The window: PySide6 and pyqtgraph live here and nowhere else.

Thin by design: what a person asks for is a ``medviewer.actions`` job, run by the window's job runner
(``job_runner``); widgets draw what it returns, so every capability stays usable without a window.
"""

import pyqtgraph as pg

# Arrays are (row, column) everywhere in medviewer; tell pyqtgraph once.
pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
