"""convgrad: check the backward pass of convolution layers against finite differences.

The public surface is small: everything not listed in `__all__` may change. Names are imported on
first use so that `convgrad --help` does not pay for NumPy.

    convgrad.check(...)                   one layer, in a child process with a timeout -> CaseReport
    convgrad.testing.assert_conv_gradients(...)   the same, raising AssertionError unless it passes
    convgrad.run_case(geometry, implementation, options)   the pipeline itself, in this process
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {
    "check": "convgrad.testing",
    "assert_conv_gradients": "convgrad.testing",
    "suite_cases": "convgrad.testing",
    "assert_case": "convgrad.testing",
    "run_case": "convgrad.run.case",
    "CheckOptions": "convgrad.options",
    "resolve_geometry": "convgrad.geometry",
    "LayerGeometry": "convgrad.geometry",
    "as_implementation": "convgrad.adapters.loading",
    "CaseReport": "convgrad.report",
    "SuiteReport": "convgrad.report",
    "TensorComparison": "convgrad.report",
    "ConvgradError": "convgrad.errors",
    "Unsupported": "convgrad.adapters.protocol",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'convgrad' has no attribute {name!r}")
