"""Random projections: the derivative of E along random directions v, as torch's fast mode does.

For a direction v the numerical side is dy . (y(T + h v) - y(T - h v)) and the analytical side
is <analytical gradient, (T + h v) - (T - h v)>, both measured on the perturbation as actually
stored in the dtype, so the step's rounding cancels. Cheap (two forward calls per direction) and
good at catching a gradient that is wrong everywhere, but a single wrong coordinate only moves
each projection by a little: use an exact method to check every coordinate.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from convgrad.comparison import compare
from convgrad.finite_differences import TENSOR_INDEX, Forward, NumericalGradient, Progress
from convgrad.report import TensorComparison

__all__ = ["projection_gradient", "compare_projections"]


def projection_gradient(
    forward: Forward,
    inputs: tuple[np.ndarray, np.ndarray, np.ndarray],
    gradient: str,
    dy: np.ndarray,
    step: float,
    analytical: np.ndarray,
    directions: int,
    rng: np.random.Generator,
    progress: Progress | None = None,
) -> NumericalGradient:
    """`directions` random directional derivatives; `projections` holds (analytical, numerical) pairs."""
    which = TENSOR_INDEX[gradient]
    tensor = inputs[which]
    weights = dy.astype(np.float64)
    pairs = np.empty((directions, 2), dtype=np.float64)
    for k in range(directions):
        v = rng.standard_normal(tensor.shape)
        v *= step / max(float(np.max(np.abs(v))), 1e-300)  # the largest change is one step
        plus = (tensor.astype(np.float64) + v).astype(tensor.dtype)
        minus = (tensor.astype(np.float64) - v).astype(tensor.dtype)
        args_plus, args_minus = list(inputs), list(inputs)
        args_plus[which], args_minus[which] = plus, minus
        moved = forward(*args_plus) - forward(*args_minus)
        if progress is not None:
            progress(2)
        realised = plus.astype(np.float64) - minus.astype(np.float64)
        pairs[k] = (float(np.sum(analytical * realised)), float(np.sum(weights * moved)))
    return NumericalGradient(
        values=np.full(tensor.shape, np.nan),
        step=step,
        method="projection",
        checked=directions,
        forward_calls=2 * directions,
        note=f"compared along {directions} random directions, not coordinate by coordinate "
        "(index = direction)",
        projections=pairs,
    )


def compare_projections(
    name: str, analytical: np.ndarray, numerical: NumericalGradient, tolerance: float
) -> TensorComparison:
    """Directional derivatives compared like a tensor of their own, shown with the tensor's shapes."""
    assert numerical.projections is not None
    result = compare(
        name,
        numerical.projections[:, 0],
        numerical.projections[:, 1],
        tolerance,
        method=numerical.method,
        forward_calls=numerical.forward_calls,
        step=numerical.step,
        note=numerical.note,
    )
    reason = result.reason.replace(" coordinates differ", " directions differ") if result.reason else None
    return replace(
        result,
        expected_shape=tuple(numerical.values.shape),
        shape=tuple(analytical.shape),
        total=int(numerical.values.size),  # coordinates in the tensor; `checked` counts directions
        reason=reason,
        # Directional values are not coordinates of the tensor: nothing to map or diagnose.
        analytical=None,
        numerical=None,
    )
