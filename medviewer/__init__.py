"""medviewer: clinical image review with AI saliency overlays.

The package is layered (see README, "For developers"; import-linter checks the order): ``cli`` (the one
entry point and every subcommand) > ``ui`` (the window, the only place Qt lives) > ``actions`` (what a
person can do, without Qt: the window and the command line call the same functions) > ``demo`` > ``ai`` and
``deid`` > ``catalog`` > ``annotations`` and ``io`` > ``core`` (plain data and geometry). Each layer imports
only those below it.
"""

__version__ = "0.1.0"
