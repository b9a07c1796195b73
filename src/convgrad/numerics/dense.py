"""Finite differences of E = sum(dy * forward(x, w, b)) with respect to x, w or b, one coordinate at a time.

The numerical gradient of coordinate q is sum(dy * (y+ - y-)) / (t+ - t-), where t+/t- are the
perturbed values as actually stored in the input's dtype: measuring the step after rounding
removes the step's own rounding error, which matters in float32. Subtracting y- from y+ before
weighting by dy cancels every output the perturbation did not reach exactly. Given a `base`
output y(t), the differences are one-sided: y- is the base and t- the unperturbed value (exact
for a forward affine in the tensor, see linearity.py).
"""

from __future__ import annotations

import numpy as np

from convgrad.geometry import GradientName
from convgrad.numerics.gradient import TENSOR_INDEX, Forward, Inputs, NumericalGradient, Progress

__all__ = ["dense_gradient"]


def dense_gradient(
    forward: Forward,
    inputs: Inputs,
    gradient: GradientName,
    dy: np.ndarray,
    step: float,
    progress: Progress | None = None,
    coordinates: np.ndarray | None = None,
    base: np.ndarray | None = None,
) -> NumericalGradient:
    """Perturb one coordinate at a time: two forward calls per coordinate (one with a `base`).

    Every coordinate, or only the flat indices in `coordinates` (method "sample"; the others are
    NaN, which the comparison skips).
    """
    which = TENSOR_INDEX[gradient]
    args = [a.copy() for a in inputs]
    tensor = args[which]
    flat = tensor.reshape(-1)  # a view: writing into it perturbs the argument
    values = np.full(flat.size, np.nan, dtype=np.float64)
    weights = dy.astype(np.float64, copy=False)
    chosen = np.arange(flat.size) if coordinates is None else coordinates
    per_coordinate = 1 if base is not None else 2
    for q in chosen:
        original = flat[q]
        flat[q] = original + step
        high = float(flat[q])
        y_plus = forward(*args)
        if base is None:
            flat[q] = original - step
            low = float(flat[q])
            y_minus = forward(*args)
        else:
            low, y_minus = float(original), base
        flat[q] = original
        values[q] = np.sum(weights * (y_plus - y_minus)) / (high - low)
        if progress is not None:
            progress(per_coordinate)
    return NumericalGradient(
        values=values.reshape(tensor.shape),
        step=step,
        method=("dense" if coordinates is None else "sample") + (", one-sided" if base is not None else ""),
        checked=int(chosen.size),
        forward_calls=per_coordinate * int(chosen.size),
    )
