"""Runs the finite differences one tensor's plan (plan.py) chose.

A coloured result carries a few coordinates recomputed one at a time with the layer's own batch
size (`SpotCheck`); the comparison decides whether they agree (compare.py). If the coloured engine
sees outputs move outside the perturbed receptive fields (a non-local implementation), the tensor
is redone one coordinate at a time here, with a note saying why. An implementation that fails on,
or computes differently, a stacked batch is retried with its own batch size.

Differences: with `auto`, each tensor the forward is affine in (linearity.py) is differenced
one-sided from the shared base output, the others central; the method then reads "coloured,
one-sided" (or "dense, one-sided", "sample, one-sided"). A tensor so small that the linearity
test would cost more calls than one-sided differences save is differenced central without it.
Spot checks and the projections of `--method projection` stay central (a large case's
directions, whose coordinates the reference has already proved, go one-sided): a forward that
bends only where one coordinate moves alone (a layer that keeps its last input and updates its
output by the change, dropping decreases) passes the linearity test, whose direction moves every
coordinate at once, and the coloured calls, but not a central spot check.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from convgrad.geometry import GradientName, LayerGeometry
from convgrad.adapters.failure import ImplementationFailure
from convgrad.numerics.coloured import NonLocalOutputs, StackedBatchDiffers, coloured_forward_calls, coloured_gradient
from convgrad.numerics.dense import dense_gradient
from convgrad.numerics.gradient import (
    TENSOR_INDEX,
    BaseOutput,
    Evidence,
    Forward,
    Inputs,
    NumericalGradient,
    Progress,
    ProgressFactory,
    SpotCheck,
    Workers,
)
from convgrad.numerics.linearity import LINEARITY_CALLS, nonlinearity
from convgrad.numerics.plan import FULL_CHECK_BUDGET, SPOT_CHECKS, DifferencePlan
from convgrad.numerics.projection import projection_gradient

__all__ = ["numerical_gradient", "one_at_a_time", "REDONE_AT_LEAST"]

REDONE_AT_LEAST = 64  # coordinates a redo past the size budget still recomputes one at a time


def _rng(seed: int, gradient: GradientName, linearity: bool = False) -> np.random.Generator:
    """Spot checks and samples draw from (seed, tensor); the linearity test from a stream of its own."""
    key = (seed, TENSOR_INDEX[gradient], 1) if linearity else (seed, TENSOR_INDEX[gradient])
    return np.random.default_rng(key)


def _task(progress: Optional[ProgressFactory], gradient: GradientName, description: str, calls: int) -> Optional[Progress]:
    return progress(f"{gradient} {description}", calls) if progress else None


def numerical_gradient(
    plan: DifferencePlan,
    forward: Forward,
    inputs: Inputs,
    dy: np.ndarray,
    geometry: LayerGeometry,
    *,
    base: Optional[BaseOutput] = None,
    progress: Optional[ProgressFactory] = None,
    workers: Optional[Workers] = None,
) -> NumericalGradient:
    """The numerical gradient of `plan.gradient` as the plan says (numerics/plan.py). One-sided
    differences use `base` (made here when not shared by the caller); coloured calls may be shared
    out over `workers`."""
    gradient, step = plan.gradient, plan.step
    projection = plan.method == "projection"
    if plan.differences == "central" or (projection and (plan.differences == "one-sided" or plan.curved_step is None)):
        return _by_method(plan, forward, inputs, dy, geometry, step, progress, None, workers)
    # Projections stay central, but they too need a smaller step where a curved forward is allowed.
    y, spent = (base or BaseOutput(forward, inputs))()
    note: Optional[str] = None
    bends: tuple[Evidence, ...] = ()
    if plan.differences == "auto":
        note, bends = nonlinearity(forward, inputs, gradient, y, step, plan.rtol, _rng(plan.seed, gradient, linearity=True))
        spent += LINEARITY_CALLS
    advance = _task(progress, gradient, "base and linearity test", spent) if spent else None
    if advance is not None:
        advance(spent)
    # The linearity test's note says which differences were taken; its outputs are evidence, judged
    # against the reference (run/case.py): a bend is a failure for a layer held to the convolution.
    if note and plan.curved_step is not None:
        step = plan.curved_step
        note = f"{note} with a step of {step:.3g} (the forward is curved: the linear step would be too large)"
    one_sided_base = None if note or projection else y
    result = _by_method(plan, forward, inputs, dy, geometry, step, progress, one_sided_base, workers)
    return replace(
        result,
        forward_calls=result.forward_calls + spent,
        note="; ".join(n for n in (note, result.note) if n) or None,
        evidence=result.evidence + bends,
    )


def _by_method(
    plan: DifferencePlan,
    forward: Forward,
    inputs: Inputs,
    dy: np.ndarray,
    geometry: LayerGeometry,
    step: float,
    progress: Optional[ProgressFactory],
    base: Optional[np.ndarray],
    workers: Optional[Workers] = None,
) -> NumericalGradient:
    """The planned method's differences at `step`: central, or one-sided from `base`."""
    gradient = plan.gradient
    size = inputs[TENSOR_INDEX[gradient]].size
    sides = 1 if base is not None else 2
    if plan.method == "coloured":
        return _coloured(forward, inputs, gradient, dy, step, geometry, plan.seed, progress, base, workers)
    if plan.method == "dense":
        return dense_gradient(
            forward, inputs, gradient, dy, step, _task(progress, gradient, "dense", sides * size), base=base
        )
    rng = _rng(plan.seed, gradient)
    if plan.method == "sample":
        coordinates = np.sort(rng.choice(size, size=plan.samples, replace=False))
        advance = _task(progress, gradient, plan.method, sides * plan.samples)
        return dense_gradient(forward, inputs, gradient, dy, step, advance, coordinates, base)
    advance = _task(progress, gradient, "random directions", sides * plan.samples)
    return projection_gradient(forward, inputs, gradient, dy, step, plan.samples, rng, advance, base)


