"""convgrad: check the backward pass of convolution layers against finite differences.

The public surface is small: everything not listed in `__all__` may change. Names are imported on
first use so that `convgrad --help` does not pay for NumPy.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "check_layer": "convgrad.checker",
    "resolve_geometry": "convgrad.geometry",
    "LayerGeometry": "convgrad.geometry",
    "Tolerances": "convgrad.tolerances",
    "CaseReport": "convgrad.report",
    "SuiteReport": "convgrad.report",
    "TensorComparison": "convgrad.report",
    "ConvgradError": "convgrad.errors",
    "check": "convgrad.testing",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'convgrad' has no attribute {name!r}")
