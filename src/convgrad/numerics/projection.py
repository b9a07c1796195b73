"""Random projections: the derivative of E along random directions v, as torch's fast mode does.

For a direction v the numerical side is dy . (y(T + h v) - y(T - h v)); the analytical side,
<analytical gradient, (T + h v) - (T - h v)>, is taken by the comparison (compare.py). One-sided
from a base output y(T) (a forward shown affine in T): dy . (y(T + h v) - y(T)) against
<analytical gradient, (T + h v) - T>. Both use the
perturbation as actually stored in the dtype, so the step's rounding cancels. Cheap (two forward
calls per direction) and good at catching a gradient that is wrong everywhere, but a single wrong
coordinate only moves each projection by a little: use an exact method to check every coordinate.
"""

from __future__ import annotations

import numpy as np

from convgrad.geometry import GradientName
from convgrad.numerics.gradient import TENSOR_INDEX, Forward, Inputs, NumericalGradient, Progress

__all__ = ["projection_gradient"]


def projection_gradient(
    forward: Forward,
    inputs: Inputs,
    gradient: GradientName,
    dy: np.ndarray,
    step: float,
    directions: int,
    rng: np.random.Generator,
    progress: Progress | None = None,
    base: np.ndarray | None = None,
) -> NumericalGradient:
    """`directions` random directional derivatives, with the perturbations that produced them;
    one-sided from `base` when given."""
    which = TENSOR_INDEX[gradient]
    tensor = inputs[which]
    weights = dy.astype(np.float64)
    applied = np.empty((directions, tensor.size), dtype=np.float64)
    numerical = np.empty(directions, dtype=np.float64)
    sides = 1 if base is not None else 2
    for k in range(directions):
        v = rng.standard_normal(tensor.shape)
        v *= step / max(float(np.max(np.abs(v))), 1e-300)  # the largest change is one step
        plus = (tensor.astype(np.float64) + v).astype(tensor.dtype)
        minus = tensor if base is not None else (tensor.astype(np.float64) - v).astype(tensor.dtype)
        args_plus, args_minus = list(inputs), list(inputs)
        args_plus[which], args_minus[which] = plus, minus
        moved = forward(*args_plus) - (base if base is not None else forward(*args_minus))
        if progress is not None:
            progress(sides)
        applied[k] = (plus.astype(np.float64) - minus.astype(np.float64)).reshape(-1)
        numerical[k] = float(np.sum(weights * moved))
    return NumericalGradient(
        values=np.full(tensor.shape, np.nan),
        step=step,
        method="projection" if base is None else "projection, one-sided",
        checked=directions,
        forward_calls=sides * directions,
        # Harmless: it says what was compared (the method asked for), not what the layer did.
        note=f"compared along {directions} random directions, not coordinate by coordinate "
        "(index = direction)",
        directions=applied,
        projections=numerical,
    )
