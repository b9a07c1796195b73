"""`--order 2` and `--jvp`: the rows for the derivatives of the backward and the forward-mode derivative.

Second order (numerics/second_order.py says why this is exact): random cotangents u, v, c of dX,
dK and db; the framework differentiates <u, dX>, <v, dK> and <c, db> through the layer's own
backward, one gradient at a time, and each derivative is compared at every coordinate with the
change of the matching output when x moves along u, w along v, b along c:

    dX wrt w  <->  dK's change when x moves along u      dX wrt dy  <->  O's change when x moves
    dK wrt x  <->  dX's change when w moves along v      dK wrt dy  <->  O's change when w moves
    db wrt dy <->  O's change when b moves along c

The seven other pairs (dX by x or b, dK by w or b, db by x, w or b) are zero for a convolution:
both sides are held to zero, and a row is shown only when one is not. So is the derivative of
the three inner products together, which must be the sum of the changes (a double backward can be
right for each gradient alone and wrong when they arrive together), and the gradients the backward
returns while recorded for differentiation, which must be the first call's (`recorded backward`).

Forward mode (numerics/tangents.py): the layer's jvp along every colour of x, every kernel slot of
w and all of b, each output compared with the reference convolution's J t, which the forward
check has already tied the layer's own forward to: every entry of the Jacobian. The output the
jvp returns beside its tangent must be the layer's own output (`output in forward mode`).

Both run after the call protocol has held: the differences assume a backward without state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from convgrad import reference
from convgrad.compare import FLOOR_FRACTION, compare
from convgrad.findings.derivatives import (
    failed_call_cause,
    gradient_without_history,
    no_history,
    second_order_cause,
    structural_zero_cause,
    tangent_cause,
    together_cause,
    together_tangents_cause,
)
from convgrad.geometry import GRADIENT_NAMES, GradientName, LayerGeometry, TensorName
from convgrad.adapters.failure import ImplementationFailure
from convgrad.harness.guard import GuardedLayer
from convgrad.harness.stages import Stage, enter
from convgrad.numerics.gradient import ProgressFactory
from convgrad.numerics.second_order import MOVED, backward_changes
from convgrad.numerics.step import perturbation_scale
from convgrad.numerics.tangents import LARGEST_TANGENT, tangent_calls, tangent_directions
from convgrad.options import CheckOptions
from convgrad.report import CallCheck, Coordinate, Diagnosis, TensorComparison
from convgrad.run.calls import Tensors

__all__ = ["second_order_rows", "forward_mode_rows", "unchecked_rows", "Derivatives", "PAIRS", "ZERO_PAIRS"]

# (gradient, with respect to): the derivatives of the backward a convolution has.
PAIRS: tuple[tuple[GradientName, str], ...] = (("dX", "w"), ("dX", "dy"), ("dK", "x"), ("dK", "dy"), ("db", "dy"))
ZERO_PAIRS = tuple((g, t) for g in GRADIENT_NAMES for t in ("x", "w", "b", "dy") if (g, t) not in PAIRS)
WRT = ("x", "w", "b", "dy")  # the order a framework returns derivatives in
_MOVED_FOR = dict(zip(GRADIENT_NAMES, MOVED))  # the cotangent of dX is x's direction, and so on
_READ_FOR = {"x": "dX", "w": "dK", "b": "db", "dy": "O"}  # a derivative by t is read off this output's change
# The tensor a derivative's terms multiply its cotangent by: dX wrt w is corr(u, dy), dX wrt dy is
# conv(u, w), dK wrt x is conv_transpose(dy, v), dK wrt dy is conv(x, v); db wrt dy is c itself.
_PARTNER = {("dX", "w"): "dy", ("dX", "dy"): "w", ("dK", "x"): "dy", ("dK", "dy"): "x"}
SECOND_ORDER_METHOD = "differences of the backward"
FORWARD_MODE_METHOD = "forward mode along the colours"


@dataclass(frozen=True)
class Derivatives:
    """Rows for the first call's table, why the failing ones fail, and the calls checked besides."""

    rows: tuple[TensorComparison, ...] = ()
    diagnoses: tuple[Diagnosis, ...] = ()
    calls: tuple[CallCheck, ...] = ()

    def __add__(self, other: "Derivatives") -> "Derivatives":
        return Derivatives(self.rows + other.rows, self.diagnoses + other.diagnoses, self.calls + other.calls)


