"""The data a check produces: one tensor's comparison, one case's report, a suite of cases.

Everything a renderer shows is here, as a field or a property computed from fields: renderers
(render/) read these and never compute. The arrays kept for diagnosis are left out of equality
and repr. A case's report is built by `CaseReport.build`, the one place that turns a run's
options into the settings a report records.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Iterable, Literal, Optional

import numpy as np

from convgrad.geometry import LayerGeometry, TensorName
from convgrad.numerics.plan import DifferencePlan
from convgrad.options import CheckOptions, Method, Tolerances

# One status for each row, later call and case, set when it is built. In order of precedence (a
# case or a call takes the first of its parts'): "error": it could not be checked (the
# implementation raised, returned something that is not an array of the expected shape, hung or
# killed its process); "failed": it ran and is wrong (a gradient that differs, NaN or Inf values,
# an input written into, state kept between calls); "lost precision": it failed only by carrying
# fewer bits than its dtype, for a likely cause that was named; "not checked": left unchecked
# because an earlier call of the same case failed (or the case could not start: then the case
# itself is an error); "skipped": not checked by declaration (a case
# the implementation cannot express; a tensor the layer does not have, like db without a bias);
# "passed".
Status = Literal["error", "failed", "lost precision", "not checked", "skipped", "passed"]
STATUSES: tuple[Status, ...] = ("error", "failed", "lost precision", "not checked", "skipped", "passed")
NotCompared = Literal["error", "failed", "not checked"]  # why a tensor was not compared
WRONG: frozenset[Status] = frozenset({"error", "failed", "lost precision"})  # a part that is itself wrong


def first_status(statuses: Iterable[Status]) -> Status:
    """The status of a whole made of parts with `statuses`: the first of them in precedence order
    ("passed" for no parts). A skipped part (a tensor the layer does not have) does not make its
    whole skipped: a whole is skipped only by its own declaration."""
    present = set(statuses) - {"skipped"}
    return next((s for s in STATUSES if s in present), "passed")


__all__ = [
    "Coordinate", "Precision", "TensorComparison", "CallCheck", "CaseReport", "SuiteReport", "Status", "STATUSES",
    "NotCompared", "WRONG", "first_status", "CaseGroup",
    "FLOAT64_REFERENCE", "Diagnosis", "Location",
]

FLOAT64_REFERENCE = "float64 reference"  # the method of a gradient row compared with the reference backward
# The method of a large case's gradient row (numerics/plan.py): its own row, against the reference
# backward at every coordinate and the layer's forward along random directions.
REFERENCE_AND_DIRECTIONS = "float64 reference and random directions"


@dataclass(frozen=True)
class Diagnosis:
    """One named mistake that explains a failing tensor, in a sentence that says the fix
    (found by findings/diagnosis.py)."""

    tensor: str  # the row's label: O, dX, dK, db, "dK vs float64 reference", "dX wrt w", "jvp x"
    kind: str  # a stable identifier, e.g. "kernels_not_rotated"
    message: str
    short: str = ""  # the mistake in a few words, after "looks like": "the kernels were not rotated 180°"


@dataclass(frozen=True)
class Location:
    """Where the wrong coordinates of one tensor are (found by findings/locate.py).

    `channels` are the indices along axis 1 for dX (input channels) and O (output channels), along
    axis 0 for dK (kernels) and db. The border of dX is every position within `reach` of an edge
    along some axis, reach = max(padding, dilation*(k-1)): there the full correlation sees the
    padding or fewer kernel taps, which is where crop and padding mistakes show.
    """

    tensor: TensorName
    wrong: int
    checked: int
    channel_label: str  # "channels" or "kernels"
    channels: tuple[int, ...]
    channel_count: int
    samples: tuple[int, ...] = ()  # batch items with errors (dX and O)
    batch: int = 1
    reach: Optional[tuple[int, ...]] = None
    border_wrong: Optional[int] = None
    border_total: Optional[int] = None
    interior_wrong: Optional[int] = None
    interior_total: Optional[int] = None
    phases: Optional[tuple[tuple[int, ...], ...]] = None  # stride phases with errors (dX, stride > 1)
    phase_count: Optional[int] = None
    map_title: Optional[str] = None  # e.g. "dX[n=0, c=1]" or "dX[n=0, c=1, D=3]"
    map_axes: tuple[str, str] = ("", "")  # names of the rows and the columns of the map
    map_block: tuple[int, int] = (1, 1)  # positions per cell along rows and columns
    error_map: Optional[np.ndarray] = field(default=None, repr=False, compare=False)  # rel error
    tolerance: float = 0.0

    @property
    def fraction(self) -> float:
        return self.wrong / self.checked if self.checked else 0.0

    @property
    def region(self) -> Optional[str]:
        """'border', 'interior' or 'both' for dX, None where the tensor has no border."""
        if self.border_wrong is None or self.interior_wrong is None:
            return None
        if self.border_wrong > 0 and self.interior_wrong > 0:
            return "both"
        # "Only on the border" needs interior coordinates that were compared and found right.
        if self.border_wrong > 0 and self.interior_total:
            return "border"
        if self.interior_wrong > 0 and self.border_total:
            return "interior"
        return None


@dataclass(frozen=True)
class Coordinate:
    """One compared coordinate: where, the two values, and its error relative to the tensor scale."""

    index: tuple[int, ...]
    analytical: float
    numerical: float
    abs_error: float
    rel_error: float
    bound_ratio: Optional[float] = None  # abs_error / the coordinate's rounding bound, when judged by it


@dataclass(frozen=True)
class Precision:
    """A tensor judged by the rounding model (numerics/rounding.py): each coordinate's error against
    lam * u * (sqrt(n_i) * B_i + term), and the precision its values actually carry."""

    unit_roundoff: float  # u of the layer's dtype, plus the float64 reference's own
    lam: float
    largest_ratio: float  # max over coordinates of error / bound: above 1 fails
    bits: int  # effective significant bits (compare.effective_bits)
    dtype_bits: int  # what the dtype can carry (float32: 24)
    cause: Optional[str] = None  # the likely cause when bits were lost (findings/precision.py)


@dataclass(frozen=True)
class TensorComparison:
    """How one tensor (O, dX, dK or db) compares with its reference.

    For dX, dK and db the reference is the numerical gradient; for O it is the reference forward.
    `shape` is what the implementation returned (None if it returned nothing usable).
    """

    name: TensorName
    expected_shape: tuple[int, ...]
    shape: Optional[tuple[int, ...]]
    tolerance: float
    status: Status  # see Status above; a row is never "passed" without a comparison
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
    reason: Optional[str] = None  # why it failed or was not checked, one line ("no bias" when skipped)
    note: Optional[str] = None  # something the user should know even when it passed
    analytical: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    numerical: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    location: Optional[Location] = None  # where a failing tensor is wrong (locate.py)
    precision: Optional[Precision] = None  # set when judged by the rounding model
    call: Optional[str] = None  # which call of a later check returned it ("backward of layer A")
    plan: Optional[DifferencePlan] = None  # how its finite differences were planned (numerics/plan.py)
    # A derivative of the backward (`--order 2`: name dX, dK or db, by x, w, b or dy) or the output's
    # forward-mode derivative (`--jvp`: name O, along x, w or b): what it is taken with respect to.
    wrt: Optional[str] = None
    together: bool = False  # the derivative of <u, dX> + <v, dK> + <c, db>, every cotangent at once

    @property
    def reference_gradient(self) -> bool:
        """A gradient compared with the float64 reference backward (not with finite differences)."""
        return self.method == FLOAT64_REFERENCE

    @property
    def passed(self) -> bool:
        """Nothing wrong with this row: it matched, or the layer has no such tensor (skipped)."""
        return self.status in ("passed", "skipped")

    @property
    def compared(self) -> bool:
        """Whether any value of this row was compared (False when not checked, skipped or its call failed)."""
        return self.method != "none"

    @property
    def absent(self) -> Optional[str]:
        """Why the layer has no such tensor ("no bias"), for a skipped row."""
        return self.reason if self.status == "skipped" else None

    @property
    def lost_precision(self) -> bool:
        """Failed only by carrying fewer bits than its dtype, for a likely cause that was named."""
        return self.status == "lost precision"

    @property
    def diagnosable(self) -> bool:
        """Wrong in a way a classic mistake could explain: failed or could not be checked (a wrong
        shape is one), not only fewer bits kept."""
        return self.status in ("error", "failed")

    @property
    def compared_with(self) -> str:
        """What this row's values were compared with, in words."""
        if self.method == "none":
            return "nothing"
        if self.wrt is not None:  # `--order 2` and `--jvp`
            if self.name == "O":
                return FLOAT64_REFERENCE
            return "differences of the forward" if self.wrt == "dy" else "differences of the backward"
        against_reference = self.name == "O" or self.method in (FLOAT64_REFERENCE, REFERENCE_AND_DIRECTIONS)
        return FLOAT64_REFERENCE if against_reference else "finite differences"

    @property
    def label(self) -> str:
        """The row's name where a tensor can have several rows: "dK vs float64 reference", "dX wrt w"
        (a derivative of the backward), "jvp x" (the forward-mode derivative along x)."""
        if self.wrt is not None:
            of = "jvp" if self.name == "O" else "dX+dK+db wrt" if self.together else f"{self.name} wrt"
            # together, `wrt` of a jvp row names every tensor moved ("x+w+b")
            return f"{of} {self.wrt}"
        return f"{self.name} vs {FLOAT64_REFERENCE}" if self.reference_gradient else self.name

    @property
    def differ(self) -> str:
        """'12 of 135 coordinates differ' for a compared tensor; its reason when it was not compared,
        or when it failed for that reason alone (no coordinate beyond the tolerance)."""
        if not self.compared or (self.mismatches == 0 and self.status != "passed" and self.reason):
            return self.reason or "not checked"
        unit = ("directions" if self.method == "projection"
                else "Jacobian entries" if self.wrt is not None and self.name == "O" else "coordinates")
        return f"{self.mismatches} of {self.checked} {unit} differ"

    @property
    def worst_index(self) -> Optional[tuple[int, ...]]:
        return self.worst[0].index if self.worst else None

    @property
    def every_coordinate(self) -> bool:
        """Whether every coordinate of the tensor was compared (not a sample, not directions)."""
        return self.checked == self.total and self.method != "projection"

    @classmethod
    def not_checked(
        cls,
        name: TensorName,
        geometry: LayerGeometry,
        tolerance: float,
        reason: str,
        shape: Optional[tuple[int, ...]] = None,
        *,
        status: NotCompared = "error",
    ) -> "TensorComparison":
        """A tensor that was not compared, and why: never a pass. `status` is "error" when its own
        call could not be checked, "failed" when what it returned is wrong in itself (NaN, an input
        written into), "not checked" when an earlier call of the case failed."""
        expected = geometry.shape_of(name)
        return cls(
            name=name,
            expected_shape=expected,
            shape=shape,
            tolerance=tolerance,
            status=status,
            method="none",
            total=math.prod(expected),
            reason=reason,
        )

    @classmethod
    def not_in_layer(cls, name: TensorName, geometry: LayerGeometry, tolerance: float, absent: str) -> "TensorComparison":
        """A tensor the layer does not have (db of a bias-free layer): not checked, and no failure."""
        return cls(
            name=name, expected_shape=geometry.shape_of(name), shape=None, tolerance=tolerance, status="skipped",
            method="none", reason=absent,
        )


