"""A torch or jax layer that raises, turned into the reason a case fails, with the fix when one is
evident: a layer that raises on a 1-D or 3-D case, or on a rectangular kernel, and runs the 2-D
case with a square kernel gets the declaration that skips such cases (adapters/hints.py:
`crash_hint`). Only a raise gets it: a layer that runs and returns the wrong shape has a bug that
declaring limits would hide.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from convgrad.geometry import LayerGeometry
from convgrad.adapters.declare import Declarations
from convgrad.adapters.hints import crash_hint
from convgrad.adapters.protocol import Unsupported
from convgrad.adapters.failure import ImplementationFailure, describe_exception

__all__ = ["with_crash_reason"]

Result = TypeVar("Result")


def with_crash_reason(
    what: str, geometry: LayerGeometry, declared: Declarations, call: Callable[[], Result],
    runs: Callable[[LayerGeometry], bool],
) -> Result:
    """call(), whatever it raises an ImplementationFailure "forward raised ..." (or backward), with
    a hint when `runs` (the layer's forward, and backward for a backward) works on the plain case."""
    try:
        return call()
    except (ImplementationFailure, Unsupported):
        raise
    except Exception as error:
        hint = crash_hint(geometry, what, declared_dims=declared.spatial_dims is not None, error=error, runs=runs)
        raise ImplementationFailure(f"{what} raised {describe_exception(error)}{hint}") from error