def second_order_rows(
    guard: GuardedLayer, tensors: Tensors, gradients: tuple[np.ndarray, np.ndarray, np.ndarray], y: np.ndarray,
    geometry: LayerGeometry, options: CheckOptions, has_bias: bool,
) -> Derivatives:
    """Every derivative of the backward a convolution has, and any it has not that is not zero."""
    enter(Stage("the derivatives of the backward"))
    x, w, b, dy = tensors
    tolerances = options.tolerances(geometry.dtype)
    rtol = tolerances.rtol
    outputs = GRADIENT_NAMES if has_bias else GRADIENT_NAMES[:2]
    rng = np.random.default_rng((options.seed, 2))
    cotangents = {g: rng.standard_normal(t.shape).astype(t.dtype) for g, t in zip(outputs, (x, w, b))}
    pairs = [p for p in PAIRS if p[0] in outputs]
    zeros = [p for p in ZERO_PAIRS if p[0] in outputs and (has_bias or p[1] != "b")]
    # Each tensor moves by its perturbation scale, as in first order: enough to move O past its rounding.
    moves = {_MOVED_FOR[g]: tolerances.relative_step * (perturbation_scale(g, (x, w, b), y) or 1.0) for g in outputs}
    try:
        found = guard.backward_derivatives(dy, x, w, b, tuple(cotangents.get(g) for g in GRADIENT_NAMES))
        changes = backward_changes(guard.forward, lambda *a: _usable(guard.backward(*a)), (x, w, b), dy,
                                   {_MOVED_FOR[g]: cotangents[g] for g in outputs}, moves)
    except ImplementationFailure as failure:
        why = failed_call_cause(str(failure))
        return Derivatives(tuple(_unchecked(g, t, geometry, rtol, why, "failed") for g, t in pairs))
    moved = {c.moved: c for c in changes}
    largest = {name: _largest(a) for name, a in
               {"dX": gradients[0], "dK": gradients[1], "db": gradients[2], "O": y, "x": x, "w": w, "b": b, "dy": dy}.items()}
    # Autograd found no path from anything to any gradient: the backward ran outside autograd.
    everything_none = all(d is None for g in outputs for d in found.per_gradient[GRADIENT_NAMES.index(g)] or (None,))

    def side(gradient: GradientName, wrt: str) -> tuple[Optional[np.ndarray], np.ndarray, Optional[tuple[Optional[np.ndarray], ...]]]:
        """(the framework's derivative of gradient by wrt, the differences, all its derivatives)."""
        derivatives = found.per_gradient[GRADIENT_NAMES.index(gradient)]
        value = None if derivatives is None else derivatives[WRT.index(wrt)]
        return value, moved[_MOVED_FOR[gradient]].per_output[_READ_FOR[wrt]], derivatives

    rows, diagnoses = [], []
    for gradient, wrt in pairs:
        value, differences, derivatives = side(gradient, wrt)
        # One product term of the derivative: the cotangent times the tensor it multiplies.
        partner = largest[_PARTNER[gradient, wrt]] if (gradient, wrt) in _PARTNER else 1.0
        floor = FLOOR_FRACTION * _largest(cotangents[gradient]) * partner
        row = _row(gradient, wrt, value, differences, rtol, floor, moved[_MOVED_FOR[gradient]].calls)
        if not row.passed:
            diagnosis: Optional[Diagnosis]
            if everything_none:
                diagnosis = no_history(row.label)
            elif derivatives is not None and all(d is None for d in derivatives):
                diagnosis = gradient_without_history(row.label, gradient)
            else:
                diagnosis = second_order_cause(row.label, gradient, wrt, value, differences, rtol, row.scale or 0.0)
            diagnoses += [diagnosis] if diagnosis is not None else []
        rows.append(row)
    for gradient, wrt in zeros:
        value, differences, _ = side(gradient, wrt)
        # What the derivative would be were the gradient proportional to the tensor: errors are measured against it.
        scale = _largest(cotangents[gradient]) * largest[_READ_FOR[wrt]] / (largest[wrt] or 1.0)
        found_largest, moved_largest = _largest(value), _largest(differences)
        limit = rtol * max(scale, np.finfo(np.float64).tiny)
        if found_largest > limit or moved_largest > limit:
            row = replace(_row(gradient, wrt, value, differences, rtol, scale, 0), status="failed", note=None)
            rows.append(row)
            diagnoses.append(structural_zero_cause(row.label, gradient, wrt, found_largest, moved_largest, limit))
    if all(row.passed for row in rows):  # each gradient alone is right: now all of them at once
        scale = max(row.scale or 0.0 for row in rows)
        for wrt, value in zip(WRT, found.together):
            if wrt == "b" and not has_bias:
                continue
            expected = sum(c.per_output[_READ_FOR[wrt]] for c in changes)
            row = _row("dX", wrt, value, np.asarray(expected), rtol, scale, 0)
            if not row.passed:
                row = replace(row, together=True, note=None)
                rows.append(row)
                diagnoses.append(together_cause(row.label, wrt))
    return Derivatives(tuple(rows), tuple(diagnoses), (_recorded_backward(found.recorded, gradients, geometry, rtol, outputs),))


