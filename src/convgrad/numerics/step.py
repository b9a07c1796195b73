"""Where the finite-difference step of each tensor is chosen.

A conv layer is linear in x and in w and affine in b, so neither a central nor a one-sided
difference has truncation error: the step only has to be large enough to beat rounding. The same
step serves both (and the linearity test, which moves every coordinate by it). It is `relative_step` (options.py)
times the tensor's perturbation scale below.
"""

from __future__ import annotations

import numpy as np

from convgrad.geometry import GradientName
from convgrad.numerics.gradient import TENSOR_INDEX, Inputs
from convgrad.options import Tolerances

__all__ = ["perturbation_scale", "step_for"]


def perturbation_scale(gradient: GradientName, inputs: Inputs, output: np.ndarray) -> float:
    """What the step for x, w or b is relative to: max|T|, or more when other terms dominate O.

    The numerical derivative is read off O(q+h) - O(q-h), and O is rounded relative to its own
    magnitude. If O is dominated by terms the perturbed tensor T hardly affects (a bias of 1 on
    x*w of 1e-6, say), a step of max|T| moves O by less than its rounding and float32 loses every
    digit. So the step is also scaled up until it can move O by about max|O|: a coordinate of x
    moves O by its size times |w| (and w by its size times |x|, b by its size), giving
    max(max|T|, max|O| / max|partner|). The layer is linear, so a large step costs no accuracy.
    """
    x, w, _ = inputs
    tensor = inputs[TENSOR_INDEX[gradient]]
    own = float(np.max(np.abs(tensor), initial=0.0))
    partner = {"dX": float(np.max(np.abs(w), initial=0.0)), "dK": float(np.max(np.abs(x), initial=0.0)), "db": 1.0}[gradient]
    if partner == 0.0:  # T does not move O at all (e.g. dK with x = 0): any step will do
        return own
    return max(own, float(np.max(np.abs(output), initial=0.0)) / partner)


def step_for(gradient: GradientName, inputs: Inputs, output: np.ndarray, tolerances: Tolerances) -> float:
    """The step h for `gradient`: relative_step * perturbation scale (relative_step itself at 0)."""
    scale = perturbation_scale(gradient, inputs, output)
    return tolerances.relative_step * scale if scale > 0 else tolerances.relative_step