@dataclass(frozen=True)
class CallCheck:
    """One check of the call protocol after the first call (run/calls.py): what was called, how,
    what its results were compared with, and the cause in words when they did not hold."""

    name: str  # e.g. "second call", "other memory layouts", "first call repeated"
    called_with: str  # the inputs, e.g. "new random tensors of the same shape, in C order"
    compared_with: str  # e.g. "the reference convolution", "the first call's results"
    status: Status  # "passed", "failed", or "error" when the call raised or returned something unusable
    tensors: tuple[TensorComparison, ...] = ()
    cause: Optional[str] = None  # why it failed, in words, when that can be told
    forward_calls: int = 0
    follows: bool = False  # it fails as an earlier call did, which says why
    part: str = "call protocol"  # or "network scenario" (run/scenario.py)

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def reason(self) -> Optional[str]:
        """One line: the cause, else the failing tensors' own reasons; None when it passed."""
        if self.passed:
            return None
        if self.cause is not None:
            return self.cause
        return "; ".join(f"{t.name}: {t.reason or 'does not match'}" for t in self.tensors if not t.passed) or None


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
    status: Status  # set by `build` from the parts: see Status and first_status
    finished: bool = True  # False for a case that timed out or whose process died
    warnings: tuple[str, ...] = ()
    # Why the case was skipped (the implementation cannot express it), or a failure of the case as
    # a whole (forward raised): `status` says which.
    reason: Optional[str] = None
    diagnoses: tuple[Diagnosis, ...] = ()  # the classic mistakes that explain the failures
    method: Method = "auto"  # the method asked for (each tensor says which one it got)
    samples: Optional[int] = None  # coordinates or directions per tensor, for sample and projection
    forward_check: bool = True  # whether O was compared with the reference convolution
    calls: tuple[CallCheck, ...] = ()  # the call protocol after the first call
    # Below float64: dX, dK and db also against the float64 reference, judged by the rounding model.
    reference_gradients: tuple[TensorComparison, ...] = ()
    # `--order 2` and `--jvp`: the derivatives of the backward, the forward-mode derivatives (wrt set).
    derivatives: tuple[TensorComparison, ...] = ()
    order: int = 1
    jvp: bool = False

    @classmethod
    def build(
        cls,
        *,
        name: str,
        geometry: LayerGeometry,
        implementation: str,
        options: CheckOptions,
        tensors: tuple[TensorComparison, ...] = (),
        elapsed_s: float = 0.0,
        forward_calls: int = 0,
        warnings: tuple[str, ...] = (),
        reason: Optional[str] = None,
        skipped: Optional[str] = None,
        unfinished: Optional[str] = None,
        diagnoses: tuple[Diagnosis, ...] = (),
        calls: tuple[CallCheck, ...] = (),
        reference_gradients: tuple[TensorComparison, ...] = (),
        derivatives: tuple[TensorComparison, ...] = (),
    ) -> "CaseReport":
        """A case's report, with the settings it records taken from `options` and its status from
        its parts: "skipped" when `skipped` says why, else the first of its rows' and later calls'
        statuses; a case that did not finish (`unfinished` says why: it timed out or its process
        died) is an error whatever its finished parts found, and so is one that failed as a whole
        (`reason`) with nothing found wrong (it was refused)."""
        # Later calls that repeat the first call's failure are its consequences: they add no status
        # of their own (a first call that only lost bits is not made "failed" by its repeats).
        rows = tensors + reference_gradients + derivatives
        # A call that could not be checked always counts: a raise is no repeat of wrong values.
        consequences = {c for c in _repeats(calls, rows) if c.status == "failed"}
        status = first_status([t.status for t in rows] + [c.status for c in calls if c not in consequences])
        if skipped is not None:
            status, reason = "skipped", skipped
        elif unfinished is not None:
            status, reason = "error", unfinished
        elif reason is not None and status not in ("error", "failed"):
            status = "error"
        return cls(
            name=name,
            geometry=geometry,
            implementation=implementation,
            seed=options.seed,
            tolerances=options.tolerances(geometry.dtype),
            tensors=tensors,
            elapsed_s=elapsed_s,
            forward_calls=forward_calls,
            status=status,
            finished=unfinished is None,
            warnings=warnings,
            reason=reason,
            diagnoses=diagnoses,
            method=options.method,
            samples=options.samples if options.sampling else None,
            forward_check=options.forward_check,
            calls=calls,
            reference_gradients=reference_gradients,
            derivatives=derivatives,
            order=options.order,
            jvp=options.jvp,
        )

    @property
    def rows(self) -> tuple[TensorComparison, ...]:
        """Every row of the first call: O and the gradients against finite differences, the
        gradients against the float64 reference, then the derivatives of the backward and the
        forward-mode derivatives."""
        return self.tensors + self.reference_gradients + self.derivatives

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def skipped(self) -> Optional[str]:
        """Why the case was skipped; None for a case that ran."""
        return self.reason if self.status == "skipped" else None

    @property
    def failure(self) -> Optional[str]:
        """A failure of the case as a whole (forward raised, timed out); None otherwise."""
        return None if self.status == "skipped" else self.reason

    @property
    def failing_calls(self) -> tuple[CallCheck, ...]:
        return tuple(c for c in self.calls if not c.passed)

    @property
    def failed(self) -> bool:
        """Neither passed nor skipped: it is wrong or could not be checked. A skipped case is
        neither a pass nor a failure."""
        return self.status not in ("passed", "skipped")

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.geometry.y_shape

    @property
    def failing(self) -> tuple[TensorComparison, ...]:
        return tuple(t for t in self.rows if not t.passed)

    @property
    def nothing_compared(self) -> bool:
        """No tensor was compared: the case did not run, or its first call failed as a whole."""
        return not any(t.compared for t in self.tensors)

    @property
    def wrong(self) -> tuple[TensorComparison, ...]:
        """The rows that are wrong or could not be checked; not those left unchecked after them."""
        return tuple(t for t in self.rows if t.status in WRONG)

    @property
    def gradients(self) -> tuple[TensorComparison, ...]:
        """dX, dK and db: the rows compared with finite differences."""
        return tuple(t for t in self.tensors if t.name != "O")

    @property
    def compared_gradients(self) -> tuple[str, ...]:
        """The names of the gradients the layer has (db is left out for a bias-free layer)."""
        return tuple(t.name for t in self.gradients if t.absent is None)

    @property
    def coordinates_checked(self) -> int:
        """Gradient coordinates (or directions) compared."""
        return sum(t.checked for t in self.gradients)

    @property
    def coordinates_total(self) -> int:
        """Gradient coordinates in the layer."""
        return sum(t.total for t in self.gradients)

    @property
    def every_coordinate(self) -> bool:
        """Whether every coordinate of every gradient was compared."""
        return all(t.every_coordinate for t in self.gradients)

    @property
    def large(self) -> Optional[DifferencePlan]:
        """A large case's plan (every coordinate against the reference, the backward tied to the
        forward along random directions: numerics/plan.py), else None."""
        return next((t.plan for t in self.gradients if t.plan is not None and t.plan.method == "reference"), None)

    @property
    def noted(self) -> tuple[TensorComparison, ...]:
        """Tensors with a note the user should read even when they passed."""
        return tuple(t for t in self.rows if t.note)

    @property
    def worst_tensor(self) -> Optional[TensorComparison]:
        """The failing tensor with the largest error (of the first call, else of a later call that
        failed), else the tensor closest to its tolerance."""
        later = tuple(t for c in self.failing_calls for t in c.tensors if not t.passed)
        candidates = self.failing or later or self.tensors
        if not candidates:
            return None
        return max(candidates, key=lambda t: (t.max_rel_error is None, t.max_rel_error or 0.0))

    @property
    def failure_summary(self) -> str:
        """The why in one line, for a case that did not pass: each tensor that failed or could not
        be checked with how (or its reason) and its diagnoses ('dX: 12 of 135 coordinates differ,
        looks like the kernels were not rotated 180°'), tensors with one reason named together,
        after the case's own reason (a forward or backward call that failed as a whole);
        then each later call that failed, with its cause (only named when it has none and the
        first call failed too). The skip reason for a skipped case; empty for a pass."""
        if self.skipped is not None:
            return self.skipped
        if self.passed:
            return ""
        wrong = self.wrong
        parts = [] if self.reason is None else [self.reason]  # a call that failed as a whole says which
        named: list[tuple[list[str], str]] = []  # (row labels, what is wrong and why)
        diagnosed = {d.tensor for d in self.diagnoses}
        for t in wrong:
            if (t.reason is not None and t.reason == self.reason) or (t.reference_gradient and t.name in diagnosed and not t.lost_precision):
                continue  # said already: by the case, or by the diagnosis of the tensor's other row
            shorts = [d.short or d.message for d in self._diagnoses_of(t)]
            if t.precision is not None and t.status in ("failed", "lost precision"):
                shorts.append(f"{t.precision.bits} of {t.precision.dtype_bits} bits kept")
                shorts += [t.precision.cause] if t.precision.cause else []
            what = t.differ + (", looks like " + "; ".join(shorts) if shorts else "")
            if named and named[-1][1] == what and not t.compared:
                named[-1][0].append(t.label)
            else:
                named.append(([t.label], what))
        parts += [f"{', '.join(names)}: {what}" for names, what in named]
        # A later call's own cause is news; its mismatches alone mostly repeat the first call's.
        repeated = self.repeats
        parts += [f"{c.name}: {c.reason or 'does not match'}" for c in self.failing_calls
                  if c not in repeated and c.reason != self.reason]  # the call that hung is the case's reason
        protocol = [c.name for c in repeated if c.part == "call protocol"]
        if protocol:
            parts.append("later calls fail too: " + ", ".join(protocol))
        steps = [c for c in self.calls if c.part != "call protocol"]
        if len(protocol) < len(repeated):
            parts.append(f"{len(repeated) - len(protocol)} of {len(steps)} network scenario steps fail too")
        return "; ".join(parts)

    @property
    def repeats(self) -> tuple[CallCheck, ...]:
        """Later calls that fail because an earlier call did: it fails as an earlier call did
        (`follows`), or the first call is wrong and the later call has no cause of its own (its
        mismatches repeat the first call's). They are consequences, named after the cause."""
        return _repeats(self.calls, self.rows)

    @property
    def distinct_calls(self) -> tuple[tuple[CallCheck, ...], ...]:
        """The later calls that fail in their own way (not `repeats`), those with the same reason
        together, in call order."""
        groups: dict[str, list[CallCheck]] = {}
        repeats = self.repeats
        for c in self.failing_calls:
            if c not in repeats:
                groups.setdefault(_without_numbers(c.reason or "does not match"), []).append(c)
        return tuple(tuple(g) for g in groups.values())

    @property
    def cause(self) -> str:
        """What went wrong, in one line, without the coordinate counts and values of `failure_summary`:
        each wrong row with its diagnoses ("dK: looks like the stride was ignored"), or what its
        call said, and the later calls that fail in their own way; the skip reason for a skipped
        case; empty for a pass. Cases that fail the same way read the same but for their sizes and
        settings (`cause_key` leaves those out)."""
        if self.status == "skipped":
            return self.reason or ""
        if self.passed:
            return ""
        parts = [] if self.reason is None else [self.reason]
        for t in self._causal_rows:
            if t.reason is not None and t.reason == self.reason:
                continue
            shorts = [d.short or d.message for d in self._diagnoses_of(t)]
            if t.precision is not None and t.precision.cause is not None:
                shorts.append(t.precision.cause)
            if shorts:
                parts.append(f"{t.label}: looks like {'; '.join(shorts)}")
            elif t.compared and t.mismatches:
                parts.append(f"{t.label}: does not match" + (" (fewer bits than rounding allows)" if t.precision else ""))
            else:  # not compared, or failed for its reason alone: rows with one reason named together
                earlier = next((i for i, p in enumerate(parts) if p.endswith(f": {t.differ}")), None)
                if earlier is not None and not t.compared:
                    parts[earlier] = f"{parts[earlier].rsplit(': ' + t.differ, 1)[0]}, {t.label}: {t.differ}"
                else:
                    parts.append(f"{t.label}: {t.differ}")
        parts += [f"{', '.join(c.name for c in group)}: {group[0].reason or 'does not match'}"
                  for group in self.distinct_calls if group[0].reason != self.reason]
        return "; ".join(dict.fromkeys(parts))

    @property
    def _causal_rows(self) -> tuple[TensorComparison, ...]:
        """The wrong rows that say what is wrong: a gradient's row against the float64 reference is
        left out when its own row against finite differences is wrong too (that row says it)."""
        own_rows = {t.name for t in self.wrong if not t.reference_gradient and t.wrt is None}
        return tuple(
            t for t in self.wrong if not (t.reference_gradient and t.name in own_rows and not t.lost_precision)
        )

    @property
    def cause_key(self) -> tuple[object, ...]:
        """What cases failing the same way share: the status, and for each wrong row its label and
        diagnoses (or, undiagnosed, its reason, or the likely cause of the bits it lost), each later
        call failing in its own way by name and reason, all with their numbers left out (sizes,
        shapes, settings, counts); a case that did not finish by that alone, wherever it stopped."""
        if self.status in ("passed", "skipped"):
            return (self.status, _without_numbers(self.reason or ""))
        if not self.finished:  # a timeout or a crash: where it stopped is this case's detail
            return (self.status, "did not finish")
        rows = tuple((t.label, self._row_key(t)) for t in self._causal_rows)
        calls = tuple(sorted({(group[0].name, _without_numbers(group[0].reason or "")) for group in self.distinct_calls}))
        return (self.status, _without_numbers(self.failure or ""), rows, calls)

    def _row_key(self, t: TensorComparison) -> object:
        kinds = tuple(sorted(d.kind for d in self._diagnoses_of(t)))
        if kinds:
            return kinds
        if t.lost_precision and t.precision is not None:
            return (t.status, _without_numbers(t.precision.cause or ""))
        return (t.status, "differs" if t.compared and t.mismatches else _without_numbers(t.reason or ""))

    def _diagnoses_of(self, row: TensorComparison) -> list[Diagnosis]:
        return [d for d in self.diagnoses if d.tensor == row.label]

    def tensor(self, name: TensorName) -> TensorComparison:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)


