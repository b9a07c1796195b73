"""How one tensor is differenced, settled once before its first forward call: the plan a report records.

Every choice the finite differences make is resolved here, from the options and the geometry:

    method       coloured or dense (every coordinate), sample, projection, or reference (a large
                 case: every coordinate against the reference backward, the backward tied to the
                 layer's own forward along a few random directions)
    differences  central; one-sided; or auto: one-sided once the linearity test has shown the
                 forward affine in the tensor (numerics/linearity.py), else central
    step         numerics/step.py's linear step; `curved_step` is the one taken instead where
                 the layer is allowed to be curved and the linearity test shows it is

`auto` becomes `reference` for a case whose every-coordinate differences would cost more than
FULL_CHECK_BUDGET multiply-adds, when the layer is held to the reference convolution: there the
reference already proves every coordinate of O, dX, dK and db, and what is left to prove (that
the backward is the derivative of the forward the layer computes) needs a few directions, not
every coordinate. `--method coloured` asks for every coordinate by differences at any size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from convgrad.geometry import GRADIENT_NAMES, GradientName, LayerGeometry
from convgrad.numerics.coloured import coloured_forward_calls
from convgrad.numerics.colouring import input_colouring
from convgrad.numerics.gradient import Inputs
from convgrad.numerics.linearity import LINEARITY_CALLS
from convgrad.numerics.step import step_for
from convgrad.options import LINEAR_RELATIVE_STEP, CheckOptions, Differences, Method

__all__ = [
    "DifferencePlan",
    "PlannedMethod",
    "plan_differences",
    "resolve_method",
    "differences_work",
    "curved_step",
    "FULL_CHECK_BUDGET",
    "REFERENCE_DIRECTIONS",
    "SPOT_CHECKS",
]

PlannedMethod = Literal["coloured", "dense", "sample", "projection", "reference"]

SPOT_CHECKS = 2  # coordinates per tensor recomputed one at a time to cross-check a coloured result
# Multiply-adds of the layer's forward that the every-coordinate differences of one case may cost:
# about a second of a NumPy convolution. The standard suite's small cases and a learner's layer
# stay far below it (the seed check: 2e6); a ResNet-50 3x3 layer is three thousand times over.
FULL_CHECK_BUDGET = 5e7
# Random directions per tensor that tie a large case's backward to its forward: one wrong
# coordinate is caught against the reference, so these only need to see a backward that is not the
# forward's derivative at all (another layer's, a stale one), which moves every direction.
REFERENCE_DIRECTIONS = 8


@dataclass(frozen=True)
class DifferencePlan:
    """How one tensor's numerical gradient is computed, every choice resolved."""

    gradient: GradientName
    method: PlannedMethod
    differences: Differences
    step: float
    curved_step: Optional[float]  # None: the layer is held to the convolution, a bend is a failure
    samples: int  # coordinates (sample) or directions (projection, reference)
    seed: int
    rtol: float  # the check's tolerance; the linearity test keeps a margin below it
    why: Optional[str] = None  # why `auto` chose this method, when it is not the usual one

    @property
    def directions(self) -> int:
        """Random directions differenced (projection and reference), else 0."""
        return self.samples if self.method in ("projection", "reference") else 0


def _coloured_items(geometry: LayerGeometry, gradient: GradientName, one_sided: bool) -> int:
    """Forward passes of one batch item the coloured method costs, per batch item of the layer."""
    if gradient == "dX":
        return (1 if one_sided else 2) * len(input_colouring(geometry).used())
    return coloured_forward_calls(geometry, gradient, one_sided)


def resolve_method(
    method: Method, geometry: LayerGeometry, gradient: GradientName, one_sided: bool = False
) -> PlannedMethod:
    """Between the every-coordinate methods: coloured or dense, whichever costs fewer batch items."""
    if method not in ("auto", "coloured"):
        return method  # type: ignore[return-value]  # sample, projection, dense, reference
    size = math.prod(geometry.shape_of(gradient))
    dense_items = (1 if one_sided else 2) * size
    # On a tie dense wins: same cost, and it assumes nothing about locality.
    spot_checks = 2 * min(SPOT_CHECKS, size)
    if method == "auto" and dense_items <= _coloured_items(geometry, gradient, one_sided) + spot_checks:
        return "dense"
    return "coloured"


