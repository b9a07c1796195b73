"""Running convgrad as a user's shell does: a real process, real pipes, real signals.

The child imports the convgrad under test (this checkout's sources), not whatever is installed.
"""

from __future__ import annotations

import os
import sys

import convgrad

SOURCES = os.path.dirname(os.path.dirname(os.path.abspath(convgrad.__file__)))
REPO = os.path.dirname(SOURCES)
CONVGRAD = [sys.executable, "-m", "convgrad"]


def convgrad_env(**extra: str) -> dict[str, str]:
    """The environment for a child that imports this checkout's convgrad (and one BLAS thread)."""
    return {**os.environ, "PYTHONPATH": SOURCES, "OPENBLAS_NUM_THREADS": "1", **extra}
