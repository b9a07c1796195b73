"""The guard every call to the implementation under test goes through.

`GuardedLayer` calls a `ConvLayer` so that whatever it does (raise, return the wrong shape, NaN,
write into its inputs) becomes an `ImplementationFailure` (adapters/failure.py) with a one-line
reason instead of a crash.
Every call gets fresh inputs (in C order unless a memory layout is asked for), and every result is
copied on return; an array the layer returned that changes during a later call (a reused output
buffer) is recorded as a finding, since a caller keeping that result would see it change (watch.py).

Whether the layer wrote into its inputs is compared bit for bit after the first `INPUTS_COMPARED`
calls of each kind, after every call with inputs of a shape, dtype or layout not seen before, and
after every `INPUTS_SPOT_EVERY`-th call past those. A layer that writes into its inputs does so from
its first calls (an in-place ReLU, a normalisation, a cast into the input's buffer); comparing every
one of the thousand calls of a large check cost a pass over x and w per call. The calls in between
still get fresh copies, so what a layer writes there cannot reach the check's own arrays.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from convgrad.geometry import GRADIENT_NAMES, ConvSettings, GradientName, LayerGeometry, format_shape
from convgrad.harness.memory import MemoryLayout, fresh_copy
from convgrad.harness.stages import layer_call
from convgrad.adapters.failure import ImplementationFailure, describe_exception
from convgrad.adapters.protocol import ConvLayer, DifferentiableLayer, DoubleBackward, Unsupported, differentiable
from convgrad.harness.watch import CallKind, KeptInputs, ReturnWatch, same_bits

__all__ = ["GuardedLayer", "GuardFindings", "guarded_call", "checked_array", "finite", "unchanged", "INPUTS_COMPARED", "INPUTS_SPOT_EVERY"]

INPUTS_COMPARED = 8  # calls of each kind after which the inputs are compared
INPUTS_SPOT_EVERY = 8  # past those, every this many calls (and every call with new shapes or layouts)


@dataclass(frozen=True)
class GuardFindings:
    """What a guard has counted and found so far, to hand from a worker process to its parent."""

    forward_calls: int
    warnings: tuple[str, ...]
    reused: dict[str, str]
    kept_inputs_changed: dict[str, str]


@dataclass
class GuardedLayer:
    """Calls an implementation with fresh copies and turns every misbehaviour into a reason.

    Counts forward calls (the cost measure of a gradient check) and collects warnings that do not
    fail a check, such as a result in a different dtype than its inputs, `reused`: one reason
    per kind of returned array that a later call overwrote, and `kept_inputs_changed`: one reason
    per input the layer kept and changed during a later call.
    """

    layer: ConvLayer
    geometry: LayerGeometry
    forward_calls: int = 0
    warnings: list[str] = field(default_factory=list)
    _watch: ReturnWatch = field(default_factory=ReturnWatch, repr=False)
    _inputs: KeptInputs = field(default_factory=KeptInputs, repr=False)
    # What every call takes from the geometry, worked out once.
    _settings: ConvSettings = field(init=False, repr=False)
    _calls: dict[str, int] = field(default_factory=dict, repr=False)  # by kind, for the input schedule
    _inputs_seen: set[tuple[Any, ...]] = field(default_factory=set, repr=False)  # shapes, dtypes, layouts

    def __post_init__(self) -> None:
        self._settings = self.geometry.conv_settings()

    def findings(self) -> GuardFindings:
        """A copy of what this guard has counted and found so far (returned arrays compared first)."""
        return GuardFindings(self.forward_calls, tuple(self.warnings), dict(self.reused), dict(self._inputs.changed))

    def skip_ahead(self, calls: int) -> None:
        """In a worker process: count `calls` forward calls as made before its share, as one process
        would have made them, so the comparisons past the first calls fall on the same calls."""
        self._calls["forward"] = self._calls.get("forward", 0) + calls
        self._watch.skip_ahead("forward", "the output", calls)

    def absorb(self, before: GuardFindings, after: GuardFindings) -> None:
        """Add what a copy of this guard (in a worker process) counted and found between `before`
        and `after`, as if this guard had made those calls."""
        made = after.forward_calls - before.forward_calls
        self.forward_calls += made
        self.skip_ahead(made)  # the comparisons from here on fall on the calls one process's would
        self.warnings.extend(w for w in after.warnings if w not in self.warnings)
        self._watch.record(after.reused)
        for label, why in after.kept_inputs_changed.items():
            self._inputs.changed.setdefault(label, why)

    @property
    def reused(self) -> dict[str, str]:
        """Why it is a failure, by 'call name', for each returned array a later call overwrote."""
        return self._watch.reused()

    @property
    def kept_inputs_changed(self) -> dict[str, str]:
        """Why it is a failure, by 'call name', for each input a later call changed in place."""
        return self._inputs.changed

    def forward(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray, *, layouts: Optional[Mapping[str, MemoryLayout]] = None
    ) -> np.ndarray:
        """y as float64, shape (N, F, *out) checked; raises ImplementationFailure otherwise."""
        self.forward_calls += 1
        result = self._call("forward", self.layer.forward, {"x": x, "w": w, "b": b}, layouts)
        expected = (x.shape[0], *self.geometry.y_shape[1:])
        return self._as_array("forward", "the output", result, expected, x.dtype)

    def backward(
        self,
        dy: np.ndarray,
        x: np.ndarray,
        w: np.ndarray,
        b: np.ndarray,
        *,
        layouts: Optional[Mapping[str, MemoryLayout]] = None,
    ) -> tuple[list[Optional[np.ndarray]], dict[GradientName, ImplementationFailure]]:
        """(dx, dw, db) as float64, and a reason per gradient that came back unusable.

        A problem with one gradient (shape, NaN) is reported on that gradient alone, so the others
        are still checked; a problem with the call itself raises ImplementationFailure.
        """
        result = self._call("backward", self.layer.backward, {"dy": dy, "x": x, "w": w, "b": b}, layouts)
        if result is None:
            raise ImplementationFailure("backward returned None; return the tuple (dx, dw, db)")
        if isinstance(result, np.ndarray) or not isinstance(result, Sequence):
            raise ImplementationFailure(
                f"backward returned a {type(result).__name__}; return the tuple (dx, dw, db)"
            )
        if len(result) != 3:
            raise ImplementationFailure(
                f"backward returned {len(result)} results; return the tuple (dx, dw, db)"
            )
        g = self.geometry
        gradients: list[Optional[np.ndarray]] = []
        problems: dict[GradientName, ImplementationFailure] = {}
        for name, value, shape in zip(GRADIENT_NAMES, result, (g.x_shape, g.w_shape, g.b_shape)):
            try:
                gradients.append(self._as_array("backward", name, value, shape, x.dtype))
            except ImplementationFailure as failure:
                gradients.append(None)
                problems[name] = failure
        return gradients, problems

    def backward_derivatives(
        self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, cotangents: tuple[Optional[np.ndarray], ...],
    ) -> DoubleBackward:
        """The framework's derivatives of the layer's backward (adapters/protocol.py: DoubleBackward),
        as float64 with their shapes checked, None where it found no path; raises
        ImplementationFailure when the call raises, returns something else, or writes into its
        inputs or the cotangents it was handed."""
        what = "differentiating the backward"
        inputs = {"dy": dy, "x": x, "w": w, "b": b}
        result = self._call_once(what, _differentiable(self.layer).backward_derivatives, inputs,
                                 {f"the cotangent of {g}": t for g, t in zip(GRADIENT_NAMES, cotangents)})
        if not isinstance(result, DoubleBackward) or len(result.per_gradient) != len(GRADIENT_NAMES):
            raise ImplementationFailure(f"{what} returned {type(result).__name__}, not the derivatives of each gradient")
        by = {"x": x.shape, "w": w.shape, "b": b.shape, "dy": dy.shape}

        def derivatives(of: str, values: tuple[Any, ...]) -> tuple[Optional[np.ndarray], ...]:
            return tuple(None if v is None else self._derivative(what, f"the derivative of {of} by {name}", v, shape, x.dtype)
                         for v, (name, shape) in zip(values, by.items()))

        recorded = tuple(None if g is None else self._derivative(what, name, g, shape, x.dtype)
                         for g, name, shape in zip(result.recorded, GRADIENT_NAMES, (x.shape, w.shape, b.shape)))
        per_gradient = tuple(None if d is None else derivatives(g, d) for g, d in zip(GRADIENT_NAMES, result.per_gradient))
        return DoubleBackward(recorded, per_gradient, derivatives("the gradients together", result.together))

    def jvp(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray, tangents: tuple[Optional[np.ndarray], ...]
    ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        """(the output, its forward-mode derivative along `tangents`) as float64, shapes checked;
        the derivative None when the output carries no tangent. Raises ImplementationFailure as
        `forward` does, and for a tangent written into."""
        what = "the forward-mode derivative"
        self.forward_calls += 1  # a forward pass carrying tangents
        result = self._call_once(what, _differentiable(self.layer).jvp, {"x": x, "w": w, "b": b},
                                 {f"the tangent of {n}": t for n, t in zip("xwb", tangents)})
        if not isinstance(result, tuple) or len(result) != 2:
            raise ImplementationFailure(f"{what} returned {type(result).__name__}, not the output and its tangent")
        expected = (x.shape[0], *self.geometry.y_shape[1:])
        output = self._derivative(what, "the output", result[0], expected, x.dtype)
        tangent = None if result[1] is None else self._derivative(what, "the output's tangent", result[1], expected, x.dtype)
        return output, tangent

    def _call_once(self, what: str, function: Callable[..., Any], inputs: dict[str, np.ndarray],
                   directions: dict[str, Optional[np.ndarray]]) -> Any:
        """A call outside the forward and backward schedule: fresh copies of the inputs and of the
        directions (tangents, cotangents), every one compared afterwards: a layer that scaled its
        tangent in place would otherwise be compared with what it made of it."""
        fresh = {name: fresh_copy(array, "C order") for name, array in inputs.items()}
        handed = {name: None if d is None else d.copy() for name, d in directions.items()}
        result = guarded_call(what, function, *fresh.values(), tuple(handed.values()), **self._settings)
        unchanged(what, inputs, fresh)
        for name, direction in directions.items():
            copy = handed[name]
            if direction is not None and copy is not None and not same_bits(copy, direction):
                raise ImplementationFailure(
                    f"{what} modified {name} in place, changing the direction it was asked to differentiate "
                    "along; work on a copy of it (an in-place mul_ or add_ on a tangent or a gradient)",
                    status="failed",
                )
        return result

    def _derivative(self, what: str, name: str, value: Any, expected: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        _, array = checked_array(what, name, value, expected, dtype, self.warnings)
        finite(what, name, array)
        return array

    def _call(
        self,
        what: CallKind,
        function: Callable[..., Any],
        inputs: dict[str, np.ndarray],
        layouts: Optional[Mapping[str, MemoryLayout]],
    ) -> Any:
        layouts = layouts or {}
        fresh = {name: fresh_copy(array, layouts.get(name, "C order")) for name, array in inputs.items()}
        self._watch.before_call(what)
        try:
            result = guarded_call(what, function, *fresh.values(), **self._settings)
        finally:
            self._watch.after_call(what)
            self._inputs.after_call(what)
        if self._compare_inputs(what, inputs, layouts):
            unchanged(what, inputs, fresh)
        self._inputs.lent(what, fresh)  # the layer may have kept them
        return result

    def _compare_inputs(self, what: CallKind, inputs: dict[str, np.ndarray], layouts: Mapping[str, MemoryLayout]) -> bool:
        """Whether this call's inputs are compared with what it was given (the module docstring)."""
        count = self._calls[what] = self._calls.get(what, 0) + 1
        kind = (what, *((name, a.shape, a.dtype.str, layouts.get(name, "C order")) for name, a in inputs.items()))
        new = kind not in self._inputs_seen
        self._inputs_seen.add(kind)
        return new or count <= INPUTS_COMPARED or count % INPUTS_SPOT_EVERY == 0

    def _as_array(
        self, what: CallKind, name: str, value: Any, expected: tuple[int, ...], dtype: np.dtype
    ) -> np.ndarray:
        returned, array = checked_array(what, name, value, expected, dtype, self.warnings)
        self._watch.returned(what, name, returned, array)
        finite(what, name, array)
        return array


