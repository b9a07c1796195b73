"""The call protocol after the first call: what a layer must also get right when called again.

The first call (run/case.py) proves the gradients against finite differences. The calls after it
need not repeat that: they ask whether the layer computes the same function every time, so each
is compared with something already trusted, at the cost of one forward and one backward call:

    second call           new random tensors, same shape, C order     vs the reference convolution
    memory layouts 1      the same tensors: x and dy channels last,    vs the reference convolution
                          w in Fortran order, b a step slice
    memory layouts 2      the same tensors: x in Fortran order, w and  vs the reference convolution
                          dy transposed views, b a step slice
    memory layouts 3      the same tensors: x channels last, dy a      vs the reference convolution
                          channel slice of a wider array
    memory layouts 4      x a channel slice (a concatenation's         vs the reference convolution
                          output), dy channels last
    memory layouts 5      x and dy step slices                         vs the reference convolution
    first call repeated   the first call's tensors again               vs the first call's results

With the forward check off there is no reference to trust; the gradients of the first two calls
are then compared along random directions with the layer's own forward instead. Every array the
layer returns is also watched for being overwritten by its next call (harness/guard.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Mapping, Optional, Sequence

import numpy as np

from convgrad import reference
from convgrad.compare import compare_numerical, compare_with_reference, scale_floor
from convgrad.findings.precision import rounding_only
from convgrad.findings.state import first_repeat_cause, layout_cause, second_call_cause
from convgrad.geometry import GRADIENT_NAMES, GradientName, LayerGeometry, TensorName
from convgrad.adapters.failure import ImplementationFailure
from convgrad.harness.guard import GuardedLayer
from convgrad.harness.memory import NON_CONTIGUOUS, MemoryLayout, describe_layouts
from convgrad.harness.stages import Stage, enter, finished
from convgrad.harness.watch import same_bits
from convgrad.numerics.gradient import ProgressFactory
from convgrad.numerics.method import numerical_gradient
from convgrad.numerics.plan import plan_differences
from convgrad.numerics.rounding import RoundingBounds, rounding_bounds
from convgrad.options import CheckOptions
from convgrad.report import CallCheck, TensorComparison, first_status

__all__ = ["CallResult", "call", "later_calls", "reference_gradients", "Tensors", "PROJECTIONS_PER_TENSOR", "STATE_CALLS"]

Tensors = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x, w, b, dy
# The later calls that fail when the layer keeps state between calls (a new call on new tensors,
# the first call again), as opposed to one memory layout it mishandles.
STATE_CALLS = ("second call", "first call repeated")
PROJECTIONS_PER_TENSOR = 2  # random directions per gradient when there is no reference

NEW_TENSORS = "new random tensors of the same shape, in C order"
FIRST_TENSORS = "the first call's tensors again, in C order"
REFERENCE = "the reference convolution"


@dataclass(frozen=True)
class CallResult:
    """One forward and one backward call: what went in and what came back."""

    tensors: Tensors
    y: Optional[np.ndarray] = None
    gradients: tuple[Optional[np.ndarray], ...] = (None, None, None)  # dX, dK, db
    failure: Optional[str] = None  # the call raised, returned something unusable or wrote into its inputs
    # What the failure means for the check (ImplementationFailure.status): "error" when the call
    # could not be checked, "failed" when what it did is wrong in itself.
    failure_status: Literal["error", "failed"] = "failed"

    @classmethod
    def of(
        cls,
        tensors: Tensors,
        y: np.ndarray,
        gradients: Sequence[Optional[np.ndarray]],
        problems: Mapping[GradientName, ImplementationFailure],
    ) -> "CallResult":
        """A call whose forward and backward returned: the first gradient's problem is the failure."""
        first = next(iter(problems.values()), None)
        if first is None:
            return cls(tensors, y, tuple(gradients))
        return cls(tensors, y, tuple(gradients), failure=str(first), failure_status=first.status)

    @property
    def outputs(self) -> dict[TensorName, Optional[np.ndarray]]:
        outputs: dict[TensorName, Optional[np.ndarray]] = {"O": self.y}
        outputs.update(zip(GRADIENT_NAMES, self.gradients))
        return outputs


