"""The window: PySide6 and pyqtgraph live here and nowhere else.

Thin by design: widgets call ``medviewer.io`` (and later layers) and draw what they return, so every
capability stays usable without a window.
"""

import pyqtgraph as pg

# Arrays are (row, column) everywhere in medviewer; tell pyqtgraph once.
pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)
