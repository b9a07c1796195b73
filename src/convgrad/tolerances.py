"""Step sizes and tolerances: named defaults per dtype, validated once.

Why these numbers: a conv layer is linear in X and K and affine in b, so a central difference has
no truncation error and only rounding error remains (../MATH.md). That allows a large step, which
maximises the signal against rounding, and a tight tolerance. Errors are measured against the
scale of the whole tensor (see `comparison.py`), which keeps the measure sane near zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from convgrad.errors import SettingError
from convgrad.finite_differences import TENSOR_INDEX

__all__ = ["Tolerances", "DEFAULT_TOLERANCES", "tolerances_for", "perturbation_scale"]


# Bounds of --step (relative to the perturbed tensor's scale, see perturbation_scale). Below 1e-6 the
# perturbation of the largest coordinate can round away in float32 (resolution ~1.2e-7), which
# would leave a coordinate silently unchecked; above 1e3 nothing is gained (no truncation error)
# and values drift towards overflow, which would then be blamed on the implementation.
MIN_RELATIVE_STEP, MAX_RELATIVE_STEP = 1e-6, 1e3


@dataclass(frozen=True)
class Tolerances:
    """How one check perturbs and what it accepts.

    relative_step: the step h for tensor T is relative_step * perturbation_scale(T) (relative_step
        itself when that is zero). The step actually used is measured after rounding to the dtype.
    rtol: a coordinate fails when |analytical - numerical| > rtol * scale(T), where scale(T) is
        the largest magnitude in either gradient of T.
    """

    relative_step: float
    rtol: float

    def __post_init__(self) -> None:
        for name, value in (("step", self.relative_step), ("rtol", self.rtol)):
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise SettingError(f"--{name} {value!r} must be a finite number greater than 0")
        if not MIN_RELATIVE_STEP <= self.relative_step <= MAX_RELATIVE_STEP:
            raise SettingError(
                f"--step {self.relative_step!r} is outside {MIN_RELATIVE_STEP:g}..{MAX_RELATIVE_STEP:g}; "
                "use a value like 0.5 (the layer is linear, so a large step loses nothing)"
            )
        if self.rtol >= 1:
            raise SettingError(
                f"--rtol {self.rtol!r} would accept gradients that are entirely wrong; "
                "use a value below 1, such as 1e-8"
            )

    def step_for(self, scale: float) -> float:
        """The step for a tensor whose largest magnitude is `scale`."""
        return self.relative_step * scale if scale > 0 else self.relative_step


def perturbation_scale(
    gradient: str, inputs: tuple[np.ndarray, np.ndarray, np.ndarray], output: np.ndarray
) -> float:
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


# float64: rounding leaves ~1e-13 of the tensor's scale, so 1e-8 leaves room for large layers and
# still flags one coordinate that is off by 1e-5 of its tensor's scale.
# float32: the layer itself rounds at ~1e-7 per operation and sums hundreds of terms; 1e-3 stays
# clear of that on ResNet-sized layers while still catching every structural mistake.
DEFAULT_TOLERANCES = {
    "float64": Tolerances(relative_step=0.5, rtol=1e-8),
    "float32": Tolerances(relative_step=0.5, rtol=1e-3),
}


def tolerances_for(
    dtype: str, *, relative_step: float | None = None, rtol: float | None = None
) -> Tolerances:
    """The default tolerances for `dtype`, with any user overrides applied and validated."""
    chosen = DEFAULT_TOLERANCES[dtype]
    overrides = {}
    if relative_step is not None:
        overrides["relative_step"] = relative_step
    if rtol is not None:
        overrides["rtol"] = rtol
    if not overrides:
        return chosen
    tolerances = replace(chosen, **overrides)
    # Rounding noise in a difference is about eps / step (relative); it must stay well below rtol.
    smallest = 10 * float(np.finfo(dtype).eps) / tolerances.rtol
    if tolerances.relative_step < smallest:
        raise SettingError(
            f"--step {tolerances.relative_step:g} is too small for {dtype} with rtol "
            f"{tolerances.rtol:g}: rounding noise (about eps/step) would exceed the tolerance; "
            f"use --step {smallest:.2g} or larger, or a larger --rtol"
        )
    return tolerances