def forward_mode_rows(
    guard: GuardedLayer, tensors: Tensors, y: np.ndarray, geometry: LayerGeometry, options: CheckOptions,
    has_bias: bool, progress: Optional[ProgressFactory] = None,
) -> Derivatives:
    """The layer's jvp along every colour of x, slot of w and all of b, against the reference's."""
    enter(Stage("the forward-mode derivatives"))
    x, w, b, _ = tensors
    rtol = options.tolerances(geometry.dtype).rtol
    settings = geometry.conv_settings()
    # The largest Jacobian entry times the largest tangent: what errors are measured against.
    scales = {name: LARGEST_TANGENT * entry for name, entry in (("x", _largest(w)), ("w", _largest(x)), ("b", 1.0))}
    tallies: dict[str, _Tally] = {}
    failed: dict[str, ImplementationFailure] = {}
    outputs = _Tally("O", _largest(y) or 1.0, rtol)  # the output each call returns beside its tangent
    advance = None if progress is None else progress(
        "forward-mode derivatives", tangent_calls(geometry, x, w, with_bias=has_bias))
    for direction in tangent_directions(geometry, x, w, b, with_bias=has_bias, seed=options.seed):
        moved = direction.moved
        tally = tallies.setdefault(moved, _Tally(moved, scales[moved] or 1.0, rtol))
        if advance is not None:
            advance(1)
        if moved in failed:
            continue
        try:
            output, found = guard.jvp(direction.x, w, b, direction.tangents)
        except ImplementationFailure as failure:
            failed[moved] = failure
            continue
        outputs.add(output, np.concatenate([y] * (direction.x.shape[0] // y.shape[0])), direction.what)
        tangent_x, tangent_w, tangent_b = direction.tangents
        if tangent_b is not None:
            expected = np.broadcast_to(tangent_b.astype(np.float64).reshape(1, -1, *([1] * geometry.ndim)), y.shape)
        else:
            moved_x = x if tangent_x is None else tangent_x
            moved_w = w if tangent_w is None else tangent_w
            expected = reference.forward_by_channel(moved_x.astype(np.float64), moved_w.astype(np.float64), **settings)
        tally.add(found, expected, direction.what)
    rows, diagnoses = [], []
    if not failed and all(t.mismatches == 0 for t in tallies.values()):  # each tensor alone is right: now all at once
        together = _all_tangents_at_once(guard, tensors, y, geometry, options, has_bias, rtol)
        rows += [together[0]] if together[0] is not None else []
        diagnoses += [together[1]] if together[1] is not None else []
    for moved, tally in tallies.items():
        tensor = {"x": x, "w": w, "b": b}[moved]
        if moved in failed:
            rows.append(_unchecked("O", moved, geometry, rtol, failed_call_cause(str(failed[moved])), "failed"))
            continue
        row, diagnosis = tally.row(tensor.shape, rtol)
        rows.append(row)
        diagnoses += [diagnosis] if diagnosis is not None else []
    calls = () if not outputs.calls else (outputs.output_check(),)
    return Derivatives(tuple(rows), tuple(diagnoses), calls)


def _all_tangents_at_once(
    guard: GuardedLayer, tensors: Tensors, y: np.ndarray, geometry: LayerGeometry, options: CheckOptions,
    has_bias: bool, rtol: float,
) -> tuple[Optional[TensorComparison], Optional[Diagnosis]]:
    """One jvp moving x, w and b together (random tangents everywhere), against the sum of the
    reference's J t: a rule right for each tangent alone can add a cross term, or drop one, when
    several arrive (a jvp over a network's parameters and its input). A row only when it fails."""
    x, w, b, _ = tensors
    rng = np.random.default_rng((options.seed, 4))
    moved = [t for t in (x, w, b) if has_bias or t is not b]
    tangents = tuple(rng.standard_normal(t.shape).astype(t.dtype) for t in moved) + ((None,) if not has_bias else ())
    try:
        _, found = guard.jvp(x, w, b, tangents)
    except ImplementationFailure:
        return None, None  # a rule that cannot take them together raised on each alone too, or will in use
    tangent_x, tangent_w, tangent_b = tangents
    assert tangent_x is not None and tangent_w is not None
    settings = geometry.conv_settings()
    expected = (reference.forward_by_channel(tangent_x.astype(np.float64), w.astype(np.float64), **settings)
                + reference.forward_by_channel(x.astype(np.float64), tangent_w.astype(np.float64), **settings))
    if tangent_b is not None:
        expected = expected + tangent_b.astype(np.float64).reshape(1, -1, *([1] * geometry.ndim))
    row = compare("O", np.zeros_like(expected) if found is None else found, expected, rtol,
                  method="forward mode along every tensor at once", against="reference")
    if row.passed:
        return None, None
    label = "jvp x+w+b" if has_bias else "jvp x+w"
    row = replace(row, wrt=label.split()[1], together=True, forward_calls=1, note=None, analytical=None, numerical=None)
    return row, together_tangents_cause(row.label)


def unchecked_rows(options: CheckOptions, geometry: LayerGeometry, has_bias: bool, why: str) -> tuple[TensorComparison, ...]:
    """The rows `--order 2` and `--jvp` would show, left unchecked for `why`."""
    rtol = options.tolerances(geometry.dtype).rtol
    asked: list[tuple[TensorName, str]] = []
    if options.order == 2:
        asked += [(g, t) for g, t in PAIRS if has_bias or g != "db"]
    if options.jvp:
        asked += [("O", t) for t in MOVED if has_bias or t != "b"]
    return tuple(_unchecked(name, wrt, geometry, rtol, why, "not checked") for name, wrt in asked)


def _row(gradient: TensorName, wrt: str, value: Optional[np.ndarray], differences: np.ndarray, rtol: float,
         floor: float, calls: int) -> TensorComparison:
    row = compare(gradient, np.zeros_like(differences) if value is None else value, differences, rtol,
                  method=SECOND_ORDER_METHOD if wrt != "dy" else "differences of the forward", floor=floor,
                  against="differences", forward_calls=calls)
    return replace(row, wrt=wrt, analytical=None, numerical=None)


def _recorded_backward(recorded: tuple[Optional[np.ndarray], ...], gradients: tuple[np.ndarray, ...],
                       geometry: LayerGeometry, rtol: float, outputs: tuple[GradientName, ...]) -> CallCheck:
    """The gradients the backward returned while recorded for differentiation against the first
    call's: a backward may take another path when autograd records it (create_graph=True)."""
    rows = []
    for name, values, first in zip(GRADIENT_NAMES, recorded, gradients):
        if name not in outputs:
            continue
        if values is None:
            rows.append(TensorComparison.not_checked(name, geometry, rtol, "no gradient while recorded", status="failed"))
        else:
            rows.append(replace(compare(name, values, first, rtol, method="the first call's gradient", against="first call"),
                                analytical=None, numerical=None))
    held = all(r.passed for r in rows)
    return CallCheck(
        name="recorded backward", called_with="the first call's tensors, its backward recorded for differentiation "
        "(torch's create_graph=True, jax's vjp of the vjp)", compared_with="the first call's gradients",
        status="passed" if held else "failed", tensors=tuple(rows), part="call protocol",
        cause=None if held else ("the backward returns other gradients when recorded for differentiation (a gradient "
                                 "penalty, create_graph=True) than when not: it takes another path, or keeps a buffer"),
    )


class _Tally:
    """The Jacobian entries of one tensor's directions, compared as they come (they never all fit)."""

    def __init__(self, moved: str, scale: float, rtol: float) -> None:
        self.moved, self.scale, self.rtol = moved, scale, rtol
        self.entries = self.mismatches = self.directions = self.calls = 0
        self.largest_error = 0.0
        self.none = True
        self.worst: Optional[tuple[float, tuple[int, ...], float, float, str]] = None
        self.samples: list[tuple[np.ndarray, np.ndarray]] = []  # a few calls' values, to tell why

    def add(self, found: Optional[np.ndarray], expected: np.ndarray, what: tuple[str, ...]) -> None:
        self.calls += 1
        self.directions += len(what)
        values = np.zeros(expected.shape) if found is None else found
        self.none = self.none and found is None
        errors = np.abs(values - expected)
        self.entries += errors.size
        self.mismatches += int(np.count_nonzero(errors > self.rtol * self.scale))
        at = int(np.argmax(errors)) if errors.size else 0
        error = float(errors.flat[at]) if errors.size else 0.0
        if len(self.samples) < 4:
            self.samples.append((values.ravel()[:4096].copy(), np.asarray(expected).ravel()[:4096].copy()))
        if self.worst is None or error > self.worst[0]:
            index = tuple(int(i) for i in np.unravel_index(at, errors.shape))
            items = errors.shape[0] // max(1, len(what))  # the batch of one direction
            within = (index[0] % items, *index[1:])  # the output of the layer's own batch
            self.worst = (error, within, float(values.flat[at]), float(expected.flat[at]), what[index[0] // items])
        self.largest_error = max(self.largest_error, error)

    def row(self, shape: tuple[int, ...], rtol: float) -> tuple[TensorComparison, Optional[Diagnosis]]:
        passed = self.mismatches == 0
        worst = self.worst or (0.0, (), 0.0, 0.0, "")
        reason = diagnosis = None
        if not passed:
            found = np.concatenate([f for f, _ in self.samples])
            expected = np.concatenate([e for _, e in self.samples])
            diagnosis = tangent_cause(f"jvp {self.moved}", self.moved, self.none, found, expected, rtol, self.scale)
            reason = (
                f"{self.mismatches} of {self.entries} Jacobian entries differ by more than {rtol:g} of the scale "
                f"{self.scale:.3g}; worst at output {list(worst[1])} moving {self.moved} along {worst[4]}: jvp "
                f"{worst[2]:.6g}, reference {worst[3]:.6g}"
            )
        return TensorComparison(
            name="O", expected_shape=shape, shape=shape, tolerance=rtol, status="passed" if passed else "failed",
            method=f"{FORWARD_MODE_METHOD} ({self.directions} direction{'' if self.directions == 1 else 's'})",
            checked=self.entries, total=self.entries, mismatches=self.mismatches, max_abs_error=self.largest_error,
            max_rel_error=self.largest_error / self.scale, scale=self.scale,
            worst=(Coordinate(worst[1], worst[2], worst[3], worst[0], worst[0] / self.scale),) if self.worst else (),
            forward_calls=self.calls, reason=reason, wrt=self.moved,
        ), diagnosis

    def output_check(self) -> CallCheck:
        """The outputs the jvp returned beside its tangents against the layer's own output."""
        held = self.mismatches == 0
        worst = self.worst or (0.0, (), 0.0, 0.0, "")
        row = TensorComparison(
            name="O", expected_shape=(), shape=(), tolerance=self.rtol, status="passed" if held else "failed",
            method="the first call's output", checked=self.entries, total=self.entries, mismatches=self.mismatches,
            max_abs_error=self.largest_error, max_rel_error=self.largest_error / self.scale, scale=self.scale,
            reason=None if held else (f"{self.mismatches} of {self.entries} outputs differ; worst at {list(worst[1])} "
                                      f"along {worst[4]}: {worst[2]:.6g} in forward mode, {worst[3]:.6g} in the first call"),
        )
        return CallCheck(
            name="output in forward mode", called_with="the first call's tensors with tangents (the jvp's calls)",
            compared_with="the first call's output", status=row.status, tensors=(row,), forward_calls=self.calls,
            cause=None if held else "the output the forward-mode rule returns is not the layer's output: its primal "
                                    "computation differs from the forward's (a custom_jvp's rule, a Function's forward "
                                    "under forward AD)",
        )


def _largest(values: Optional[np.ndarray]) -> float:
    return 0.0 if values is None else float(np.max(np.abs(values), initial=0.0))


def _usable(result: tuple[list[Optional[np.ndarray]], dict[GradientName, ImplementationFailure]]) -> list[np.ndarray]:
    """The guarded backward's gradients, the first unusable one raised (then none is None)."""
    gradients, problems = result
    for problem in problems.values():
        raise problem
    return [g for g in gradients if g is not None]


def _unchecked(name: TensorName, wrt: str, geometry: LayerGeometry, rtol: float, why: str,
               status: str) -> TensorComparison:
    """A row that was not compared: "failed" when the layer cannot be differentiated so, "not
    checked" when an earlier part failed. Its expected shape is what it is taken with respect to."""
    shapes = {"x": geometry.x_shape, "w": geometry.w_shape, "b": geometry.b_shape, "dy": geometry.y_shape}
    row = TensorComparison.not_checked(name, geometry, rtol, why, status="failed" if status == "failed" else "not checked")
    return replace(row, wrt=wrt, expected_shape=shapes[wrt], total=math.prod(shapes[wrt]))