@dataclass(frozen=True)
class DomainPairs:
    """How a suite covered the pairs of settings within the layer's own domain (run/domain.py)."""

    pairs: int  # pairs of factor levels some small 2-D case the layer accepts has
    covered: int  # of those, the pairs of the cases checked
    cases: int  # 2-D cases of the factors checked (covering.levels_of), the suite's own and the added ones
    added: int  # cases added to cover the layer's domain ("domain 1", ...)
    refused: int  # added cases the layer turned down at run time

    @property
    def complete(self) -> bool:
        return self.covered == self.pairs


def _repeats(calls: tuple[CallCheck, ...], first_rows: tuple[TensorComparison, ...]) -> tuple[CallCheck, ...]:
    """The failing later calls that repeat an earlier failure (see CaseReport.repeats). After a
    first call that only lost bits, a later call repeats it only when its failing rows, too, were
    judged by the rounding model: one wrong beyond what rounding explains is news."""
    wrong = any(t.status in ("error", "failed") for t in first_rows)
    lost = any(t.lost_precision for t in first_rows)

    def repeats_first(c: CallCheck) -> bool:
        if c.cause is not None:
            return False
        return wrong or (lost and all(t.precision is not None for t in c.tensors if not t.passed))

    return tuple(c for c in calls if not c.passed and (c.follows or repeats_first(c)))


