"""convgrad: check the backward pass of convolution layers against finite differences.

The public surface is small: everything not listed in `__all__` may change. Names are imported on
first use so that `convgrad --help` does not pay for NumPy; type checkers read the real types from
the imports under TYPE_CHECKING, so a misspelt name or keyword is an error there.

    convgrad.check(...)                   one layer, in a child process with a timeout -> CaseReport
    convgrad.testing.assert_conv_gradients(...)   the same, raising AssertionError unless it passes
    convgrad.run_case(geometry, implementation, options)   the pipeline itself, in this process
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Where each public name lives. Type checkers read the same names from the imports below (a test
# keeps this table, `__all__` and those imports equal); at run time a name is imported on first use.
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

__all__ = [
    "__version__", "check", "assert_conv_gradients", "suite_cases", "assert_case", "run_case", "CheckOptions",
    "resolve_geometry", "LayerGeometry", "as_implementation", "CaseReport", "SuiteReport", "TensorComparison",
    "ConvgradError", "Unsupported",
]

if TYPE_CHECKING:  # the real types for type checkers; lazy at run time (below), not a cycle
    from convgrad.adapters.loading import as_implementation as as_implementation
    from convgrad.adapters.protocol import Unsupported as Unsupported
    from convgrad.errors import ConvgradError as ConvgradError
    from convgrad.geometry import LayerGeometry as LayerGeometry, resolve_geometry as resolve_geometry
    from convgrad.options import CheckOptions as CheckOptions
    from convgrad.report import (
        CaseReport as CaseReport, SuiteReport as SuiteReport, TensorComparison as TensorComparison,
    )
    from convgrad.run.case import run_case as run_case
    from convgrad.testing import (
        assert_case as assert_case, assert_conv_gradients as assert_conv_gradients, check as check,
        suite_cases as suite_cases,
    )
else:
    # Not seen by type checkers, so a misspelt name is an error there, not Any.
    def __getattr__(name: str) -> object:
        if name in _PUBLIC:
            return getattr(importlib.import_module(_PUBLIC[name]), name)
        raise AttributeError(f"module 'convgrad' has no attribute {name!r}")
