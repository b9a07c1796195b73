"""The check pipeline: one case, from (geometry, implementation, options) to a `CaseReport`.

    random x, w, b, dy -> forward (row O against the reference) -> backward -> for each of dX, dK,
    db: step -> numerical gradient -> comparison -> where and why -> report

This is the only place a case is run; isolation.py runs this same function in a child process.
Nothing here prints or judges a number: numerics/ computes, compare.py judges, findings/ explains.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Optional

import numpy as np

from convgrad import reference
from convgrad.errors import Parameter, SettingError
from convgrad.compare import compare_bounded, compare_numerical, compare_with_reference, scale_floor, spot_check_disagreement
from convgrad.findings.diagnosis import diagnose
from convgrad.findings.locate import locate
from convgrad.findings.precision import with_likely_cause
from convgrad.geometry import DTYPES, GRADIENT_NAMES, TENSOR_NAMES, Dtype, LayerGeometry, TensorName
from convgrad.adapters.failure import ImplementationFailure
from convgrad.harness.guard import GuardedLayer
from convgrad.harness.workers import ForkedWorkers
from convgrad.harness.stages import Stage, enter, finished
from convgrad.adapters.protocol import Implementation, Unsupported
from convgrad.frameworks.recognise import refuse_undifferentiable
from convgrad.numerics.gradient import BaseOutput, Evidence, Inputs, NumericalGradient, ProgressFactory
from convgrad.numerics.method import numerical_gradient, one_at_a_time
from convgrad.numerics.plan import DifferencePlan, plan_differences
from convgrad.numerics.rounding import RoundingBounds, rounding_bounds
from convgrad.options import RANDOM_TENSORS, CheckOptions
from convgrad.report import FLOAT64_REFERENCE, REFERENCE_AND_DIRECTIONS, CallCheck, CaseReport, TensorComparison
from convgrad.run.calls import STATE_CALLS, CallResult, Tensors, later_calls, reference_gradients
from convgrad.run.derivatives import Derivatives, forward_mode_rows, second_order_rows, unchecked_rows
from convgrad.run.scenario import network_scenario

__all__ = ["run_case", "random_tensors", "DEFAULT_CASE_NAME"]

DEFAULT_CASE_NAME = "convgrad check"


def _layer_dtype(implementation: Implementation, geometry: LayerGeometry) -> Optional[Dtype]:
    """The dtype to run `geometry` at when the layer declares dtypes without the case's, else None."""
    dtypes = getattr(getattr(implementation, "declared", None), "dtypes", None) or ()
    return next((d for d in DTYPES if d == dtypes[0]), None) if dtypes and geometry.dtype not in dtypes else None


def random_tensors(geometry: LayerGeometry, options: CheckOptions, call: int = 0) -> Tensors:
    """x, w, b and the upstream gradient dy: standard normal from the seed, in the layer's dtype.

    `call` numbers the protocol's calls that need tensors of their own (0: the first call).
    `options.scale` multiplies any of them; the numbers drawn are the same whatever the scale.
    """
    rng = np.random.default_rng(options.seed if call == 0 else (options.seed, call))
    dtype = np.dtype(geometry.dtype)
    scale = dict(options.scale or {})
    drawn = []
    for name, shape in zip(RANDOM_TENSORS, (geometry.x_shape, geometry.w_shape, geometry.b_shape, geometry.y_shape)):
        values = rng.standard_normal(shape).astype(dtype, copy=False)  # drawn in float64: no copy there
        if name in scale:
            values = (values.astype(np.float64) * scale[name]).astype(dtype)
        drawn.append(values)
    x, w, b, dy = drawn
    return x, w, b, dy


