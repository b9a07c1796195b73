"""What a backward returned, as (dx, dw, db): the one place every calling style reads it.

Backwards return their gradients in many shapes: `(dx, dw, db)`, `(dx, [dw, db])`, `dx` alone
with dw and db left on the layer, a dict `{"dx": ..., "dW": ..., "db": ...}`. The common ones are
read without a declaration; any other nesting is declared as `backward_returns = "dx, (dw, db)"`.
"""

from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Optional

import numpy as np

from convgrad.adapters.vocabulary import ROLES
from convgrad.adapters.failure import ImplementationFailure

__all__ = ["unpack_gradients", "GRADIENT_KEYS", "Gradients"]


class Gradients(NamedTuple):
    """(dx, dw, db) read already (by unpack_gradients, or by a style that reads some of them off
    the layer, like a layer object's dW on an attribute): returned as it is when read again."""

    dx: Any
    dw: Any
    db: Any


# The keys of a returned dict, by gradient.
GRADIENT_KEYS: dict[str, tuple[str, ...]] = {
    "dx": ("dx", "dX", "d_x", "dinput", "dinputs", "d_input", "grad_input", "dA_prev", "dA", "dx_prev"),
    "dw": (*ROLES["grad_weights"], *ROLES["weights"]),
    "db": (*ROLES["grad_bias"], *ROLES["bias"]),
}


def unpack_gradients(result: Any, pattern: Optional[tuple[Any, ...]]) -> Any:
    """(dx, dw, db) (dw, db None where the result holds none) when the result has a known or
    declared shape; otherwise the result itself, for the guard to say what is wrong with it."""
    if isinstance(result, Gradients):
        return result
    if pattern is not None:
        found: dict[str, Any] = {}
        _match(result, pattern, found, "")
        return Gradients(found["dx"], found.get("dw"), found.get("db"))
    if isinstance(result, Mapping):
        by_key = {g: next((result[k] for k in keys if k in result), None) for g, keys in GRADIENT_KEYS.items()}
        return Gradients(by_key["dx"], by_key["dw"], by_key["db"]) if by_key["dx"] is not None else result
    if isinstance(result, (tuple, list)) and len(result) == 2 and _sequence_of_arrays(result[1]):
        dw, db = (*result[1], None)[:2]  # (dx, [dw, db]) or (dx, [dw])
        return Gradients(result[0], dw, db)
    return result


def _sequence_of_arrays(value: Any) -> bool:
    """[dw, db] of arrays (a nested list of numbers is one array, not two gradients)."""
    return (isinstance(value, (tuple, list)) and len(value) in (1, 2)
            and all(hasattr(v, "shape") and np.ndim(v) > 0 for v in value if v is not None))


def _match(value: Any, pattern: Any, found: dict[str, Any], where: str) -> None:
    """Bind the names of `pattern` to the parts of `value`; a part that does not fit is a failure."""
    if not isinstance(pattern, tuple):
        if pattern != "_":
            found[pattern] = value
        return
    if len(pattern) == 1 and not isinstance(value, (tuple, list)):
        _match(value, pattern[0], found, where)  # "dx": a bare value
        return
    if not isinstance(value, (tuple, list)) or len(value) != len(pattern):
        got = f"a {type(value).__name__} of {len(value)}" if isinstance(value, (tuple, list)) else f"a {type(value).__name__}"
        raise ImplementationFailure(
            f"backward returned {got}{where} where backward_returns declares {_shown(pattern)}"
        )
    for number, (part, inner) in enumerate(zip(value, pattern)):
        _match(part, inner, found, f" at item {number}" if not where else f"{where}.{number}")


def _shown(pattern: Any) -> str:
    if not isinstance(pattern, tuple):
        return str(pattern)
    return "(" + ", ".join(_shown(p) for p in pattern) + ")"