# Numbers in a cause (sizes, shapes, settings, counts, errors) differ from case to case; the cause
# does not. A shape or per-axis setting ("2x2x0x0", "2x1") is one number; digits inside a word
# ("1-D", "float32", "conv2d") are not numbers.
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?(?:x\d+)*(?![\w-])")


def _without_numbers(text: str) -> str:
    return _NUMBER.sub("#", text)


@dataclass(frozen=True)
class CaseGroup:
    """Cases of a suite with one status and one cause (numbers aside): one mistake, shown once."""

    status: Status
    cause: str  # the first case's
    cases: tuple[CaseReport, ...]

    @property
    def first(self) -> CaseReport:
        return self.cases[0]

    @property
    def alike(self) -> bool:
        """Whether every case's cause reads as the first's, numbers aside (else the cause shown
        holds the first case's details)."""
        return len({c.cause for c in self.cases}) == 1


@dataclass(frozen=True)
class SuiteReport:
    """One or more cases checked in one run, and, for a suite that asks, its pairs of the layer's domain."""

    cases: tuple[CaseReport, ...]
    domain: Optional[DomainPairs] = None
    not_run: int = 0  # cases never started: the run stopped at its first failure (--fail-fast)

    @property
    def passed(self) -> bool:
        """No case failed, and at least one was checked: a run that checked nothing is no pass."""
        return not any(case.failed for case in self.cases) and any(case.skipped is None for case in self.cases)

    @functools.cached_property  # the renderers and the JSON each read it
    def groups(self) -> tuple[CaseGroup, ...]:
        """The cases grouped by status and cause, in order of status precedence, then of first
        appearance: one mistake that fails 28 cases is one group."""
        found: dict[tuple[object, ...], list[CaseReport]] = {}
        for case in self.cases:
            found.setdefault(case.cause_key, []).append(case)
        ordered = sorted(found.values(), key=lambda cases: STATUSES.index(cases[0].status))  # stable: appearance
        return tuple(CaseGroup(cases[0].status, cases[0].cause, tuple(cases)) for cases in ordered)

    def count(self, status: Status) -> int:
        """How many cases 'passed', 'failed', could not be checked ('error') or were 'skipped'."""
        return sum(1 for case in self.cases if case.status == status)

    @property
    def elapsed_s(self) -> float:
        return sum(case.elapsed_s for case in self.cases)