def run_case(
    geometry: LayerGeometry,
    implementation: Implementation,
    options: CheckOptions,
    *,
    name: Optional[str] = None,
    progress: Optional[ProgressFactory] = None,
    workers: int = 1,
) -> CaseReport:
    """Check `implementation` on `geometry`: O against the reference convolution (unless
    `options.forward_check` is off), then dX, dK and db against finite differences; a tensor's
    coloured calls are shared out over up to `workers` processes (harness/workers.py) when that
    saves time, with the same results bit for bit. The later calls stay in this process.

    A geometry the implementation says it cannot run is skipped with its reason. Whatever the
    implementation does wrong (raises, wrong shape, NaN, writes into its inputs) is a failed tensor
    or case with a reason, never an exception.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SettingError(
            Parameter("workers", repr(workers)), " must be a whole number of 1 or more, such as ", Parameter("workers", 2)
        )
    refuse_undifferentiable(implementation, options)
    own_dtype = _layer_dtype(implementation, geometry)
    if own_dtype is not None:  # a layer that computes in one dtype only is checked in it, and says so
        report = run_case(replace(geometry, dtype=own_dtype), implementation, options, name=name, progress=progress,
                          workers=workers)
        note = (f"run at {own_dtype}, the dtype {implementation.name} computes in (dtypes); the case asked for "
                f"{geometry.dtype}")
        return replace(report, warnings=(note, *report.warnings))
    start = time.perf_counter()
    name = name or DEFAULT_CASE_NAME
    skipped = implementation.unsupported(geometry)
    if skipped is not None:
        return _refused(geometry, implementation, options, name, skipped)
    mismatch = implementation.interface_mismatch(geometry)
    if mismatch is not None:
        return _not_checked(geometry, implementation, options, name, mismatch)
    guard = GuardedLayer(implementation, geometry)
    try:
        tensors, first, bounds = _first_call(
            geometry, guard, options, progress, implementation, ForkedWorkers(guard, workers)
        )
        # A large case's gradient rows are already against the reference: no second row for them.
        large = any(t.plan is not None and t.plan.method == "reference" for t in tensors)
        precise = _rows_against_reference(first, geometry, bounds, implementation.has_bias) if bounds is not None and not large else ()
        # Where and why are worked out from the first call's own numbers, for failing tensors only.
        # A row judged by the rounding model has a bound per coordinate, not one tolerance: where
        # it is wrong is its worst coordinates, each with its error over its bound.
        tensors = tuple(
            replace(t, location=locate(t, geometry)) if not t.passed and t.precision is None and t.mismatches else t
            for t in tensors
        )
        diagnoses = diagnose(geometry, tensors, first.tensors)
        finished(*tensors, *precise, *diagnoses)  # the first call's verdicts, final: kept should a later call hang
        calls: tuple[CallCheck, ...] = ()
        # `--order 2` and `--jvp`, left unchecked unless the first call runs (_derivatives says what then)
        derivatives = Derivatives(unchecked_rows(options, geometry, implementation.has_bias,
                                                 "not checked: the first call failed"))
        if first.failure is None:  # a layer that fails its first call has nothing more to prove
            rows = tensors + precise  # a first call that only lost bits did not hold either
            first_held = (all(t.passed for t in tensors if t.name == "O"), all(t.passed for t in rows))
            second = random_tensors(geometry, options, call=1)
            calls = later_calls(guard, geometry, options, first, second, first_held, bounds, progress)
            derivatives = _derivatives(guard, first, geometry, options, implementation, first_held[1], calls, progress)
            diagnoses += derivatives.diagnoses
            calls += derivatives.calls
            finished(*derivatives.rows)
            if first_held[1]:  # after a wrong first call its steps mostly repeat it: the cause comes first
                steps, scenario_calls, scenario_warnings = network_scenario(
                    implementation, geometry, options, first.tensors, progress
                )
                calls += steps
                guard.forward_calls += scenario_calls
                guard.warnings.extend(w for w in scenario_warnings if w not in guard.warnings)
    except Unsupported as refusal:  # the layer itself says it cannot express this case
        return _refused(geometry, implementation, options, name, f"{implementation.name}: {refusal}")
    return CaseReport.build(
        name=name,
        geometry=geometry,
        implementation=implementation.name,
        options=options,
        tensors=tensors,
        elapsed_s=time.perf_counter() - start,
        forward_calls=guard.forward_calls,
        warnings=tuple(guard.warnings),
        reason=_case_failure(first),
        diagnoses=diagnoses,
        calls=calls,
        reference_gradients=precise,
        derivatives=derivatives.rows,
    )


def _derivatives(
    guard: GuardedLayer, first: CallResult, geometry: LayerGeometry, options: CheckOptions,
    implementation: Implementation, first_held: bool, calls: tuple[CallCheck, ...], progress: Optional[ProgressFactory],
) -> Derivatives:
    """`--order 2` and `--jvp` (run/derivatives.py), once the first call and the call protocol held:
    the rows are compared through the backward's symmetry, which a wrong backward does not have,
    and through differences, which a backward that keeps state between calls does not keep."""
    if options.order == 1 and not options.jvp:
        return Derivatives()
    stateful = [c.name for c in calls if not c.passed and c.name in STATE_CALLS]
    if not first_held or stateful:
        why = ("the first call is wrong" if not first_held
               else f"{' and '.join(stateful)} failed: the backward keeps state between calls")
        return Derivatives(unchecked_rows(options, geometry, implementation.has_bias, f"not checked: {why}"))
    x, w, b, _ = first.tensors
    gradients = tuple(np.asarray(g) for g in first.gradients)
    assert first.y is not None and len(gradients) == 3
    found = Derivatives()
    if options.order == 2:
        found += second_order_rows(guard, first.tensors, (gradients[0], gradients[1], gradients[2]), first.y, geometry,
                                   options, implementation.has_bias)
    if options.jvp:
        found += forward_mode_rows(guard, first.tensors, first.y, geometry, options, implementation.has_bias, progress)
    return found


def _refused(
    geometry: LayerGeometry, implementation: Implementation, options: CheckOptions, name: str, why: str
) -> CaseReport:
    """A case the implementation cannot express: skipped, or under strict checking not checked."""
    if options.strict:
        return _not_checked(geometry, implementation, options, name, f"not checked under strict checking: {why}")
    return CaseReport.build(name=name, geometry=geometry, implementation=implementation.name, options=options, skipped=why)


def _not_checked(
    geometry: LayerGeometry, implementation: Implementation, options: CheckOptions, name: str, reason: str
) -> CaseReport:
    rtol = options.tolerances(geometry.dtype).rtol
    return CaseReport.build(
        name=name, geometry=geometry, implementation=implementation.name, options=options, reason=reason,
        tensors=tuple(
            TensorComparison.not_checked(n, geometry, rtol, "not checked", status="not checked") for n in TENSOR_NAMES
        ),
    )


def _rows_against_reference(
    first: CallResult, geometry: LayerGeometry, bounds: RoundingBounds, has_bias: bool
) -> tuple[TensorComparison, ...]:
    """Below float64: dX, dK and db of the first call against the float64 reference backward, each
    coordinate within what rounding in the layer's dtype allows (numerics/rounding.py)."""
    if all(g is None for g in first.gradients):
        return ()
    rows = []
    for name, analytical, values in zip(GRADIENT_NAMES, first.gradients, reference_gradients(first.tensors, geometry)):
        if analytical is not None and (has_bias or name != "db"):
            row = compare_bounded(name, analytical, values, bounds, method=FLOAT64_REFERENCE)
            rows.append(with_likely_cause(row, first.tensors, geometry, bounds))
    return tuple(rows)


