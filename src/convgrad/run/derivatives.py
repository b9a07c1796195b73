"""`--order 2` and `--jvp`: the rows for the derivatives of the backward and the forward-mode derivative.

Second order (numerics/second_order.py says why this is exact): random cotangents u, v, c of dX,
dK and db; the framework differentiates <u, dX> + <v, dK> + <c, db> through the layer's own
backward, one gradient at a time, and each derivative is compared at every coordinate with the
change of the matching output when x moves along u, w along v, b along c:

    dX wrt w  <->  dK's change when x moves along u      dX wrt dy  <->  O's change when x moves
    dK wrt x  <->  dX's change when w moves along v      dK wrt dy  <->  O's change when w moves
    db wrt dy <->  O's change when b moves along c

The seven other pairs (dX by x or b, dK by w or b, db by x, w or b) are zero for a convolution:
both sides are held to zero, and a row is shown only when one is not.

Forward mode (numerics/tangents.py): the layer's jvp along every colour of x, every kernel slot of
w and all of b, each output compared with the reference convolution's J t, which the forward
check has already tied the layer's own forward to: every entry of the Jacobian, and no forward call.
"""

from __future__ import annotations

import math
from dataclasses import replace
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
)
from convgrad.geometry import GRADIENT_NAMES, GradientName, LayerGeometry
from convgrad.adapters.failure import ImplementationFailure
from convgrad.harness.guard import GuardedLayer
from convgrad.harness.stages import Stage, enter
from convgrad.numerics.second_order import MOVED, backward_changes
from convgrad.numerics.tangents import LARGEST_TANGENT, tangent_directions
from convgrad.options import CheckOptions
from convgrad.report import Coordinate, Diagnosis, TensorComparison
from convgrad.run.calls import Tensors

__all__ = ["second_order_rows", "forward_mode_rows", "PAIRS", "ZERO_PAIRS", "Rows"]

Rows = tuple[tuple[TensorComparison, ...], tuple[Diagnosis, ...]]  # the rows, and why the failing ones fail

# (gradient, with respect to): the derivatives of the backward a convolution has.
PAIRS: tuple[tuple[GradientName, str], ...] = (("dX", "w"), ("dX", "dy"), ("dK", "x"), ("dK", "dy"), ("db", "dy"))
ZERO_PAIRS = tuple((g, t) for g in GRADIENT_NAMES for t in ("x", "w", "b", "dy") if (g, t) not in PAIRS)
_MOVED_FOR = dict(zip(GRADIENT_NAMES, MOVED))  # the cotangent of dX is x's direction, and so on
_READ_FOR = {"x": "dX", "w": "dK", "b": "db", "dy": "O"}  # a derivative by t is read off this output's change
_WRT_INDEX = {"x": 0, "w": 1, "b": 2, "dy": 3}
SECOND_ORDER_METHOD = "differences of the backward"
FORWARD_MODE_METHOD = "forward mode along the colours"


