"""Chooses and runs the finite-difference method for one tensor.

`auto` picks whichever exact method costs fewer forward passes (counted in batch items, since a
batched call costs as much as its items): coloured for any real layer, dense only for tensors so
small that colouring saves nothing.

A coloured result carries a few coordinates recomputed one at a time with the layer's own batch
size (`SpotCheck`); the comparison decides whether they agree (compare.py). If the coloured engine
sees outputs move outside the perturbed receptive fields (a non-local implementation), the tensor
is redone one coordinate at a time here, with a note saying why. An implementation that fails on,
or computes differently, a stacked batch is retried with its own batch size.

Differences: with `auto`, each tensor the forward is affine in (linearity.py) is differenced
one-sided from the shared base output, the others central; the method then reads "coloured,
one-sided" (or "dense, one-sided", "sample, one-sided"). A tensor so small that the linearity
test would cost more calls than one-sided differences save is differenced central without it.
Projections and spot checks stay central: a forward that bends only where one coordinate moves
alone (a layer that keeps its last input and updates its output by the change, dropping
decreases) passes the linearity test, whose direction moves every coordinate at once, and the
coloured calls, but not a central spot check.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional

import numpy as np

from convgrad.geometry import GradientName, LayerGeometry
from convgrad.impl.guard import ImplementationFailure
from convgrad.numerics.coloured import (
    NonLocalOutputs,
    StackedBatchDiffers,
    coloured_forward_calls,
    coloured_gradient,
)
from convgrad.numerics.colouring import input_colouring
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
)
from convgrad.numerics.linearity import LINEARITY_CALLS, nonlinearity
from convgrad.numerics.projection import projection_gradient
from convgrad.options import LINEAR_RELATIVE_STEP, Differences, Method

__all__ = ["numerical_gradient", "one_at_a_time", "resolve_method", "SPOT_CHECKS"]

SPOT_CHECKS = 2  # coordinates per tensor recomputed one at a time to cross-check a coloured result


def _coloured_items(geometry: LayerGeometry, gradient: GradientName, one_sided: bool) -> int:
    """Forward passes of one batch item the coloured method costs, per batch item of the layer."""
    if gradient == "dX":
        return (1 if one_sided else 2) * len(input_colouring(geometry).used())
    return coloured_forward_calls(geometry, gradient, one_sided)


def resolve_method(
    method: Method, geometry: LayerGeometry, gradient: GradientName, one_sided: bool = False
) -> Method:
    """The method actually used: `auto` becomes coloured or dense, whichever is cheaper."""
    if method != "auto":
        return method
    size = math.prod(geometry.shape_of(gradient))
    dense_items = (1 if one_sided else 2) * size
    # On a tie dense wins: same cost, and it assumes nothing about locality.
    spot_checks = 2 * min(SPOT_CHECKS, size)
    return "dense" if dense_items <= _coloured_items(geometry, gradient, one_sided) + spot_checks else "coloured"


def _rng(seed: int, gradient: GradientName, linearity: bool = False) -> np.random.Generator:
    """Spot checks and samples draw from (seed, tensor); the linearity test from a stream of its own."""
    key = (seed, TENSOR_INDEX[gradient], 1) if linearity else (seed, TENSOR_INDEX[gradient])
    return np.random.default_rng(key)


def _task(progress: Optional[ProgressFactory], gradient: GradientName, description: str, calls: int) -> Optional[Progress]:
    return progress(f"{gradient} {description}", calls) if progress else None


def numerical_gradient(
    method: Method,
    forward: Forward,
    inputs: Inputs,
    gradient: GradientName,
    dy: np.ndarray,
    step: float,
    geometry: LayerGeometry,
    *,
    samples: int,
    seed: int,
    progress: Optional[ProgressFactory] = None,
    differences: Differences = "central",
    base: Optional[BaseOutput] = None,
    rtol: float = 0.0,
    curved: bool = False,
) -> NumericalGradient:
    """The numerical gradient of one tensor by `method` (see options.py for the methods and the
    differences). One-sided differences use `base` (made here when not shared by the caller);
    `rtol` is the check's tolerance, which the linearity test keeps a margin below. `curved`: the
    forward may legitimately be curved (it is not held to the reference convolution), so where it
    is, the differences take a step fit for a smooth function; a layer that claims to be a
    convolution is differenced at the linear step, where a bend shows as a mismatch."""
    chosen = resolve_method(method, geometry, gradient, one_sided=differences != "central")
    if differences == "auto" and chosen != "projection" and not _one_sided_pays(chosen, geometry, gradient, samples):
        differences = "central"
    if differences == "central" or (chosen == "projection" and (differences == "one-sided" or not curved)):
        return _by_method(chosen, forward, inputs, gradient, dy, step, geometry, samples, seed, progress, None)
    # Projections stay central, but they too need a smaller step where a curved forward is allowed.
    y, spent = (base or BaseOutput(forward, inputs))()
    note: Optional[str] = None
    bends: tuple[Evidence, ...] = ()
    if differences == "auto":
        note, bends = nonlinearity(forward, inputs, gradient, y, step, rtol, _rng(seed, gradient, linearity=True))
        spent += LINEARITY_CALLS
    advance = _task(progress, gradient, "base and linearity test", spent) if spent else None
    if advance is not None:
        advance(spent)
    # The linearity test's note says which differences were taken; its outputs are evidence, judged
    # against the reference (run/case.py): a bend is a failure for a layer held to the convolution.
    if note and curved:
        step = curved_step(step, inputs[0].dtype)
        note = f"{note} with a step of {step:.3g} (the forward is curved: the linear step would be too large)"
    one_sided_base = None if note or chosen == "projection" else y
    result = _by_method(chosen, forward, inputs, gradient, dy, step, geometry, samples, seed, progress, one_sided_base)
    return replace(
        result,
        forward_calls=result.forward_calls + spent,
        note="; ".join(n for n in (note, result.note) if n) or None,
        evidence=result.evidence + bends,
    )


def _one_sided_pays(chosen: Method, geometry: LayerGeometry, gradient: GradientName, samples: int) -> bool:
    """Whether one-sided differences save more forward calls (in batch items) than the linearity
    test that must come first costs."""
    size = math.prod(geometry.shape_of(gradient))
    if chosen == "coloured":  # half the colours' items (the spot checks stay central)
        saved = _coloured_items(geometry, gradient, one_sided=False) - _coloured_items(geometry, gradient, one_sided=True)
    else:  # dense or sample: one call per coordinate instead of two
        saved = size if chosen == "dense" else min(samples, size)
    return saved > LINEARITY_CALLS


def curved_step(step: float, dtype: np.dtype) -> float:
    """The step for a forward that is not affine in the tensor: central differences then have a
    truncation error of order h^2 and a rounding error of order eps/h, balanced at h ~ eps^(1/3) of
    the scale. `step` is the linear one, LINEAR_RELATIVE_STEP of the scale (or the user's, which
    is scaled alike)."""
    return step * float(np.finfo(dtype).eps) ** (1 / 3) / LINEAR_RELATIVE_STEP


def _by_method(
    chosen: Method,
    forward: Forward,
    inputs: Inputs,
    gradient: GradientName,
    dy: np.ndarray,
    step: float,
    geometry: LayerGeometry,
    samples: int,
    seed: int,
    progress: Optional[ProgressFactory],
    base: Optional[np.ndarray],
) -> NumericalGradient:
    """The chosen method's differences: central, or one-sided from `base`."""
    size = inputs[TENSOR_INDEX[gradient]].size
    sides = 1 if base is not None else 2
    if chosen == "coloured":
        return _coloured(forward, inputs, gradient, dy, step, geometry, seed, progress, base)
    if chosen == "dense":
        return dense_gradient(
            forward, inputs, gradient, dy, step, _task(progress, gradient, "dense", sides * size), base=base
        )
    count = min(samples, size)  # more directions than coordinates add nothing
    rng = _rng(seed, gradient)
    if chosen == "sample":
        coordinates = np.sort(rng.choice(size, size=count, replace=False))
        advance = _task(progress, gradient, chosen, sides * count)
        return dense_gradient(forward, inputs, gradient, dy, step, advance, coordinates, base)
    advance = _task(progress, gradient, chosen, 2 * count)
    return projection_gradient(forward, inputs, gradient, dy, step, count, rng, advance)


def one_at_a_time(
    forward: Forward,
    inputs: Inputs,
    gradient: GradientName,
    dy: np.ndarray,
    step: float,
    *,
    spent: int,
    note: str,
    progress: Optional[ProgressFactory] = None,
) -> NumericalGradient:
    """Every coordinate redone one at a time, after `spent` forward calls that could not be used."""
    size = inputs[TENSOR_INDEX[gradient]].size
    dense = dense_gradient(forward, inputs, gradient, dy, step, _task(progress, gradient, "one at a time", 2 * size))
    return NumericalGradient(
        values=dense.values,
        step=step,
        method="dense",
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

    note = None
    evidence: tuple[Evidence, ...] = ()
    try:
        try:
            coloured = coloured_gradient(counted, inputs, gradient, dy, step, geometry, advance, base=base)
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
                counted, inputs, gradient, dy, step, geometry, advance, batched=False, base=base
            )
    except NonLocalOutputs as nonlocal_outputs:
        # The note says the coordinates were redone one at a time; the outputs that moved are
        # evidence, judged against the reference in run/case.py.
        redone = one_at_a_time(
            forward, inputs, gradient, dy, step, spent=calls, note=str(nonlocal_outputs), progress=progress
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