def call(guard: GuardedLayer, tensors: Tensors, layouts: Optional[Mapping[str, MemoryLayout]] = None) -> CallResult:
    """forward(x, w, b) then backward(dy, x, w, b), with the inputs in `layouts`."""
    x, w, b, dy = tensors
    try:
        y = guard.forward(x, w, b, layouts=layouts)
        gradients, problems = guard.backward(dy, x, w, b, layouts=layouts)
    except ImplementationFailure as failure:
        return CallResult(tensors, failure=str(failure), failure_status=failure.status)
    return CallResult.of(tensors, y, gradients, problems)


def reference_gradients(tensors: Tensors, geometry: LayerGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dX, dK and db of the reference convolution at a call's tensors, in float64."""
    x, w, b, dy = (np.asarray(t, dtype=np.float64) for t in tensors)  # the reference only reads them
    return reference.backward(dy, x, w, b, **geometry.conv_settings())


def _reference(tensors: Tensors, geometry: LayerGeometry) -> dict[TensorName, np.ndarray]:
    x, w, b, _ = (np.asarray(t, dtype=np.float64) for t in tensors)
    dx, dw, db = reference_gradients(tensors, geometry)
    return {"O": reference.forward(x, w, b, **geometry.conv_settings()), "dX": dx, "dK": dw, "db": db}


def _against(
    result: CallResult, expected: Mapping[TensorName, np.ndarray], bounds: Optional[RoundingBounds], rtol: float,
    against: str, judged: Optional[Mapping[TensorName, TensorComparison]] = None,
) -> tuple[TensorComparison, ...]:
    """Every output against `expected`: below float64 by the rounding bounds of these tensors, as the
    first call is; in float64 by `rtol`, gradients with the first call's scale floor, so that a
    structurally zero gradient computed to rounding (an FFT conv) is not judged against exact 0.

    `judged`: rows of an earlier call of the same tensors against the same `expected`, bounds,
    rtol and `against`; an output identical to the one such a row judged gets that row again."""
    x, w, _, dy = result.tensors
    rows = []
    for name, value in result.outputs.items():
        if name in expected and value is not None:
            earlier = (judged or {}).get(name)
            if earlier is not None and _identical(earlier.analytical, value):
                rows.append(earlier)  # the comparison is a function of its inputs: the same row
                continue
            floor = 0.0 if name == "O" else scale_floor(name, x, w, dy)
            rows.append(compare_with_reference(
                name, value, expected[name], bounds, rtol, method=against, against=against, floor=floor
            ))
    return tuple(rows)


def _identical(first: Optional[np.ndarray], second: np.ndarray) -> bool:
    """The same values bit for bit (0.0 and -0.0 differ, as a report prints them)."""
    if first is None or first.dtype != second.dtype or first.shape != second.shape:
        return False
    return same_bits(first, second)


def _along_directions(
    guard: GuardedLayer, result: CallResult, geometry: LayerGeometry, options: CheckOptions, rtol: float
) -> tuple[TensorComparison, ...]:
    """Without a reference: each gradient against the layer's own forward along random directions."""
    x, w, b, dy = result.tensors
    assert result.y is not None
    rows = []
    for name, analytical in zip(GRADIENT_NAMES, result.gradients):
        assert analytical is not None
        # Only without the forward check: the plan allows a curved forward, which may be what the layer means.
        plan = plan_differences(
            name, geometry, options, (x, w, b), result.y, method="projection", samples=PROJECTIONS_PER_TENSOR,
            seed=options.seed + 1,
        )
        numerical = numerical_gradient(plan, guard.forward, (x, w, b), dy, geometry)
        rows.append(replace(compare_numerical(name, analytical, numerical, rtol, scale_floor(name, x, w, dy)), plan=plan))
    return tuple(rows)


def _check(
    name: str,
    called_with: str,
    result: CallResult,
    guard: GuardedLayer,
    geometry: LayerGeometry,
    options: CheckOptions,
    calls_before: int,
    bounds: Optional[RoundingBounds],
    expected: Optional[Mapping[TensorName, np.ndarray]] = None,
    judged: Optional[Mapping[TensorName, TensorComparison]] = None,
) -> CallCheck:
    """A later call against the reference (`expected`, when already computed for its tensors, and
    `judged`, rows of its tensors against it; see `_against`) or along directions; the cause is
    left to the caller."""
    rtol = options.tolerances(geometry.dtype).rtol
    compared_with = (
        REFERENCE if options.forward_check
        else f"the layer's own forward along {PROJECTIONS_PER_TENSOR} random directions"
    )
    if result.failure is not None:
        return CallCheck(name, called_with, compared_with, result.failure_status, cause=result.failure,
                         forward_calls=guard.forward_calls - calls_before)
    if options.forward_check:
        rows = _against(result, expected or _reference(result.tensors, geometry), bounds, rtol, "reference", judged)
    else:
        rows = _along_directions(guard, result, geometry, options, rtol)
    return CallCheck(name, called_with, compared_with, first_status(t.status for t in rows), tensors=rows,
                     forward_calls=guard.forward_calls - calls_before)


def later_calls(
    guard: GuardedLayer,
    geometry: LayerGeometry,
    options: CheckOptions,
    first: CallResult,
    second: Tensors,
    first_held: tuple[bool, bool],
    first_bounds: Optional[RoundingBounds],
    progress: Optional[ProgressFactory] = None,
) -> tuple[CallCheck, ...]:
    """The protocol's calls after the first (see the module docstring), and the reuse watch.

    `first_held`: whether the first call's output, and all of its rows, passed; what a later
    failure can be blamed on depends on them. `first_bounds`: the first call's rounding bounds,
    as the first call was judged by them (None for float64 or without the forward check)."""
    checks: list[CallCheck] = []

    def bounds_of(tensors: Tensors) -> Optional[RoundingBounds]:
        """The rounding bounds of one set of tensors, which hold for the reference convolution only."""
        return rounding_bounds(*tensors, geometry) if options.forward_check else None

    second_bounds = bounds_of(second)
    # One forward call each, and the projections' two per direction when there is no reference.
    laid_out_calls = len(NON_CONTIGUOUS)
    planned = 2 + laid_out_calls + (
        0 if options.forward_check else (1 + laid_out_calls) * 2 * PROJECTIONS_PER_TENSOR * len(GRADIENT_NAMES)
    )
    advance = progress("later calls", planned) if progress else None
    counted = guard.forward_calls

    def made() -> None:
        nonlocal counted
        if advance is not None:
            advance(guard.forward_calls - counted)
        counted = guard.forward_calls
        finished(checks[-1])  # kept should a later call hang

    before = guard.forward_calls
    enter(Stage("the second call"))
    new = call(guard, second)
    # The layout calls take the same tensors: their reference is computed once.
    expected = _reference(second, geometry) if options.forward_check else None
    check = _check("second call", NEW_TENSORS, new, guard, geometry, options, before, second_bounds, expected)
    if not check.passed and new.failure is None:
        cause = rounding_only(check.tensors) or second_call_cause(
            first, new, geometry, options.tolerances(geometry.dtype).rtol, first_held
        )
        check = _with_cause(check, cause)
    checks.append(check)
    made()

    # A layout call that returns what the second call did (the usual case) is judged the same.
    judged = {t.name: t for t in checks[0].tensors} if options.forward_check else None
    for number, layouts in enumerate(NON_CONTIGUOUS, start=1):
        before = guard.forward_calls
        enter(Stage(f"memory layouts {number}"))
        laid_out = call(guard, second, layouts)
        called_with = f"the second call's tensors, {describe_layouts(layouts)}"
        check = _check(
            f"memory layouts {number}", called_with, laid_out, guard, geometry, options, before, second_bounds,
            expected, judged,
        )
        if not check.passed and new.failure is None and checks[0].passed and first_held[1]:
            # The same tensors went through in C order: the layout is what changed, unless the
            # results are the same up to rounding (an einsum sums in another order per layout).
            check = _with_cause(check, rounding_only(check.tensors) or _layout_culprit(
                guard, new, layouts, geometry, options, second_bounds
            ))
        elif not check.passed and not checks[0].passed:
            check = replace(check, cause="fails too, but so did the second call in C order: see there", follows=True)
        elif not check.passed and check.cause is None:  # the second call held: this layout is news
            check = replace(check, cause="fails where the same tensors in C order (the second call) did not")
        checks.append(check)
        made()

    before = guard.forward_calls
    enter(Stage("the first call repeated"))
    repeat = call(guard, first.tensors)
    checks.append(_repeat_check(first, repeat, first_bounds, options.tolerances(geometry.dtype).rtol,
                                guard.forward_calls - before))
    made()

    if guard.reused:
        checks.append(CallCheck(
            "returned arrays", "every call above", "what the layer returned, after its next call",
            "failed", cause="; ".join(guard.reused.values()),
        ))
    if guard.kept_inputs_changed:
        checks.append(CallCheck(
            "inputs kept", "the first calls", "what the layer was given, after its next calls",
            "failed", cause="; ".join(guard.kept_inputs_changed.values()),
        ))
    finished(*checks)
    return tuple(checks)


def _layout_culprit(
    guard: GuardedLayer, new: CallResult, layouts: Mapping[str, MemoryLayout], geometry: LayerGeometry,
    options: CheckOptions, bounds: Optional[RoundingBounds],
) -> str:
    """The one input whose layout alone changes the results, found by one call per input.

    The C-order results of the same tensors passed, so they are the reference here; the C-order
    call is made once more at the end, so that a layer whose results change from call to call is
    not blamed on a layout."""
    rtol = options.tolerances(geometry.dtype).rtol
    expected = {n: v for n, v in new.outputs.items() if v is not None}
    culprit = None
    for name, layout in layouts.items():
        alone = call(guard, new.tensors, {name: layout})
        rows = () if alone.failure is not None else _against(alone, expected, bounds, rtol, "C order")
        if alone.failure is not None or not all(t.passed for t in rows):
            culprit = layout_cause(name, describe_layouts({name: layout}), rows, alone.failure)
            break
    again = call(guard, new.tensors)
    if again.failure is not None or not all(t.passed for t in _against(again, expected, bounds, rtol, "C order")):
        return (
            "the same tensors in C order gave other results than the second call did: the layer's "
            "results change from call to call (state kept between calls, or nondeterminism), "
            "whatever the memory layout"
        )
    return culprit or (
        f"results depend on the memory layout of the inputs ({describe_layouts(layouts)}), "
        "though no single input's layout alone changes them"
    )


def _with_cause(check: CallCheck, cause: Optional[str]) -> CallCheck:
    return check if cause is None else replace(check, cause=cause)


def _repeat_check(
    first: CallResult, repeat: CallResult, bounds: Optional[RoundingBounds], rtol: float, forward_calls: int
) -> CallCheck:
    """The first call again must give the first call's results, within the tolerance."""
    name, compared_with = "first call repeated", "the first call's results"
    if repeat.failure is not None:
        return CallCheck(name, FIRST_TENSORS, compared_with, repeat.failure_status,
                         cause=f"the first call repeated failed although it worked the first time: {repeat.failure}",
                         forward_calls=forward_calls)
    expected = {n: v for n, v in first.outputs.items() if v is not None}
    rows = _against(repeat, expected, bounds, rtol, "first call")
    status = first_status(t.status for t in rows)
    return CallCheck(name, FIRST_TENSORS, compared_with, status, rows,
                     None if status == "passed" else rounding_only(rows) or first_repeat_cause(rows), forward_calls)