def _differentiable(layer: ConvLayer) -> DifferentiableLayer:
    """The layer as its framework differentiates it; the options refuse others before any call."""
    found = differentiable(layer)
    assert found is not None, f"{type(layer).__name__} has no framework to differentiate it"
    return found


def guarded_call(what: str, function: Callable[..., Any], *arguments: Any, **keywords: Any) -> Any:
    """function(*arguments, **keywords), whatever it raises turned into an ImplementationFailure."""
    try:
        # Whatever the implementation prints goes to stderr: stdout may be carrying --json.
        # Which call of the case this is, for whoever listens (a child says where it hung: stages.py).
        with contextlib.redirect_stdout(sys.stderr), layer_call(what):
            return function(*arguments, **keywords)
    except (ImplementationFailure, Unsupported):  # a reason already, or a case to skip (run_case)
        raise
    except Exception as error:  # the implementation's own bug: report it, never crash
        raise ImplementationFailure(f"{what} raised {describe_exception(error)}") from error


def unchanged(what: str, originals: Mapping[str, np.ndarray], given: Mapping[str, np.ndarray]) -> None:
    """Raises when the layer wrote into an input it was given (`given`: its copies of `originals`)."""
    for name, array in originals.items():
        if not same_bits(given[name], array):
            raise ImplementationFailure(
                f"{what} modified its input {name} in place; work on a copy "
                f"(e.g. {name} = {name}.copy()) before changing it",
                status="failed",
            )


