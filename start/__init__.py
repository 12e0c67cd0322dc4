"""START: Self-Taught AttRibuTion.

Sub-packages are imported on demand so that, for example, ``start.scoring`` can be used as a library
without pulling in any training code.
"""

__version__ = "0.1.0"
