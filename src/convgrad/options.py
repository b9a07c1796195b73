"""How a check is run, apart from the layer: every setting, its default, and its validation.

`CheckOptions` is built once (by the command line, the pytest API or a caller), validated where it
is made, and passed whole to every case, so a setting cannot be dropped or defaulted twice on the
way. Only what depends on a case's dtype (the default tolerance, and whether a step is too small
for it) is settled per case, by `tolerances(dtype)`.

`FuzzOptions` holds what `convgrad fuzz` adds: its budget and the dtypes of the layers it draws.

Methods:
    auto        every coordinate, by the cheapest exact method (coloured, or dense for tiny tensors);
                past a size budget, as `reference` (numerics/plan.py)
    coloured    every coordinate; coordinates with disjoint receptive fields share a forward call
    dense       every coordinate, one at a time (two forward calls each)
    sample      `samples` random coordinates per tensor, one at a time
    projection  `samples` random directions v per tensor: dy . (J v) against <analytical, v>
    reference   every coordinate against the float64 reference backward, and the backward tied
                to the layer's own forward along a few random directions (needs the forward check)

Differences (how each perturbed forward call becomes a derivative):
    auto        one-sided from one shared base call for each tensor the forward is verified to
                be affine in (numerics/linearity.py); central for the others
    central     (y(t + h) - y(t - h)) / 2h everywhere: two calls per perturbation
    one-sided   (y(t + h) - y(t)) / h everywhere, trusting the forward to be affine (no test)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal, Mapping, Optional, get_args

from convgrad.errors import Parameter, SettingError
from convgrad.geometry import DTYPES, Dtype

__all__ = [
    "Method",
    "METHODS",
    "EXACT_METHODS",
    "SAMPLING_METHODS",
    "Differences",
    "DIFFERENCES",
    "DEFAULT_SAMPLES",
    "DEFAULT_TIMEOUT_S",
    "ORDERS",
    "Tolerances",
    "DEFAULT_TOLERANCES",
    "CheckOptions",
    "RANDOM_TENSORS",
    "FuzzOptions",
    "DEFAULT_BUDGET_S",
    "DEFAULT_FUZZ_TIMEOUT_S",
]

Method = Literal["auto", "coloured", "dense", "sample", "projection", "reference"]
METHODS: tuple[Method, ...] = get_args(Method)
EXACT_METHODS: tuple[Method, ...] = ("auto", "coloured", "dense", "reference")  # every coordinate is checked
SAMPLING_METHODS: tuple[Method, ...] = ("sample", "projection")  # `samples` per tensor
Differences = Literal["auto", "central", "one-sided"]
DIFFERENCES: tuple[Differences, ...] = get_args(Differences)
DEFAULT_SAMPLES = 64  # coordinates (sample) or directions (projection) per tensor
ORDERS = (1, 2)  # the backward; also the derivatives of the backward
DEFAULT_TIMEOUT_S = 600.0  # ten minutes: far above any layer a dense check finishes, short for CI
RANDOM_TENSORS = ("x", "w", "b", "dy")  # the random tensors of a check, in the order drawn

# Bounds of the relative step (see numerics/step.py). Below 1e-6 the perturbation of the largest
# coordinate can round away in float32 (resolution ~1.2e-7), which would leave a coordinate
# silently unchecked; above 1e3 nothing is gained (no truncation error) and values drift towards
# overflow, which would then be blamed on the implementation.
MIN_RELATIVE_STEP, MAX_RELATIVE_STEP = 1e-6, 1e3


@dataclass(frozen=True)
class Tolerances:
    """How one case perturbs and what it accepts.

    relative_step: the step h for tensor T is relative_step times T's perturbation scale
        (numerics/step.py). The step actually used is measured after rounding to the dtype.
    rtol: a coordinate fails when |analytical - reference| > rtol * scale(T), where scale(T) is
        the largest magnitude in either tensor (compare.py).
    """

    relative_step: float
    rtol: float

    def __post_init__(self) -> None:
        _check_step(self.relative_step)
        _check_rtol(self.rtol)


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SettingError(Parameter(name, repr(value)), " must be a finite number greater than 0")


def _check_step(value: float) -> None:
    _check_positive("step", value)
    if not MIN_RELATIVE_STEP <= value <= MAX_RELATIVE_STEP:
        raise SettingError(
            Parameter("step", repr(value)), f" is outside {MIN_RELATIVE_STEP:g}..{MAX_RELATIVE_STEP:g}; use a value like ",
            Parameter("step", 0.5), " (the layer is linear, so a large step loses nothing)",
        )


def _check_rtol(value: float) -> None:
    _check_positive("rtol", value)
    if value >= 1:
        raise SettingError(
            Parameter("rtol", repr(value)), " would accept gradients that are entirely wrong; use a value below 1, such as ",
            Parameter("rtol", "1e-8"),
        )


# A conv layer is linear in X and K and affine in b, so a central difference has no truncation
# error and only rounding error remains (docs/MATH.md): a large step, which maximises the signal
# against rounding, and a tight tolerance.
# float64: rounding leaves ~1e-13 of the tensor's scale, so 1e-8 leaves room for large layers and
# still flags one coordinate that is off by 1e-5 of its tensor's scale.
# float32: the layer itself rounds at ~1e-7 per operation and sums hundreds of terms; 1e-3 stays
# clear of that on ResNet-sized layers while still catching every structural mistake.
LINEAR_RELATIVE_STEP = 0.5  # of the perturbation scale, for every dtype
DEFAULT_TOLERANCES: dict[Dtype, Tolerances] = {
    "float64": Tolerances(relative_step=LINEAR_RELATIVE_STEP, rtol=1e-8),
    "float32": Tolerances(relative_step=LINEAR_RELATIVE_STEP, rtol=1e-3),
}


@dataclass(frozen=True)
class CheckOptions:
    """How every case of a run is checked. `relative_step` and `rtol` None: the dtype's default.

    `scale` multiplies any of the random tensors x, w, b, dy (e.g. {"x": 1e6}), to test extreme
    magnitudes; the numbers drawn from the seed are the same whatever the scale.
    """

    seed: int = 0
    relative_step: Optional[float] = None
    rtol: Optional[float] = None
    method: Method = "auto"
    samples: int = DEFAULT_SAMPLES
    forward_check: bool = True
    timeout: float = DEFAULT_TIMEOUT_S
    scale: Optional[Mapping[str, float]] = None
    strict: bool = False  # a case the implementation cannot express fails instead of being skipped
    differences: Differences = "auto"
    # 2: also the double backward (autograd, or jax, differentiating the layer's own backward),
    # against differences of the layer's backward and forward (run/derivatives.py).
    order: int = 1
    jvp: bool = False  # also the forward-mode derivative along every colour of x, w and b


    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SettingError(
                Parameter("seed", repr(self.seed)), " must be a whole number of 0 or more, like ", Parameter("seed", 42)
            )
        if self.method not in METHODS:
            raise SettingError(Parameter("method", repr(self.method)), f" is not known; use one of {', '.join(METHODS)}")
        if self.differences not in DIFFERENCES:
            raise SettingError(
                Parameter("differences", repr(self.differences)), f" is not known; use one of {', '.join(DIFFERENCES)}"
            )
        if isinstance(self.samples, bool) or not isinstance(self.samples, int) or self.samples < 1:
            raise SettingError(
                Parameter("samples", repr(self.samples)), " must be a whole number of 1 or more, such as ",
                Parameter("samples", 64),
            )
        timeout = self.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
            raise SettingError(
                Parameter("timeout", repr(timeout)), " must be a number of seconds greater than 0, like ",
                Parameter("timeout", f"{DEFAULT_TIMEOUT_S:g}"),
            )
        object.__setattr__(self, "timeout", float(timeout))
        if isinstance(self.order, bool) or not isinstance(self.order, int) or self.order not in ORDERS:
            raise SettingError(
                Parameter("order", repr(self.order)), " must be 1 (the backward) or 2 (also its derivatives: the "
                "double backward), like ", Parameter("order", 2),
            )
        for name, flag in (("forward_check", self.forward_check), ("strict", self.strict), ("jvp", self.jvp)):
            if not isinstance(flag, bool):
                raise SettingError(Parameter(name, repr(flag)), " must be True or False")
        if self.jvp and not self.forward_check:
            raise SettingError(
                Parameter("jvp"), " compares the forward-mode derivative with the reference convolution's, which a "
                "check without the forward check does not use; keep the forward check to use it",
            )
        if self.method == "reference" and not self.forward_check:
            raise SettingError(
                Parameter("method", "reference"), " compares every coordinate with the reference convolution, "
                "which a check without the forward check does not use; use ", Parameter("method", "auto"), " there",
            )
        # Range and sign now; the bound that depends on the dtype when a case asks (`tolerances`).
        if self.relative_step is not None:
            _check_step(self.relative_step)
        if self.rtol is not None:
            _check_rtol(self.rtol)
        scale = dict(self.scale or {})
        unknown = sorted(set(scale) - set(RANDOM_TENSORS))
        if unknown:
            raise SettingError(Parameter("scale"), f" names {unknown}; use {', '.join(RANDOM_TENSORS)}")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in scale.values()):
            raise SettingError(Parameter("scale"), f" {scale} must hold finite numbers")

    @property
    def sampling(self) -> bool:
        """Whether the method compares `samples` coordinates or directions, not every coordinate."""
        return self.method in SAMPLING_METHODS

    def tolerances(self, dtype: Dtype) -> Tolerances:
        """The step and tolerance for a case of `dtype`: the defaults with this run's overrides."""
        chosen = DEFAULT_TOLERANCES[dtype]
        if self.relative_step is None and self.rtol is None:
            return chosen
        tolerances = replace(
            chosen,
            relative_step=chosen.relative_step if self.relative_step is None else self.relative_step,
            rtol=chosen.rtol if self.rtol is None else self.rtol,
        )
        import numpy as np  # here, not at the top: the command line imports this module for --help

        # Rounding noise in a difference is about eps / step (relative); it must stay well below rtol.
        smallest = 10 * float(np.finfo(dtype).eps) / tolerances.rtol
        if tolerances.relative_step < smallest:
            raise SettingError(
                Parameter("step", f"{tolerances.relative_step:g}"), f" is too small for {dtype} with ",
                Parameter("rtol", f"{tolerances.rtol:g}"), ": rounding noise (about eps/step) would exceed the "
                "tolerance; use ", Parameter("step", f"{smallest:.2g}"), " or larger, or a larger ", Parameter("rtol"),
            )
        return tolerances


DEFAULT_BUDGET_S = 60.0
# The layers drawn are small (a correct one checks in well under a second); a case that runs this
# long hangs, and a longer wait would spend the whole budget on it.
DEFAULT_FUZZ_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class FuzzOptions:
    """How long `convgrad fuzz` searches (and shrinks), and the dtypes of the layers it draws."""

    budget_s: float = DEFAULT_BUDGET_S
    dtypes: tuple[Dtype, ...] = ("float64", "float32")

    def __post_init__(self) -> None:
        budget = self.budget_s
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget < math.inf:
            shown = f"{budget:g}" if isinstance(budget, (int, float)) else repr(budget)
            raise SettingError(
                Parameter("budget", shown), " must be a number of seconds greater than 0, like ", Parameter("budget", 60)
            )
        object.__setattr__(self, "budget_s", float(budget))
        if not self.dtypes or any(d not in DTYPES for d in self.dtypes):
            raise SettingError(Parameter("dtypes", repr(self.dtypes)), " must hold float64, float32 or both")
        object.__setattr__(self, "dtypes", tuple(dict.fromkeys(self.dtypes)))
