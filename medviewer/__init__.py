"""medviewer: clinical image review with AI saliency overlays.

The package is layered (see README, "For developers"): ``core`` and ``io`` hold plain data and readers
with no Qt and no torch, ``ui`` is the only place Qt lives, and ``cli`` is the one entry point.
"""

__version__ = "0.1.0"