def second_order_rows(
    guard: GuardedLayer, tensors: Tensors, gradients: tuple[np.ndarray, np.ndarray, np.ndarray], y: np.ndarray,
    geometry: LayerGeometry, options: CheckOptions, has_bias: bool,
) -> Rows:
    """Every derivative of the backward a convolution has, and any it has not that is not zero."""
    enter(Stage("the derivatives of the backward"))
    x, w, b, dy = tensors
    tolerances = options.tolerances(geometry.dtype)
    rtol = tolerances.rtol
    outputs = GRADIENT_NAMES if has_bias else GRADIENT_NAMES[:2]
    rng = np.random.default_rng((options.seed, 2))
    cotangents = {
        g: rng.standard_normal(t.shape).astype(t.dtype) for g, t in zip(outputs, (x, w, b))
    }
    pairs = [p for p in PAIRS if p[0] in outputs]
    zeros = [p for p in ZERO_PAIRS if p[0] in outputs and (has_bias or p[1] != "b")]
    try:
        found = guard.backward_derivatives(dy, x, w, b, tuple(cotangents.get(g) for g in GRADIENT_NAMES))
        changes = backward_changes(
            guard.forward, lambda *a: _usable(guard.backward(*a)), (x, w, b), dy,
            {_MOVED_FOR[g]: cotangents[g] for g in outputs}, tolerances.relative_step,
        )
    except ImplementationFailure as failure:
        why = failed_call_cause(str(failure))
        return tuple(_not_compared(g, t, geometry, rtol, why) for g, t in pairs), ()
    moved = {c.moved: c for c in changes}
    base = {"dX": gradients[0], "dK": gradients[1], "db": gradients[2], "O": y}
    sizes = {"x": x, "w": w, "b": b, "dy": dy}
    largest = {name: float(np.max(np.abs(a), initial=0.0)) for name, a in {**base, **sizes}.items()}
    # Autograd found no path from anything to any gradient: the backward ran outside autograd.
    everything_none = all(d is None for g in outputs for d in found[GRADIENT_NAMES.index(g)] or (None,))
    rows = []
    diagnoses: list[Diagnosis] = []
    for gradient, wrt in pairs:
        derivatives = found[GRADIENT_NAMES.index(gradient)]
        value = None if derivatives is None else derivatives[_WRT_INDEX[wrt]]
        differences = moved[_MOVED_FOR[gradient]].per_output[_READ_FOR[wrt]]
        partner = {"w": largest["dy"], "dy": largest["w"] if gradient == "dX" else largest["x"], "x": largest["dy"]}[wrt]
        floor = FLOOR_FRACTION * float(np.max(np.abs(cotangents[gradient]), initial=0.0)) * (partner if gradient != "db" else 1.0)
        row = compare(gradient, np.zeros_like(differences) if value is None else value, differences, rtol,
                      method=SECOND_ORDER_METHOD if wrt != "dy" else "differences of the forward", floor=floor,
                      against="differences", forward_calls=moved[_MOVED_FOR[gradient]].calls)
        row = replace(row, wrt=wrt, shape=tuple(differences.shape), analytical=None, numerical=None)
        if not row.passed:
            if everything_none:
                diagnosis: Optional[Diagnosis] = no_history(row.label)
            elif derivatives is not None and all(d is None for d in derivatives):
                diagnosis = gradient_without_history(row.label, gradient)
            else:
                diagnosis = second_order_cause(row.label, gradient, wrt, value, differences, rtol, row.scale or 0.0)
            diagnoses += [diagnosis] if diagnosis is not None else []
        rows.append(row)
    for gradient, wrt in zeros:
        derivatives = found[GRADIENT_NAMES.index(gradient)]
        value = None if derivatives is None else derivatives[_WRT_INDEX[wrt]]
        differences = moved[_MOVED_FOR[gradient]].per_output[_READ_FOR[wrt]]
        # What the derivative would be were the gradient proportional to the tensor: errors are measured against it.
        scale = float(np.max(np.abs(cotangents[gradient]), initial=0.0)) * largest[_READ_FOR[wrt]] / (largest[wrt] or 1.0)
        found_largest = 0.0 if value is None else float(np.max(np.abs(value), initial=0.0))
        moved_largest = float(np.max(np.abs(differences), initial=0.0))
        limit = rtol * max(scale, np.finfo(np.float64).tiny)
        if found_largest > limit or moved_largest > limit:
            row = compare(gradient, np.zeros_like(differences) if value is None else value, differences, rtol,
                          method=SECOND_ORDER_METHOD, floor=scale, against="differences")
            row = replace(row, wrt=wrt, status="failed", note=None, analytical=None, numerical=None)
            rows.append(row)
            diagnoses.append(structural_zero_cause(row.label, gradient, wrt, found_largest, moved_largest, limit))
    return tuple(rows), tuple(diagnoses)