def checked_array(
    what: str, name: str, value: Any, expected: tuple[int, ...], dtype: np.dtype, warnings: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(the array the layer returned, a read-only float64 copy of it), its shape and type checked;
    a result in another dtype than its inputs adds a warning."""
    if value is None:
        raise ImplementationFailure(f"{what} returned None for {name}")
    try:
        array = np.asarray(value)
    except Exception as error:  # e.g. a torch tensor that needs .detach()
        raise ImplementationFailure(
            f"{what} returned {type(value).__name__} for {name}, which is not an array "
            f"({describe_exception(error)}); return a NumPy array"
        ) from error
    if array.shape != tuple(expected):
        raise ImplementationFailure(
            f"{what} returned shape {format_shape(array.shape)} for {name}, expected {format_shape(expected)}",
            shape=tuple(array.shape),
        )
    if not _real_numbers(array.dtype):
        raise ImplementationFailure(
            f"{what} returned {name} with dtype {array.dtype}; return real floating-point numbers",
            shape=tuple(array.shape),
        )
    if array.dtype != dtype:
        warning = f"{what} returned {name} as {array.dtype} for {dtype} inputs"
        if np.issubdtype(array.dtype, np.floating) and np.finfo(array.dtype).bits < np.finfo(dtype).bits:
            warning += f'; if the layer computes in {array.dtype} only, declare dtypes = ["{array.dtype}"]'
        if warning not in warnings:
            warnings.append(warning)
    returned, array = array, array.astype(np.float64)  # a copy, whatever the layer does to its own later
    array.flags.writeable = False  # also the reference the reuse watch compares against
    return returned, array


def finite(what: str, name: str, array: np.ndarray) -> None:
    """Raises for NaN or Inf values, saying how many and where the first is."""
    # Not np.isfinite(array.sum()) first: a sum costs as much as these flags, and overflows (with a
    # warning) on large finite values.
    if not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        kind = "NaN" if np.isnan(array).any() else "Inf"
        raise ImplementationFailure(
            f"{what} returned {kind} in {name} ({bad} of {array.size} values, first at {list(first)})",
            shape=tuple(array.shape),
            status="failed",
        )


@functools.lru_cache(maxsize=64)
def _real_numbers(dtype: np.dtype) -> bool:
    """Ints and floats, not complex numbers (nor bools, strings, objects)."""
    return bool(np.issubdtype(dtype, np.number)) and not issubclass(dtype.type, np.complexfloating)