def one_at_a_time(
    forward: Forward,
    inputs: Inputs,
    gradient: GradientName,
    dy: np.ndarray,
    step: float,
    geometry: LayerGeometry,
    *,
    spent: int,
    note: str,
    seed: int,
    progress: Optional[ProgressFactory] = None,
) -> NumericalGradient:
    """Every coordinate redone one at a time, after `spent` forward calls that could not be used;
    past the size budget (plan.py) as many random coordinates as it allows, and the note says so:
    a layer whose coloured differences cannot be trusted is already failing (its outputs moved
    where no perturbation reaches), and redoing a large tensor would take hours."""
    size = inputs[TENSOR_INDEX[gradient]].size
    per_call = geometry.multiply_adds
    affordable = max(REDONE_AT_LEAST, int(FULL_CHECK_BUDGET // (2 * per_call)))
    coordinates = None
    if size > affordable:
        coordinates = np.sort(_rng(seed, gradient).choice(size, size=affordable, replace=False))
        note = (
            f"{note}; {affordable} random coordinates of {size} were redone (all of them would cost "
            f"{2 * size * per_call:.2g} multiply-adds, over the budget of {FULL_CHECK_BUDGET:.2g})"
        )
    calls = 2 * (size if coordinates is None else coordinates.size)
    dense = dense_gradient(
        forward, inputs, gradient, dy, step, _task(progress, gradient, "one at a time", calls), coordinates
    )
    return NumericalGradient(
        values=dense.values,
        step=step,
        method="dense" if coordinates is None else "sample",
        checked=dense.checked,
        forward_calls=spent + dense.forward_calls,
        note=note,
    )


def _coloured(
    forward: Forward,
    inputs: Inputs,
    gradient: GradientName,
    dy: np.ndarray,
    step: float,
    geometry: LayerGeometry,
    seed: int,
    progress: Optional[ProgressFactory],
    base: Optional[np.ndarray],
    workers: Optional[Workers] = None,
) -> NumericalGradient:
    """Coloured differences (one-sided from `base`, if given) and their central spot checks."""
    size = inputs[TENSOR_INDEX[gradient]].size
    spots = np.sort(_rng(seed, gradient).choice(size, size=min(SPOT_CHECKS, size), replace=False))
    planned = coloured_forward_calls(geometry, gradient, one_sided=base is not None) + 2 * spots.size
    advance = _task(progress, gradient, "coloured", planned)
    calls = 0

    def counted(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        try:
            return forward(x, w, b)
        except ImplementationFailure as failure:
            failure.batch = x.shape[0]  # whether the layer declares that batch size is judged later
            raise

    def made_elsewhere(count: int) -> None:  # by the workers the calls were shared out over
        nonlocal calls
        calls += count

    note = None
    evidence: tuple[Evidence, ...] = ()
    try:
        try:
            coloured = coloured_gradient(
                counted, inputs, gradient, dy, step, geometry, advance, base=base, workers=workers,
                made_elsewhere=made_elsewhere,
            )
        except (ImplementationFailure, StackedBatchDiffers) as failure:
            if gradient != "dX":  # dK and db calls already use the layer's own batch
                raise
            what = "forward failed on" if isinstance(failure, ImplementationFailure) else "on"
            note = (
                f"{what} a stacked batch ({failure}); colours were perturbed with the layer's "
                "own batch size instead"
            )
            # Either is a failure of its own (judged in run/case.py); the differences go on at the
            # layer's own batch size so that its gradient is still compared.
            evidence = (failure.evidence,) if isinstance(failure, StackedBatchDiffers) else (Evidence(
                "x stacked with copies into a larger batch", "a conv layer takes any batch size",
                failure=str(failure), without_reference=True, batch=failure.batch,
            ),)
            coloured = coloured_gradient(
                counted, inputs, gradient, dy, step, geometry, advance, batched=False, base=base, workers=workers,
                made_elsewhere=made_elsewhere,
            )
    except NonLocalOutputs as nonlocal_outputs:
        # The note says the coordinates were redone one at a time; the outputs that moved are
        # evidence, judged against the reference in run/case.py.
        redone = one_at_a_time(
            forward, inputs, gradient, dy, step, geometry, spent=calls, note=str(nonlocal_outputs), seed=seed,
            progress=progress,
        )
        found = () if nonlocal_outputs.evidence is None else (nonlocal_outputs.evidence,)
        return replace(redone, evidence=evidence + found)
    spot = dense_gradient(counted, inputs, gradient, dy, step, advance, spots)
    return NumericalGradient(
        values=coloured.values,
        step=step,
        method=coloured.method,
        checked=coloured.checked,
        forward_calls=calls,
        note=note,
        spot_check=SpotCheck(indices=spots, values=spot.values.reshape(-1)[spots]),
        evidence=evidence,
    )
