"""What a numerical gradient is, and the callables the finite-difference engines take."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol, Sequence, TypeVar

import numpy as np

from convgrad.geometry import GradientName

__all__ = ["Evidence", "NumericalGradient", "SpotCheck", "BaseOutput", "Forward", "Progress", "ProgressFactory", "Inputs",
           "TENSOR_INDEX", "Share", "Workers"]

# Which argument of forward(x, w, b) each gradient perturbs.
TENSOR_INDEX: dict[GradientName, int] = {"dX": 0, "dK": 1, "db": 2}

Inputs = tuple[np.ndarray, np.ndarray, np.ndarray]  # x, w, b
Forward = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
Progress = Callable[[int], None]  # called with the number of forward calls just made
# Called with a description and the number of forward calls planned; returns the advance callback.
ProgressFactory = Callable[[str, int], Progress]

Result = TypeVar("Result")
Share = Callable[[Optional[Progress]], Result]  # a run of forward calls, told how to report the calls it makes


class Workers(Protocol):
    """Processes a tensor's coloured calls can be shared out over (harness/workers.py).

    `run` runs shares[0] in this process and the others in workers, and returns their results in
    order; should one raise, the first in order is raised here, as running them one after another
    would have. `made_elsewhere` is told how many forward calls each worker's share made;
    `calls_before[i]`: the forward calls shares 0..i-1 make, which one process would have made
    before share i."""

    count: int

    def run(
        self, shares: Sequence[Share[Result]], progress: Optional[Progress], made_elsewhere: Callable[[int], None],
        calls_before: Sequence[int],
    ) -> list[Result]: ...


@dataclass(frozen=True)
class SpotCheck:
    """A few coordinates of a coloured result recomputed one at a time, to be compared with it."""

    indices: np.ndarray  # flat indices into the tensor
    values: np.ndarray  # their one-at-a-time numerical derivatives


@dataclass(frozen=True)
class Evidence:
    """An output the layer returned while being differenced that a convolution would have returned
    differently: the engine found it (a batch, a perturbation, a bend) and compare-time code judges
    it against the reference (run/case.py). `failure`: the call raised instead."""

    what: str  # "the output of x as one of 24 items in a batch"
    meaning: str  # what it means when it is wrong, for the reason
    inputs: Optional[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default=None, repr=False)
    output: Optional[np.ndarray] = field(default=None, repr=False)
    failure: Optional[str] = None
    without_reference: bool = False  # wrong even when the layer is not held to the reference
    batch: Optional[int] = None  # the batch size the layer was called at, when not the case's


@dataclass(frozen=True)
class NumericalGradient:
    """The numerical gradient of one tensor and what it cost."""

    values: np.ndarray  # float64, the tensor's shape; NaN where a coordinate was not computed
    step: float
    method: str  # dense, coloured, sample or projection; ", one-sided" added when differenced so
    checked: int  # coordinates (or, for projection, directions) computed
    forward_calls: int
    note: Optional[str] = None  # why the method differs from the one asked for, if it does
    spot_check: Optional[SpotCheck] = field(default=None, repr=False, compare=False)
    # method "projection": the perturbations actually applied (directions x tensor size) and the
    # numerical derivative along each; the analytical side is <analytical, direction>.
    directions: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    projections: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    evidence: tuple[Evidence, ...] = field(default=(), repr=False, compare=False)


class BaseOutput:
    """y(x, w, b) at the unperturbed inputs, made by one fresh call when first asked for and then
    shared by every tensor's one-sided differences.

    The numerics make this call themselves (through the same guarded forward as every
    perturbation) rather than reuse the output of the check's first call: a layer that keeps state
    between calls then disagrees with its own base, and the differences show it.
    """

    def __init__(self, forward: Forward, inputs: Inputs) -> None:
        self._forward = forward
        self._inputs = inputs
        self._y: Optional[np.ndarray] = None

    def __call__(self) -> tuple[np.ndarray, int]:
        """The base output and the forward calls this request made (1 the first time, then 0)."""
        if self._y is not None:
            return self._y, 0
        self._y = self._forward(*self._inputs)
        return self._y, 1
