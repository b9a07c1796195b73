"""Chooses and runs the finite-difference method for one tensor, falling back to dense if needed.

`auto` picks whichever exact method costs fewer forward passes (counted in batch items, since a
batched call costs as much as its items): coloured for any real layer, dense only for tensors so
small that colouring saves nothing.

A coloured result is not taken on trust. Besides the locality watch inside the coloured engine, a
few random coordinates are recomputed one at a time with the layer's own batch size; if they
disagree with the coloured values (a non-local implementation the watch could not see, or one
that behaves differently on a stacked batch), the tensor is redone one coordinate at a time, and
the result carries a note saying why. An implementation that fails on a stacked batch is retried
with its own batch size.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from convgrad.coloured_differences import (
    NonLocalOutputs,
    StackedBatchDiffers,
    coloured_forward_calls,
    coloured_gradient,
)
from convgrad.colouring import input_colouring
from convgrad.finite_differences import TENSOR_INDEX, Forward, NumericalGradient, Progress, dense_gradient
from convgrad.geometry import LayerGeometry
from convgrad.implementation import ImplementationFailure
from convgrad.projection import projection_gradient

__all__ = ["numerical_gradient", "resolve_method", "ProgressFactory"]

# Called with a description and the number of forward calls planned; returns the advance callback.
ProgressFactory = Callable[[str, int], Progress]

SPOT_CHECKS = 2  # coordinates per tensor recomputed one at a time to cross-check a coloured result


def _coloured_items(geometry: LayerGeometry, gradient: str) -> int:
    """Forward passes of one batch item the coloured method costs, per batch item of the layer."""
    if gradient == "dX":
        return 2 * len(input_colouring(geometry).used())
    return coloured_forward_calls(geometry, gradient)


def resolve_method(method: str, geometry: LayerGeometry, gradient: str) -> str:
    """The method actually used: `auto` becomes coloured or dense, whichever is cheaper."""
    if method != "auto":
        return method
    size = math.prod((geometry.x_shape, geometry.w_shape, geometry.b_shape)[TENSOR_INDEX[gradient]])
    dense_items = 2 * size
    # On a tie dense wins: same cost, and it assumes nothing about locality.
    spot_checks = 2 * min(SPOT_CHECKS, size)
    return "dense" if dense_items <= _coloured_items(geometry, gradient) + spot_checks else "coloured"


def numerical_gradient(
    method: str,
    forward: Forward,
    inputs: tuple[np.ndarray, np.ndarray, np.ndarray],
    gradient: str,
    dy: np.ndarray,
    step: float,
    geometry: LayerGeometry,
    *,
    analytical: np.ndarray,
    samples: int,
    seed: int,
    tolerance: float,
    floor: float = 0.0,
    progress: ProgressFactory | None = None,
) -> NumericalGradient:
    """The numerical gradient of one tensor by `method` (see methods.py)."""
    chosen = resolve_method(method, geometry, gradient)
    size = inputs[TENSOR_INDEX[gradient]].size
    rng = np.random.default_rng((seed, TENSOR_INDEX[gradient]))

    def task(description: str, calls: int) -> Progress | None:
        return progress(f"{gradient} {description}", calls) if progress else None

    if chosen == "coloured":
        spots = np.sort(rng.choice(size, size=min(SPOT_CHECKS, size), replace=False))
        advance = task("coloured", coloured_forward_calls(geometry, gradient) + 2 * spots.size)
        calls = 0

        def counted(*args: np.ndarray) -> np.ndarray:
            nonlocal calls
            calls += 1
            return forward(*args)

        note = None
        try:
            try:
                coloured = coloured_gradient(counted, inputs, gradient, dy, step, geometry, advance)
            except (ImplementationFailure, StackedBatchDiffers) as failure:
                if gradient != "dX":  # dK and db calls already use the layer's own batch
                    raise
                what = "forward failed on" if isinstance(failure, ImplementationFailure) else "on"
                note = (
                    f"{what} a stacked batch ({failure}); colours were perturbed with the layer's "
                    "own batch size instead"
                )
                coloured = coloured_gradient(counted, inputs, gradient, dy, step, geometry, advance, batched=False)
            spot = dense_gradient(counted, inputs, gradient, dy, step, advance, spots)
            _cross_check(coloured.values, spot.values, spots, tolerance, floor)
        except NonLocalOutputs as nonlocal_outputs:
            dense = dense_gradient(forward, inputs, gradient, dy, step, task("one at a time", 2 * size))
            return NumericalGradient(
                values=dense.values,
                step=step,
                method="dense",
                checked=dense.checked,
                forward_calls=calls + dense.forward_calls,
                note=str(nonlocal_outputs),
            )
        return NumericalGradient(
            values=coloured.values,
            step=step,
            method="coloured",
            checked=coloured.checked,
            forward_calls=calls,
            note=note,
        )
    if chosen == "dense":
        return dense_gradient(forward, inputs, gradient, dy, step, task("dense", 2 * size))
    count = min(samples, size)  # more directions than coordinates add nothing
    if chosen == "sample":
        coordinates = np.sort(rng.choice(size, size=count, replace=False))
        return dense_gradient(forward, inputs, gradient, dy, step, task("sample", 2 * count), coordinates)
    return projection_gradient(
        forward, inputs, gradient, dy, step, analytical, count, rng, task("projection", 2 * count)
    )


def _cross_check(
    coloured: np.ndarray, spot: np.ndarray, spots: np.ndarray, tolerance: float, floor: float
) -> None:
    """Raise NonLocalOutputs when coloured and one-at-a-time values disagree at the spot checks.

    The two agree to rounding for any implementation that is local and treats batch items
    independently; a disagreement beyond the check's own tolerance means one of those failed.
    """
    flat_coloured = coloured.reshape(-1)[spots]
    flat_spot = spot.reshape(-1)[spots]
    scale = max(float(np.max(np.abs(coloured), initial=0.0)), float(np.max(np.abs(flat_spot), initial=0.0)), floor)
    worst = float(np.max(np.abs(flat_coloured - flat_spot), initial=0.0))
    if worst > tolerance * scale:
        raise NonLocalOutputs(
            f"coloured and one-at-a-time differences disagree at {spots.size} spot-checked "
            f"coordinates (by {worst / scale:.2e} of the scale): the implementation is not local "
            "or treats batch items differently; checked one coordinate at a time"
        )
