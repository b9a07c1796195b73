"""Central finite differences of E = sum(dy * forward(x, w, b)) with respect to x, w or b.

The numerical gradient of coordinate q is sum(dy * (y+ - y-)) / (t+ - t-), where t+/t- are the
perturbed values as actually stored in the input's dtype: measuring the step after rounding
removes the step's own rounding error, which matters in float32. Subtracting y- from y+ before
weighting by dy cancels every output the perturbation did not reach exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["NumericalGradient", "Forward", "Progress", "dense_gradient", "TENSOR_INDEX"]

# Which argument of forward(x, w, b) each gradient perturbs.
TENSOR_INDEX = {"dX": 0, "dK": 1, "db": 2}

Forward = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
Progress = Callable[[int], None]  # called with the number of forward calls just made


@dataclass(frozen=True)
class NumericalGradient:
    """The numerical gradient of one tensor and what it cost."""

    values: np.ndarray  # float64, the tensor's shape; NaN where a coordinate was not computed
    step: float
    method: str
    checked: int  # coordinates whose numerical derivative was computed
    forward_calls: int
    note: str | None = None  # why the method differs from the one asked for, if it does
    # method "projection": (analytical, numerical) derivative along each random direction
    projections: np.ndarray | None = field(default=None, repr=False, compare=False)


def dense_gradient(
    forward: Forward,
    inputs: tuple[np.ndarray, np.ndarray, np.ndarray],
    gradient: str,
    dy: np.ndarray,
    step: float,
    progress: Progress | None = None,
    coordinates: np.ndarray | None = None,
) -> NumericalGradient:
    """Perturb one coordinate at a time: two forward calls per coordinate.

    Every coordinate, or only the flat indices in `coordinates` (method "sample"; the others are
    NaN, which the comparison skips).
    """
    which = TENSOR_INDEX[gradient]
    args = [a.copy() for a in inputs]
    tensor = args[which]
    flat = tensor.reshape(-1)  # a view: writing into it perturbs the argument
    values = np.full(flat.size, np.nan, dtype=np.float64)
    weights = dy.astype(np.float64, copy=False)
    chosen = range(flat.size) if coordinates is None else coordinates
    for q in chosen:
        original = flat[q]
        flat[q] = original + step
        high = float(flat[q])
        y_plus = forward(*args)
        flat[q] = original - step
        low = float(flat[q])
        y_minus = forward(*args)
        flat[q] = original
        values[q] = np.sum(weights * (y_plus - y_minus)) / (high - low)
        if progress is not None:
            progress(2)
    return NumericalGradient(
        values=values.reshape(tensor.shape),
        step=step,
        method="dense" if coordinates is None else "sample",
        checked=len(chosen),
        forward_calls=2 * len(chosen),
    )