def differences_work(geometry: LayerGeometry) -> float:
    """Multiply-adds of the layer's forward that checking every coordinate of dX, dK and db by
    one-sided differences costs (the cheapest the linearity test allows)."""
    items = sum(min(_coloured_items(geometry, g, True), math.prod(geometry.shape_of(g))) for g in GRADIENT_NAMES)
    return float(items) * geometry.multiply_adds  # an item-pass times the batch: the layer's own calls


def curved_step(step: float, dtype: np.dtype | str) -> float:
    """The step for a forward that is not affine in the tensor: central differences then have a
    truncation error of order h^2 and a rounding error of order eps/h, balanced at h ~ eps^(1/3) of
    the scale. `step` is the linear one, LINEAR_RELATIVE_STEP of the scale (or the user's, scaled
    alike)."""
    return step * float(np.finfo(dtype).eps) ** (1 / 3) / LINEAR_RELATIVE_STEP


def plan_differences(
    gradient: GradientName,
    geometry: LayerGeometry,
    options: CheckOptions,
    inputs: Inputs,
    output: np.ndarray,
    *,
    method: Optional[Method] = None,
    samples: Optional[int] = None,
    seed: Optional[int] = None,
    budget: Optional[float] = FULL_CHECK_BUDGET,
) -> DifferencePlan:
    """The plan for `gradient` at these inputs (`output`: the forward at them, which the step is
    scaled by). `method`, `samples`, `seed` override the options' (the later calls' projections);
    `budget` None: never a large case (a derivation proving its own numbers)."""
    tolerances = options.tolerances(geometry.dtype)
    asked = method or options.method
    step = step_for(gradient, inputs, output, tolerances)
    why = None
    if asked == "auto" and options.forward_check and budget is not None and differences_work(geometry) > budget:
        asked = "reference"
        why = (
            f"a large case (every coordinate by differences would cost {differences_work(geometry):.2g} "
            f"multiply-adds, over {budget:.2g}): every coordinate against the float64 reference, the "
            f"backward tied to the layer's forward along {REFERENCE_DIRECTIONS} random directions"
        )
    chosen = resolve_method(asked, geometry, gradient, one_sided=options.differences != "central")
    count = samples if samples is not None else REFERENCE_DIRECTIONS if chosen == "reference" else options.samples
    differences = options.differences
    # Projections keep the linearity test: where a curved forward is allowed it sets their step.
    if differences == "auto" and chosen != "projection" and not _one_sided_pays(chosen, geometry, gradient, count):
        differences = "central"
    return DifferencePlan(
        gradient=gradient,
        method=chosen,
        differences=differences,
        step=step,
        curved_step=None if options.forward_check else curved_step(step, geometry.dtype),
        samples=min(count, math.prod(geometry.shape_of(gradient))),  # more than the coordinates add nothing
        seed=options.seed if seed is None else seed,
        rtol=tolerances.rtol,
        why=why,
    )


def _one_sided_pays(chosen: PlannedMethod, geometry: LayerGeometry, gradient: GradientName, samples: int) -> bool:
    """Whether one-sided differences save more forward calls (in batch items) than the linearity
    test that must come first costs."""
    size = math.prod(geometry.shape_of(gradient))
    if chosen == "coloured":  # half the colours' items (the spot checks stay central)
        saved = _coloured_items(geometry, gradient, one_sided=False) - _coloured_items(geometry, gradient, one_sided=True)
    elif chosen == "dense":  # one call per coordinate instead of two
        saved = size
    else:  # sample, projection, reference: one call per coordinate or direction instead of two
        saved = min(samples, size)
    return saved > LINEARITY_CALLS