def _case_failure(first: CallResult) -> Optional[str]:
    """The case's own failure: the first forward or backward call itself failed (not one tensor)."""
    return first.failure if first.y is None or all(g is None for g in first.gradients) else None


def _first_call(
    geometry: LayerGeometry, guard: GuardedLayer, options: CheckOptions, progress: Optional[ProgressFactory],
    implementation: Implementation, workers: ForkedWorkers,
) -> tuple[tuple[TensorComparison, ...], CallResult, Optional[RoundingBounds]]:
    """Every row of the first call, the one proved by finite differences, what it returned, and the
    rounding bounds its results are held to against the reference (None: float64, or no reference)."""
    rtol = options.tolerances(geometry.dtype).rtol
    x, w, b, dy = tensors = random_tensors(geometry, options)
    bounds = rounding_bounds(x, w, b, dy, geometry) if options.forward_check else None
    rows: list[TensorComparison] = []
    enter(Stage("the first call"))
    try:
        y = guard.forward(x, w, b)
    except ImplementationFailure as failure:
        rows.append(TensorComparison.not_checked("O", geometry, rtol, str(failure), status=failure.status))
        rows.extend(
            TensorComparison.not_checked(n, geometry, rtol, "not checked: forward failed", status="not checked")
            for n in GRADIENT_NAMES
        )
        return tuple(rows), CallResult(tensors, failure=str(failure), failure_status=failure.status), None
    if options.forward_check:
        rows.append(with_likely_cause(_compare_output(y, x, w, b, geometry, rtol, bounds), tensors, geometry, bounds))
        finished(*rows)
    try:
        gradients, problems = guard.backward(dy, x, w, b)
    except ImplementationFailure as failure:
        rows.extend(TensorComparison.not_checked(n, geometry, rtol, str(failure), status=failure.status) for n in GRADIENT_NAMES)
        return tuple(rows), CallResult(tensors, y, failure=str(failure), failure_status=failure.status), None
    first = CallResult.of(tensors, y, gradients, problems)
    base = BaseOutput(guard.forward, (x, w, b))  # one fresh call, shared by one-sided differences
    plans = {g: plan_differences(g, geometry, options, (x, w, b), y) for g in GRADIENT_NAMES}
    expected = reference_gradients(tensors, geometry) if plans["dX"].method == "reference" else None
    seen_forward: tuple[str, ...] = ()  # the forward's failings, seen while differencing: O's row says them
    for gradient, analytical, reference_values in zip(GRADIENT_NAMES, gradients, expected or (None,) * 3):
        finished(*rows)
        enter(Stage(f"the finite differences for {gradient}"))
        if gradient == "db" and not implementation.has_bias:
            rows.append(TensorComparison.not_in_layer("db", geometry, rtol, "no bias"))
            continue
        if analytical is None:
            problem = problems[gradient]
            rows.append(TensorComparison.not_checked(gradient, geometry, rtol, str(problem), problem.shape, status=problem.status))
            continue
        try:
            if reference_values is not None:
                row, seen = _compare_large(
                    plans[gradient], analytical, reference_values, guard, tensors, geometry, options, base, progress,
                    implementation, bounds,
                )
            else:
                row, seen = _compare_gradient(
                    plans[gradient], analytical, guard, (x, w, b), dy, geometry, options, base, progress, implementation,
                    workers,
                )
            if options.forward_check:
                seen_forward += tuple(p for p in seen if p not in seen_forward)
            else:  # no O row: the gradient whose differences saw it says it
                row = _with_problems(row, seen)
            rows.append(row)
        except ImplementationFailure as failure:
            message = f"while computing finite differences for {gradient}, {failure}"
            rows.append(
                TensorComparison.not_checked(gradient, geometry, rtol, message, analytical.shape, status=failure.status)
            )
    if rows and rows[0].name == "O":
        rows[0] = _with_problems(rows[0], seen_forward)
    return tuple(rows), first, bounds


