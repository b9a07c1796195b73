"""Whether the forward is affine in one tensor: the condition under which one-sided differences are exact.

y = conv(x, w) + b is affine in each of x, w and b separately, and for an affine map
y(t + h e) - y(t) = h J e holds exactly: a one-sided difference from one base output, shared by
every perturbation of the tensor, has no truncation error (its rounding is of the same order as a
central difference's) and costs half the calls. The implementation under test need not be
affine, though (a hidden ReLU, a clamp, quantisation, an x*x term), so before a tensor T is
differenced one-sided its forward is tested along one random direction v whose entries are +h or
-h: every coordinate moves by the step the differences use, both ways, and all at once, so
products of coordinates show as well as a bend in any one of them.

    second = y(t + v) + y(t - v) - 2 y(t)      zero for an affine map, up to rounding
    first  = y(t + v) - y(t - v)               2 J v

A one-sided derivative is off by about second / first of the derivative itself, so T is
differenced one-sided only when max|second| <= LINEARITY_MARGIN * rtol * max|first|: well inside
the check's tolerance, and far above rounding in either dtype (float64: 1e-13 of 1e-9; float32:
about 1e-5 of 1e-4). Otherwise T falls back to central differences and the note says why. A
nonlinearity this test happens to miss still meets the spot checks, which stay central.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from convgrad.geometry import GradientName
from convgrad.numerics.gradient import TENSOR_INDEX, Evidence, Forward, Inputs

__all__ = ["LINEARITY_MARGIN", "LINEARITY_CALLS", "nonlinearity"]

LINEARITY_MARGIN = 0.125  # of the check's rtol: the share of the tolerance a hidden bend may use
LINEARITY_CALLS = 2  # y(t + v) and y(t - v); y(t) is the shared base


def nonlinearity(
    forward: Forward,
    inputs: Inputs,
    gradient: GradientName,
    base: np.ndarray,
    step: float,
    rtol: float,
    rng: np.random.Generator,
) -> tuple[Optional[str], tuple[Evidence, ...]]:
    """Why the forward is not affine in `gradient`'s tensor, or None when it is (to the margin),
    and the two moved outputs as evidence: a conv layer's output at t + v and t - v is the
    reference convolution's there (run/case.py judges them)."""
    which = TENSOR_INDEX[gradient]
    tensor = inputs[which]
    signs = rng.choice(np.array([-1.0, 1.0]), size=tensor.shape)
    moved, arguments = [], []
    for sign in (1.0, -1.0):
        args = list(inputs)
        args[which] = (tensor + tensor.dtype.type(step) * (sign * signs).astype(tensor.dtype)).astype(tensor.dtype)
        moved.append(forward(*args))
        arguments.append((args[0], args[1], args[2]))
    first = float(np.max(np.abs(moved[0] - moved[1]), initial=0.0))
    second = float(np.max(np.abs(moved[0] + moved[1] - 2.0 * base), initial=0.0))
    if second <= LINEARITY_MARGIN * rtol * first:
        return None, ()
    shown = f"{second / first:.1e} of the first" if first > 0 else f"{second:.1e} where the first is 0"
    tensor_name = {"dX": "x", "dK": "w", "db": "b"}[gradient]
    evidence = tuple(
        Evidence(f"the output at {tensor_name} moved by {'+' if i == 0 else '-'}{step:.3g} in every coordinate",
                 f"the forward is not a convolution next to the inputs checked (not linear in {tensor_name})",
                 arguments[i], moved[i])
        for i in range(2)
    )
    return f"forward is not linear in {tensor_name} (second difference {shown}); central differences", evidence