def forward_mode_rows(
    guard: GuardedLayer, tensors: Tensors, geometry: LayerGeometry, options: CheckOptions, has_bias: bool,
) -> Rows:
    """The layer's jvp along every colour of x, slot of w and all of b, against the reference's."""
    enter(Stage("the forward-mode derivatives"))
    x, w, b, _ = tensors
    rtol = options.tolerances(geometry.dtype).rtol
    settings = geometry.conv_settings()
    # The largest Jacobian entry times the largest tangent: what errors are measured against.
    scales = {name: LARGEST_TANGENT * entry for name, entry in
              (("x", float(np.max(np.abs(w), initial=0.0))), ("w", float(np.max(np.abs(x), initial=0.0))), ("b", 1.0))}
    tallies: dict[str, _Tally] = {}
    failed: dict[str, ImplementationFailure] = {}
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for direction in tangent_directions(geometry, x, w, b, with_bias=has_bias, seed=options.seed):
        moved = direction.moved
        tally = tallies.setdefault(moved, _Tally(moved, scales[moved] or 1.0, rtol))
        if moved in failed:
            continue
        try:
            found = guard.jvp(direction.x, w, b, direction.tangents)
        except ImplementationFailure as failure:
            failed[moved] = failure
            continue
        tangent_x, tangent_w, tangent_b = direction.tangents
        if tangent_b is not None:
            expected = np.broadcast_to(tangent_b.astype(np.float64).reshape(1, -1, *([1] * geometry.ndim)),
                                       (x.shape[0], *geometry.y_shape[1:]))
        else:
            moved_x = x64 if tangent_x is None else tangent_x.astype(np.float64)
            moved_w = w64 if tangent_w is None else tangent_w.astype(np.float64)
            expected = reference.forward_by_channel(moved_x, moved_w, **settings)
        tally.add(found, expected, direction.what)
    rows = []
    diagnoses: list[Diagnosis] = []
    for moved, tally in tallies.items():
        tensor = {"x": x, "w": w, "b": b}[moved]
        if moved in failed:
            rows.append(replace(
                TensorComparison.not_checked("O", geometry, rtol, failed_call_cause(str(failed[moved])), status="failed"),
                wrt=moved, expected_shape=tensor.shape, total=tensor.size,
            ))
        else:
            row, diagnosis = tally.row(tensor.shape, rtol)
            rows.append(row)
            diagnoses += [diagnosis] if diagnosis is not None else []
    return tuple(rows), tuple(diagnoses)


class _Tally:
    """The Jacobian entries of one tensor's directions, compared as they come (they never all fit)."""

    def __init__(self, moved: str, scale: float, rtol: float) -> None:
        self.moved, self.scale, self.rtol = moved, scale, rtol
        self.entries = self.mismatches = self.directions = self.calls = 0
        self.largest_error = 0.0
        self.largest_found = 0.0
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
        self.largest_found = max(self.largest_found, float(np.max(np.abs(values), initial=0.0)))
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


def _usable(result: tuple[list[Optional[np.ndarray]], dict[GradientName, ImplementationFailure]]) -> list[np.ndarray]:
    """The guarded backward's gradients, the first unusable one raised."""
    gradients, problems = result
    for problem in problems.values():
        raise problem
    return [g for g in gradients if g is not None]


def _not_compared(gradient: GradientName, wrt: str, geometry: LayerGeometry, rtol: float, why: str) -> TensorComparison:
    """A derivative that could not be taken: a failed check (the layer cannot be differentiated so)."""
    shapes = {"x": geometry.x_shape, "w": geometry.w_shape, "b": geometry.b_shape, "dy": geometry.y_shape}
    return replace(
        TensorComparison.not_checked(gradient, geometry, rtol, why, status="failed"),
        wrt=wrt, expected_shape=shapes[wrt], total=math.prod(shapes[wrt]),
    )
