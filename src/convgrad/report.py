"""The data a check produces: one tensor's comparison, one case's report, a suite of cases.

Renderers (table, JSON) read these and never compute; the arrays kept for diagnosis are left out
of equality and repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from convgrad.diagnosis import Diagnosis
from convgrad.geometry import LayerGeometry
from convgrad.locate import Location
from convgrad.tolerances import Tolerances

__all__ = ["Coordinate", "TensorComparison", "CaseReport", "SuiteReport"]


@dataclass(frozen=True)
class Coordinate:
    """One compared coordinate: where, the two values, and its error relative to the tensor scale."""

    index: tuple[int, ...]
    analytical: float
    numerical: float
    abs_error: float
    rel_error: float


@dataclass(frozen=True)
class TensorComparison:
    """How one tensor (O, dX, dK or db) compares with its reference.

    For dX, dK and db the reference is the numerical gradient; for O it is the reference forward.
    `shape` is what the implementation returned (None if it returned nothing usable).
    """

    name: str
    expected_shape: tuple[int, ...]
    shape: Optional[tuple[int, ...]]
    tolerance: float
    passed: bool
    method: str  # how the reference values were obtained: dense, ..., or "reference forward"
    checked: int = 0  # coordinates compared
    total: int = 0  # coordinates in the tensor
    mismatches: int = 0  # coordinates beyond the tolerance
    max_abs_error: Optional[float] = None
    max_rel_error: Optional[float] = None
    scale: Optional[float] = None  # the magnitude errors are measured against
    worst: tuple[Coordinate, ...] = ()  # the worst coordinates, worst first (capped)
    forward_calls: int = 0
    step: Optional[float] = None
    reason: Optional[str] = None  # why it failed, one line
    note: Optional[str] = None  # something the user should know even when it passed
    analytical: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    numerical: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    location: Optional[Location] = None  # where a failing tensor is wrong (locate.py)

    @property
    def worst_index(self) -> Optional[tuple[int, ...]]:
        return self.worst[0].index if self.worst else None


@dataclass(frozen=True)
class CaseReport:
    """Everything one check of one layer found."""

    name: str
    geometry: LayerGeometry
    implementation: str
    seed: int
    tolerances: Tolerances
    tensors: tuple[TensorComparison, ...]
    elapsed_s: float
    forward_calls: int
    warnings: tuple[str, ...] = ()
    reason: Optional[str] = None  # a failure of the case as a whole, e.g. forward raised
    skipped: Optional[str] = None  # why the case was not run: the implementation cannot express it
    diagnoses: tuple[Diagnosis, ...] = ()  # the classic mistakes that explain the failures
    method: str = "auto"  # the --method asked for (each tensor says which one it got)
    samples: Optional[int] = None  # coordinates or directions per tensor, for sample and projection
    forward_check: bool = True  # whether O was compared with the reference convolution

    @property
    def passed(self) -> bool:
        return self.skipped is None and self.reason is None and all(t.passed for t in self.tensors)

    @property
    def failed(self) -> bool:
        """Neither passed nor skipped. A skipped case is neither a pass nor a failure."""
        return self.skipped is None and not self.passed

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.geometry.y_shape

    @property
    def failing(self) -> tuple[TensorComparison, ...]:
        return tuple(t for t in self.tensors if not t.passed)

    def tensor(self, name: str) -> TensorComparison:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)


@dataclass(frozen=True)
class SuiteReport:
    """One or more cases checked in one run."""

    cases: tuple[CaseReport, ...]

    @property
    def passed(self) -> bool:
        """No case failed, and at least one was checked: a run that checked nothing is no pass."""
        return not any(case.failed for case in self.cases) and any(case.skipped is None for case in self.cases)

    def count(self, status: str) -> int:
        """How many cases 'passed', 'failed' or were 'skipped'."""
        test = {"passed": lambda c: c.passed, "failed": lambda c: c.failed, "skipped": lambda c: c.skipped is not None}
        return sum(1 for case in self.cases if test[status](case))
