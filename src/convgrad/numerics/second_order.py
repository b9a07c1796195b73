"""The derivatives of the backward, read off differences of the layer's own backward and forward.

Let E(x, w, b, dy) = <dy, O(x, w, b)>. The backward returns its gradient with respect to x, w
and b (dX, dK, db), and the forward is its gradient with respect to dy (O). So the Jacobian of
the map z = (x, w, b, dy) -> (dX, dK, db, O) is the Hessian H of E, which is symmetric. The
derivatives a framework computes by differentiating the backward again, those of <u, dX> + <v, dK>
+ <c, db>, are H t for t = (u, v, c, 0); finite differences of the same map along t are H t too:

    (dX, dK, db, O)(z + s t) - (dX, dK, db, O)(z - s t) = 2 s H t

Every coordinate of H t from two backward and two forward calls, whatever the layer's size (no
colouring needed: the backward's outputs are the whole of x, w and b at once). One tensor moves at
a time, x along u, w along v, b along c, so each change is one block of H: moving x along u,
dK changes by 2s d<u, dX>/dw and O by 2s d<u, dX>/ddy; dX and db must not change (a convolution's
dX does not depend on x, nor db on x). The layer is linear in x and in w and affine in b, and its
backward linear in each of x, w and dy, so central differences are exact up to rounding
(docs/MATH.md: "Second order").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

__all__ = ["MovedTensor", "Changes", "backward_changes", "MOVED", "OUTPUTS", "CALLS_PER_MOVE"]

MovedTensor = str  # "x", "w" or "b"
MOVED: tuple[MovedTensor, ...] = ("x", "w", "b")
OUTPUTS = ("dX", "dK", "db", "O")  # what is read after each move
CALLS_PER_MOVE = 4  # a backward and a forward call on each side

Backward = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], Sequence[np.ndarray]]  # (dy, x, w, b)
Forward = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Changes:
    """Moving one tensor along a direction: each output's change per unit of the direction."""

    moved: MovedTensor
    step: float  # s: the tensor moved by +-s times its direction
    per_output: dict[str, np.ndarray]  # "dX", "dK", "db", "O" -> float64, (f(z + s t) - f(z - s t)) / 2s
    calls: int  # forward and backward calls made


def backward_changes(
    forward: Forward,
    backward: Backward,
    inputs: tuple[np.ndarray, np.ndarray, np.ndarray],
    dy: np.ndarray,
    directions: dict[MovedTensor, np.ndarray],
    moves: dict[MovedTensor, float],
) -> list[Changes]:
    """For each tensor in `directions` (x, w or b: a direction of its shape and dtype), the change
    of dX, dK, db and O when it moves along it, centrally, by s = moves[T] / max|t| (relative_step
    times T's perturbation scale, numerics/step.py: large enough to move O past its rounding). The
    change is divided by 2s, one scalar for every coordinate: what the dtype stores of T + st moves
    each coordinate by 2st within about 3 eps of max|t|, far inside the tolerance."""
    found = []
    for moved, direction in directions.items():
        index = MOVED.index(moved)
        tensor = inputs[index]
        largest = float(np.max(np.abs(direction), initial=0.0))
        step = moves[moved] / largest if largest > 0 else moves[moved]
        results = []
        for sign in (1.0, -1.0):
            args = list(inputs)
            args[index] = (tensor.astype(np.float64) + sign * step * direction.astype(np.float64)).astype(tensor.dtype)
            x, w, b = args
            gradients = backward(dy, x, w, b)
            results.append((*gradients, forward(x, w, b)))
        per_output = {
            name: (np.asarray(plus, dtype=np.float64) - np.asarray(minus, dtype=np.float64)) / (2.0 * step)
            for name, plus, minus in zip(OUTPUTS, *results)
        }
        found.append(Changes(moved, step, per_output, calls=CALLS_PER_MOVE))
    return found