def _compare_gradient(
    plan: DifferencePlan,
    analytical: np.ndarray,
    guard: GuardedLayer,
    inputs: Inputs,
    dy: np.ndarray,
    geometry: LayerGeometry,
    options: CheckOptions,
    base: BaseOutput,
    progress: Optional[ProgressFactory],
    implementation: Implementation,
    workers: ForkedWorkers,
) -> tuple[TensorComparison, tuple[str, ...]]:
    """One gradient against its numerical gradient, and what the differences saw the forward do
    wrong; a coloured result whose spot checks disagree is redone one coordinate at a time (central
    differences, trusting nothing)."""
    gradient = plan.gradient
    floor = scale_floor(gradient, inputs[0], inputs[1], dy)
    numerical = numerical_gradient(plan, guard.forward, inputs, dy, geometry, base=base, progress=progress, workers=workers)
    disagreement = spot_check_disagreement(numerical, plan.rtol, floor)
    if disagreement is not None:
        # Harmless in itself: the redone coordinates need neither locality nor batch independence,
        # and the forward's own values are judged by the O row, the evidence and the later calls.
        numerical = replace(one_at_a_time(
            guard.forward, inputs, gradient, dy, numerical.step, geometry, spent=numerical.forward_calls,
            note=disagreement, seed=plan.seed, progress=progress,
        ), evidence=numerical.evidence)
    row = replace(compare_numerical(gradient, analytical, numerical, plan.rtol, floor), plan=plan)
    return row, _judged_evidence(numerical, geometry, options, implementation)


