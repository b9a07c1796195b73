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
from convgrad.compare import compare, compare_numerical, scale_floor, spot_check_disagreement
from convgrad.findings.diagnosis import diagnose
from convgrad.findings.locate import locate
from convgrad.geometry import GRADIENT_NAMES, TENSOR_NAMES, GradientName, LayerGeometry
from convgrad.impl.guard import GuardedLayer, ImplementationFailure
from convgrad.impl.protocol import Implementation
from convgrad.numerics.gradient import BaseOutput, Inputs, NumericalGradient, ProgressFactory
from convgrad.numerics.method import numerical_gradient, one_at_a_time
from convgrad.numerics.step import step_for
from convgrad.options import RANDOM_TENSORS, CheckOptions
from convgrad.report import CallCheck, CaseReport, TensorComparison
from convgrad.run.calls import CallResult, Tensors, later_calls

__all__ = ["run_case", "random_tensors", "DEFAULT_CASE_NAME"]

DEFAULT_CASE_NAME = "convgrad check"


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
        values = rng.standard_normal(shape).astype(dtype)
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
) -> CaseReport:
    """Check `implementation` on `geometry`: O against the reference convolution (unless
    `options.forward_check` is off), then dX, dK and db against finite differences.

    A geometry the implementation says it cannot run is skipped with its reason. Whatever the
    implementation does wrong (raises, wrong shape, NaN, writes into its inputs) is a failed tensor
    or case with a reason, never an exception.
    """
    start = time.perf_counter()
    name = name or DEFAULT_CASE_NAME
    skipped = implementation.unsupported(geometry)
    if skipped is not None and not options.strict:
        return CaseReport.build(
            name=name, geometry=geometry, implementation=implementation.name, options=options, skipped=skipped
        )
    refused = implementation.interface_mismatch(geometry) or (
        f"not checked under strict checking: {skipped}" if skipped is not None else None
    )
    if refused is not None:
        rtol = options.tolerances(geometry.dtype).rtol
        return CaseReport.build(
            name=name, geometry=geometry, implementation=implementation.name, options=options, reason=refused,
            tensors=tuple(TensorComparison.not_checked(n, geometry, rtol, "not checked") for n in TENSOR_NAMES),
        )
    guard = GuardedLayer(implementation, geometry)
    tensors, first = _first_call(geometry, guard, options, progress)
    calls: tuple[CallCheck, ...] = ()
    if first.failure is None:  # a layer that fails its first call has nothing more to prove
        first_held = (all(t.passed for t in tensors if t.name == "O"), all(t.passed for t in tensors))
        calls = later_calls(guard, geometry, options, first, random_tensors(geometry, options, call=1), first_held, progress)
    # Where and why are worked out from the report's own numbers, for failing tensors only.
    located = tuple(replace(t, location=locate(t, geometry)) if not t.passed else t for t in tensors)
    return CaseReport.build(
        name=name,
        geometry=geometry,
        implementation=implementation.name,
        options=options,
        tensors=located,
        elapsed_s=time.perf_counter() - start,
        forward_calls=guard.forward_calls,
        warnings=tuple(guard.warnings),
        reason=_case_failure(first),
        diagnoses=diagnose(geometry, located, first.tensors),
        calls=calls,
    )


def _case_failure(first: CallResult) -> Optional[str]:
    """The case's own failure: the first forward or backward call itself failed (not one tensor)."""
    return first.failure if first.y is None or all(g is None for g in first.gradients) else None


def _first_call(
    geometry: LayerGeometry, guard: GuardedLayer, options: CheckOptions, progress: Optional[ProgressFactory]
) -> tuple[tuple[TensorComparison, ...], CallResult]:
    """Every row of the first call, the one proved by finite differences, and what it returned."""
    rtol = options.tolerances(geometry.dtype).rtol
    x, w, b, dy = tensors = random_tensors(geometry, options)
    rows: list[TensorComparison] = []
    try:
        y = guard.forward(x, w, b)
    except ImplementationFailure as failure:
        rows.append(TensorComparison.not_checked("O", geometry, rtol, str(failure)))
        rows.extend(TensorComparison.not_checked(n, geometry, rtol, "not checked: forward failed") for n in GRADIENT_NAMES)
        return tuple(rows), CallResult(tensors, failure=str(failure))
    if options.forward_check:
        rows.append(_compare_output(y, x, w, b, geometry, rtol))
    try:
        gradients, problems = guard.backward(dy, x, w, b)
    except ImplementationFailure as failure:
        rows.extend(TensorComparison.not_checked(n, geometry, rtol, str(failure)) for n in GRADIENT_NAMES)
        return tuple(rows), CallResult(tensors, y, failure=str(failure))
    first = CallResult(tensors, y, tuple(gradients), str(next(iter(problems.values()))) if problems else None)
    base = BaseOutput(guard.forward, (x, w, b))  # one fresh call, shared by one-sided differences
    for gradient, analytical in zip(GRADIENT_NAMES, gradients):
        if analytical is None:
            problem = problems[gradient]
            rows.append(TensorComparison.not_checked(gradient, geometry, rtol, str(problem), problem.shape))
            continue
        try:
            rows.append(
                _compare_gradient(gradient, analytical, guard, (x, w, b), y, dy, geometry, options, base, progress)
            )
        except ImplementationFailure as failure:
            message = f"while computing finite differences for {gradient}, {failure}"
            rows.append(TensorComparison.not_checked(gradient, geometry, rtol, message, analytical.shape))
    return tuple(rows), first


def _compare_gradient(
    gradient: GradientName,
    analytical: np.ndarray,
    guard: GuardedLayer,
    inputs: Inputs,
    y: np.ndarray,
    dy: np.ndarray,
    geometry: LayerGeometry,
    options: CheckOptions,
    base: BaseOutput,
    progress: Optional[ProgressFactory],
) -> TensorComparison:
    """One gradient against its numerical gradient; a coloured result whose spot checks disagree
    is redone one coordinate at a time (central differences, trusting nothing)."""
    rtol = options.tolerances(geometry.dtype).rtol
    step = step_for(gradient, inputs, y, options.tolerances(geometry.dtype))
    floor = scale_floor(gradient, inputs[0], inputs[1], dy)
    numerical: NumericalGradient = numerical_gradient(
        options.method, guard.forward, inputs, gradient, dy, step, geometry,
        samples=options.samples, seed=options.seed, progress=progress,
        differences=options.differences, base=base, rtol=rtol,
    )
    disagreement = spot_check_disagreement(numerical, rtol, floor)
    if disagreement is not None:
        numerical = one_at_a_time(
            guard.forward, inputs, gradient, dy, step, spent=numerical.forward_calls, note=disagreement, progress=progress
        )
    return compare_numerical(gradient, analytical, numerical, rtol, floor)


def _compare_output(
    y: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, geometry: LayerGeometry, rtol: float
) -> TensorComparison:
    """The implementation's output against the reference convolution, computed in float64."""
    expected = reference.forward(
        x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **geometry.conv_settings()
    )
    return compare("O", y, expected, rtol, method="reference forward", against="reference")
