"""Chooses and runs the finite-difference method for one tensor, falling back to dense if needed.

`auto` picks whichever exact method costs fewer forward passes (counted in batch items, since a
batched call costs as much as its items): coloured for any real layer, dense only for tensors so
small that colouring saves nothing. A coloured check that finds the implementation non-local is
redone one coordinate at a time, and the result carries a note saying why.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from convgrad.coloured_differences import NonLocalOutputs, coloured_forward_calls, coloured_gradient
from convgrad.colouring import input_colouring
from convgrad.finite_differences import TENSOR_INDEX, Forward, NumericalGradient, Progress, dense_gradient
from convgrad.geometry import LayerGeometry
from convgrad.projection import projection_gradient

__all__ = ["numerical_gradient", "resolve_method", "ProgressFactory"]

# Called with a description and the number of forward calls planned; returns the advance callback.
ProgressFactory = Callable[[str, int], Progress]


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
    return "dense" if dense_items <= _coloured_items(geometry, gradient) else "coloured"


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
    progress: ProgressFactory | None = None,
) -> NumericalGradient:
    """The numerical gradient of one tensor by `method` (see methods.py)."""
    chosen = resolve_method(method, geometry, gradient)
    size = inputs[TENSOR_INDEX[gradient]].size
    rng = np.random.default_rng((seed, TENSOR_INDEX[gradient]))

    def task(description: str, calls: int) -> Progress | None:
        return progress(f"{gradient} {description}", calls) if progress else None

    if chosen == "coloured":
        advance = task("coloured", coloured_forward_calls(geometry, gradient))
        calls = 0

        def counted(*args: np.ndarray) -> np.ndarray:
            nonlocal calls
            calls += 1
            return forward(*args)

        try:
            return coloured_gradient(counted, inputs, gradient, dy, step, geometry, advance)
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
    if chosen == "dense":
        return dense_gradient(forward, inputs, gradient, dy, step, task("dense", 2 * size))
    count = min(samples, size) if chosen == "sample" else samples
    if chosen == "sample":
        coordinates = np.sort(rng.choice(size, size=count, replace=False))
        return dense_gradient(forward, inputs, gradient, dy, step, task("sample", 2 * count), coordinates)
    return projection_gradient(
        forward, inputs, gradient, dy, step, analytical, count, rng, task("projection", 2 * count)
    )