def _compare_large(
    plan: DifferencePlan,
    analytical: np.ndarray,
    expected: np.ndarray,
    guard: GuardedLayer,
    tensors: Tensors,
    geometry: LayerGeometry,
    options: CheckOptions,
    base: BaseOutput,
    progress: Optional[ProgressFactory],
    implementation: Implementation,
    bounds: Optional[RoundingBounds],
) -> tuple[TensorComparison, tuple[str, ...]]:
    """A large case's gradient: every coordinate against the float64 reference backward (`expected`),
    and tied to the layer's own forward along the plan's random directions."""
    x, w, b, dy = tensors
    gradient = plan.gradient
    floor = scale_floor(gradient, x, w, dy)
    row = compare_with_reference(
        gradient, analytical, expected, bounds, plan.rtol, method=REFERENCE_AND_DIRECTIONS, against="reference",
        floor=floor,
    )
    if bounds is not None:
        row = with_likely_cause(row, tensors, geometry, bounds)
    numerical = numerical_gradient(plan, guard.forward, (x, w, b), dy, geometry, base=base, progress=progress)
    tied = compare_numerical(gradient, analytical, numerical, plan.rtol, floor)
    if not tied.passed:
        untied = f"along random directions the backward is not the derivative of the layer's own forward: {tied.reason}"
        row = replace(row, status="failed", precision=None, reason="; ".join(r for r in (row.reason, untied) if r))
    # The plan says why the case is large (the method line shows it); the note keeps only what
    # the comparison with the reference itself noticed.
    row = replace(row, forward_calls=numerical.forward_calls, step=numerical.step, plan=plan)
    return row, _judged_evidence(numerical, geometry, options, implementation)


def _judged_evidence(
    numerical: NumericalGradient, geometry: LayerGeometry, options: CheckOptions, implementation: Implementation
) -> tuple[str, ...]:
    """What the differences saw the forward do wrong: the first says it, the others are the same
    failing seen again."""
    problems = [p for p in (_judged(e, geometry, options, implementation) for e in numerical.evidence) if p is not None]
    return tuple(problems[:1])


def _with_problems(row: TensorComparison, problems: tuple[str, ...]) -> TensorComparison:
    """A row failed by what the differences saw the forward do (`_judged`), its own reason after."""
    if not problems or (not row.passed and row.name == "O"):
        return row  # an output already wrong at the inputs checked says it first
    return replace(row, status="failed", reason="; ".join(problems) + (f"; {row.reason}" if row.reason else ""))


def _judged(
    evidence: Evidence, geometry: LayerGeometry, options: CheckOptions, implementation: Implementation
) -> Optional[str]:
    """Why an output seen while differencing shows the layer wrong, or None when it is harmless.

    Against the reference when the layer is held to it: a conv layer's output at any inputs is the
    convolution's. Without the reference, a curved or non-local forward may be what the layer
    means; only a failure, or an item's output that depends on its batch, is wrong whatever it means."""
    if evidence.failure is not None:
        size = evidence.batch
        if size is not None and size != geometry.batch and implementation.unsupported(replace(geometry, batch=size)):
            return None  # a batch size the layer declares it does not take
        return f"forward failed on {evidence.what} ({evidence.failure}): {evidence.meaning}"
    if not options.forward_check:
        return f"{evidence.what} differs from its output alone: {evidence.meaning}" if evidence.without_reference else None
    assert evidence.inputs is not None and evidence.output is not None
    x, w, b = evidence.inputs
    batch = replace(geometry, batch=x.shape[0])
    output: tuple[TensorName, ...] = ("O",)
    bounds = rounding_bounds(x, w, b, np.zeros(batch.y_shape, x.dtype), batch, names=output)
    row = _compare_output(evidence.output, x, w, b, batch, options.tolerances(geometry.dtype).rtol, bounds)
    if row.passed:
        return None  # another summation order, within rounding: both are the convolution
    return (
        f"{evidence.what} differs from the reference convolution of those inputs by up to "
        f"{row.max_rel_error or 0.0:.2g} of the scale: {evidence.meaning}"
    )


def _compare_output(
    y: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, geometry: LayerGeometry, rtol: float,
    bounds: Optional[RoundingBounds],
) -> TensorComparison:
    """The implementation's output against the reference convolution, computed in float64."""
    # The reference only reads its inputs: float64 tensors go in as they are.
    expected = reference.forward(
        *(np.asarray(t, dtype=np.float64) for t in (x, w, b)), **geometry.conv_settings()
    )
    return compare_with_reference("O", y, expected, bounds, rtol, method="reference forward", against="reference")
