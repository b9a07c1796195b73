"""Why a step of the network scenario failed (run/scenario.py), told from the numbers.

Like state.py for the call protocol, each cause is a hypothesis tested against what the failing
call returned: what would it have returned with the other instance's batch, with another layer's
settings, with the weights before the optimiser's step, with the positive part of dy? Only a match
is named; otherwise the step's own circumstances are, as the likely kind of state or fast path.
"""

from __future__ import annotations

import shlex
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

import numpy as np

from convgrad import reference
from convgrad.adapters.live import Variant
from convgrad.findings.diagnosis import matches
from convgrad.findings.precision import rounding_only
from convgrad.geometry import GRADIENT_NAMES, GradientName, LayerGeometry, TensorName, format_shape
from convgrad.report import TensorComparison

__all__ = [
    "Instance", "StepCall", "cause", "call_failed", "dropped", "settings_difference", "learning_rate_step",
]

_MATCH_FLOOR = 1e-10  # hypotheses are computed in float64, in another summation order
_INPUT_OF = {"dX": "x", "dK": "w", "db": "b"}


class Instance(Protocol):
    """One live instance of the layer, as a hypothesis reads it (run/scenario.py: `_Instance`)."""

    @property
    def name(self) -> str: ...  # "layer A"

    @property
    def geometry(self) -> LayerGeometry: ...

    @property
    def variant(self) -> Variant: ...


class StepCall(Protocol):
    """One call of a step, compared, as a hypothesis reads it (run/scenario.py: `_Call`)."""

    @property
    def label(self) -> str: ...  # "forward of layer A"

    @property
    def rows(self) -> Sequence[TensorComparison]: ...

    @property
    def got(self) -> Mapping[TensorName, np.ndarray]: ...  # what it returned, in float64

    @property
    def expected(self) -> Mapping[TensorName, np.ndarray]: ...  # what it should have returned

    @property
    def tensors(self) -> tuple[np.ndarray, ...]: ...  # x, w, b, dy as given (b zeros without bias)

    @property
    def instance(self) -> Instance: ...


def cause(step: str, failing: StepCall, calls: Sequence[StepCall], geometry: LayerGeometry, rtol: float,
          impl: str = "") -> str:
    """'<call>: <what differs>; <what it looks like>' for the first failing call of a step (`impl`:
    the layer's spec, for a command that checks it alone)."""
    # A hypothesis is computed in float64; below float64 the layer's own rounding is far below 1e-5.
    tolerance = max(rtol, _MATCH_FLOOR) if failing.tensors[0].dtype == np.float64 else 1e-5
    by_step = _LOOKS.get(step) or (_frozen(step.removesuffix(" frozen")) if step.endswith(" frozen") else _nothing)
    looks = rounding_only(failing.rows) or by_step(failing, list(calls), geometry, tolerance)
    looks = looks.replace(_ALONE_MARK, check_alone_command(failing.instance.geometry, impl)) if looks else looks
    return f"{failing.label}: {_differs(failing)}" + (f"; {looks}" if looks else "")


def call_failed(step: str, failure: str, calls: Sequence[StepCall], own: LayerGeometry, geometry: LayerGeometry,
                impl: str = "") -> str:
    """A call that raised or returned something unusable, after the step's calls that held, and
    what the step's circumstances suggest. `own` is the geometry of the layer whose call failed:
    a layer of other settings than the case's that fails may fail at those settings alone."""
    done = f" (after {len(calls)} call{'s' if len(calls) > 1 else ''} that {'were' if len(calls) > 1 else 'was'} right)" if calls else ""
    context = _CIRCUMSTANCES.get(step)
    if own != geometry:  # either cause fits a raise: the command tells them apart
        return (f"{failure}{done}; the layer that failed has other settings than the case "
                f"({settings_difference(geometry, own)}): it fails at those settings themselves (check it alone: "
                f"{check_alone_command(own, impl)}), or {context or 'state another layer left leaked into it'}")
    return f"{failure}{done}" + (f"; {context}" if context else "")


_ALONE_MARK = "<check it alone>"


def check_alone_command(geometry: LayerGeometry, impl: str) -> str:
    """The command that checks the layer at `geometry` on its own: the same layer (--impl, when
    its name is a spec the command line takes) at these shapes and settings."""
    spec = f"--impl {shlex.quote(impl)} " if _is_spec(impl) else "--impl YOUR_LAYER " if impl else ""
    return f"convgrad check {spec}{' '.join(geometry.check_flags())}"


def _is_spec(impl: str) -> bool:
    return impl in ("reference", "torch", "jax") or ".py" in impl or ":" in impl


# What a call that fails outright in a step most likely means (a wrong value gets a tested cause).
_CIRCUMSTANCES = {
    "two instances": "it fails only with another instance of the layer called in between: state is shared "
                     "between instances (a class attribute, or a module-level cache keyed by shape)",
    "other settings": "it fails only after a layer of equal shapes and other settings was called: state keyed "
                      "on shapes alone (an index table, a plan, im2col columns) is shared between layers",
    "batch sizes": "a network's batch sizes change (a smaller last batch, batch 1): the layer must take any",
    "recomputed forward": "forward ran again before backward, or on a batch it had seen: the layer keeps "
                          "state between these calls",
}


def dropped(name: GradientName, variant: Variant, mode: str = "train") -> str:
    if mode == "eval":
        return (
            f"backward in evaluation mode returned no {name} although {_INPUT_OF[name]} requires a gradient: the eval "
            "path cuts it off (a detached or copied tensor); fine-tuning with the module in eval mode needs it"
        )
    frozen = ", ".join(sorted(variant.frozen))
    because = f" ({frozen} frozen)" if frozen else ""
    return (
        f"backward returned no {name} although {_INPUT_OF[name]} requires a gradient{because}: the gradient was "
        "dropped; is it computed only when another input's needs_input_grad flag is set?"
    )


def settings_difference(geometry: LayerGeometry, other: LayerGeometry) -> str:
    """'dilation 2x2 and padding 2x2 (so the output shape too), where A has ...': the settings in
    which another layer differs from A."""
    parts, own = [], []
    for setting in ("stride", "padding", "dilation"):
        mine, theirs = (format_shape(getattr(g, setting)) if setting != "padding" else g.padding_shown
                        for g in (geometry, other))
        if mine != theirs:
            parts.append(f"{setting} {theirs}")
            own.append(f"{setting} {mine}")
    same = " (so the output shape too)" if other.out_spatial == geometry.out_spatial else ""
    return f"{' and '.join(parts)}{same}, where A has {' and '.join(own)}"


def learning_rate_step(
    w: np.ndarray, b: np.ndarray, dw: np.ndarray, db: np.ndarray, held_w: Any, held_b: Any, lr: float, rtol: float,
    dtype: np.dtype,
) -> Optional[str]:
    """Why the weights a layer holds after backward(dout, lr) are not W - lr*dW, or None."""
    tolerance = max(rtol, _MATCH_FLOOR) if dtype == np.float64 else 1e-5
    before_w, before_b = w.astype(np.float64), b.astype(np.float64)
    for name, held, before, gradient in (("W", held_w, before_w, dw), ("b", held_b, before_b, db)):
        if held is None:
            continue
        values = np.asarray(held, dtype=np.float64)
        if values.size != before.size:
            return f"after backward(dout, lr) the layer holds {name} of shape {format_shape(values.shape)}, expected {format_shape(before.shape)}"
        values = values.reshape(before.shape)
        expected = before - lr * gradient
        if matches(values, expected, tolerance):
            continue
        if matches(values, before, tolerance) or np.array_equal(values, before):
            return f"backward(dout, lr={lr:g}) left {name} unchanged: the SGD step {name} -= lr * d{name} was not taken"
        for factor in (2.0, 0.5, -1.0):
            if matches(values, before - factor * lr * gradient, tolerance):
                return f"backward(dout, lr={lr:g}) changed {name} by {factor:g} * lr * d{name}, not lr * d{name}"
        change = float(np.max(np.abs(values - expected))) / max(float(np.max(np.abs(expected))), 1e-300)
        return (
            f"after the first backward(dout, lr={lr:g}) {name} is not {name} - lr * d{name} (off by up to {change:.2g} "
            "of its scale): the step is not plain SGD with these gradients (momentum's first step would be; weight "
            "decay or Adam inside backward are not what convgrad checks)"
        )
    return None


def _differs(call: StepCall) -> str:
    failing = [t for t in call.rows if not t.passed]
    worst = max(failing, key=lambda t: t.max_rel_error or 0.0)
    names = ", ".join(t.name for t in failing)
    verb = "differs" if len(failing) == 1 else "differ"
    counts = "; ".join(f"{t.name} {t.mismatches} of {t.checked}" for t in failing)
    return f"{names} {verb} from what it should be by up to {worst.max_rel_error or 0.0:.2g} of the scale ({counts} coordinates)"


# --- Hypotheses, one function per step -------------------------------------------------------

# (the failing call, the step's calls, the case's geometry, the match tolerance) -> what it looks like
Looks = Callable[[StepCall, list[StepCall], LayerGeometry, float], Optional[str]]


def _nothing(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    return None


def _recompute(call: StepCall, x: np.ndarray, w: np.ndarray, b: np.ndarray, dy: np.ndarray, geometry: LayerGeometry) -> dict[str, np.ndarray]:
    """The reference outputs of the call's own kind, for other tensors or settings."""
    x64, w64, b64, dy64 = (np.asarray(t, dtype=np.float64) for t in (x, w, b, dy))
    settings = geometry.conv_settings()
    if "O" in call.got:
        return {"O": reference.forward(x64, w64, b64, **settings)}
    return dict(zip(GRADIENT_NAMES, reference.backward(dy64, x64, w64, b64, **settings)))


def _agrees(call: StepCall, candidate: Mapping[Any, np.ndarray], tolerance: float) -> bool:
    """Every failing output of the call equals the candidate's (where the shapes allow), and the
    candidate is not also the right answer: a hypothesis that the right values satisfy too (the
    other instance held the same weights, say) cannot tell what went wrong."""
    failing = [t.name for t in call.rows if not t.passed]
    return bool(failing) and all(
        name in candidate and candidate[name].shape == call.got[name].shape
        and matches(call.got[name], candidate[name], tolerance)
        and not (name in call.expected and matches(call.expected[name], candidate[name], tolerance))
        for name in failing
    )


def _others(failing: StepCall, calls: list[StepCall]) -> list[StepCall]:
    return [c for c in calls if c.instance is not failing.instance]


def _two_instances(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    x, w, b, dy = failing.tensors
    own, other = failing.instance.name, next((c.instance.name for c in _others(failing, calls)), "the other instance")
    for earlier in _others(failing, calls):
        ox, ow, ob, _ = earlier.tensors
        if "O" in failing.got and "O" in earlier.got and _agrees(failing, earlier.got, tolerance):
            return f"it returned {other}'s output: a result is shared between instances of the layer"
        if _agrees(failing, _recompute(failing, ox, w, b, dy, geometry), tolerance):
            return (
                f"it is what {own}'s weights give for the batch {other} was given in between: what forward "
                "keeps for backward (x, im2col columns) is shared between instances of the layer; keep it "
                "per instance (not in a class attribute or a module-level cache keyed by shape)"
            )
        if _agrees(failing, _recompute(failing, x, ow, ob, dy, geometry), tolerance):
            return f"it is what {other}'s weights give: the weights are shared between instances of the layer"
    if failing.label == "forward of layer A" and calls and calls[0] is failing:
        return (
            "these are the first call's tensors, whose output matched when the layer was called as a function; "
            "here it records a backward (training mode, gradients enabled): the training path computes something else"
        )
    if not all(np.array_equal(a, c) for a, c in zip(failing.tensors, calls[0].tensors)):
        # Not the first call's tensors: the layer may be wrong on these alone, no state needed.
        return (
            f"no hypothesis tested explains it: either state is shared between instances (a class attribute, "
            f"or a module-level cache keyed by shape), or the layer is wrong on {own}'s own tensors, which are "
            "not the first call's (the second call and the memory layouts use new tensors too)"
        )
    return (
        f"wrong only when another instance of the layer is called between {own}'s forward and backward (called "
        "alone, as in the first call, it was right): "
        "state is shared between instances (a class attribute, or a module-level cache keyed by shape)"
    )


def _other_settings(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    x, w, b, dy = failing.tensors
    mine = failing.instance.geometry
    for earlier in _others(failing, calls):
        theirs = earlier.instance.geometry
        if theirs.out_spatial == mine.out_spatial and _agrees(failing, _recompute(failing, x, w, b, dy, theirs), tolerance):
            return (
                f"it is what {earlier.instance.name}'s stride, padding and dilation give: something made from the "
                "shapes alone (an index table, a plan, padded buffers) is shared between layers of equal shapes and "
                "other settings; key it on the settings too"
            )
    if mine != geometry:  # the failing layer is one of the others: its own settings may be all it takes
        return (
            f"{failing.instance.name} has other settings than the case: it is wrong at those settings themselves, or "
            f"state another layer left (keyed on shapes alone) leaked into it; check it alone: {_ALONE_MARK}"
        )
    return (
        f"wrong only when a layer of equal shapes and other settings is called between {failing.instance.name}'s "
        "calls: state keyed on shapes alone (an index table, a plan, im2col columns) is shared between layers"
    )


def _recomputed(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    index = calls.index(failing)
    for earlier in calls[:index]:
        same_input = all(np.array_equal(a, c) for a, c in zip(earlier.tensors[:3], failing.tensors[:3]))
        if not same_input or earlier.got.keys() != failing.got.keys():
            continue
        written = {"O": np.maximum(earlier.got.get("O", np.zeros(0)), 0), "dX": -earlier.got.get("dX", np.zeros(0))}
        if _agrees(failing, written, tolerance):
            return (
                "it is the array the layer returned for the same input before, since written into by the caller "
                "(an in-place ReLU on O, an in-place update of dX): the layer hands out an array it keeps (a memo "
                "or an output buffer) and returns it again; return a copy"
            )
    if "O" not in failing.got and index >= 1:
        before = [c for c in calls[:index] if "O" in c.got]
        if len(before) >= 2:
            older = before[-2].tensors
            x, w, b, dy = failing.tensors
            if _agrees(failing, _recompute(failing, older[0], w, b, dy, geometry), tolerance):
                return "backward used the input of the forward before the latest one: forward called twice leaves the layer's state behind"
    return (
        "wrong when forward runs again before backward, or on a batch it has seen, after the caller wrote into what "
        "the layer returned: the layer keeps state (or arrays it hands out) between these calls"
    )


def _batch_sizes(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    size = failing.tensors[0].shape[0]
    before = [geometry.batch] + [c.tensors[0].shape[0] for c in calls[: calls.index(failing)]]
    largest, previous = max(before), before[-1]
    if size < largest:
        return (
            f"wrong at batch {size} after a batch of {largest} (a smaller last batch, as at the end of an epoch): "
            "state sized for the largest batch is kept and read whole (e.g. a workspace summed over every row)"
        )
    if size > previous:
        return f"wrong when the batch grows from {previous} to {size}: state sized for an earlier batch is reused"
    return f"wrong at batch {size}"


def _training_steps(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    x, w, b, dy = failing.tensors
    for before in calls[: calls.index(failing)]:
        if not np.array_equal(before.tensors[0], x) and _agrees(failing, _recompute(failing, before.tensors[0], w, b, dy, geometry), tolerance):
            return (
                "it is what the previous batch gives: something made from x is cached by the identity of the array, "
                "and this batch came in the same array refilled in place (as a data loader's preallocated batch "
                "does); key it on the values, or recompute"
            )
    earlier = [c for c in calls[: calls.index(failing)] if not np.array_equal(c.tensors[1], w)]
    if earlier:
        _, old_w, old_b, _ = earlier[-1].tensors
        for stale, weights, bias in (("weights", old_w, b), ("weights and bias", old_w, old_b), ("bias", w, old_b)):
            if _agrees(failing, _recompute(failing, x, weights, bias, dy, geometry), tolerance):
                return (
                    f"it is what the {stale} before the optimiser's step give: something made from them is "
                    "refreshed only when they are a new object, and an optimiser changes them in place "
                    "(W -= lr * dW); compare values or recompute"
                )
    return "wrong after the weights were updated in place between steps: something made from the weights is cached"


def _learning_rate(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    x, w, b, dy = failing.tensors
    if "dX" in failing.got:
        dw = failing.expected.get("dK")
        db = failing.expected.get("db", np.zeros_like(b, dtype=np.float64))
        lr = failing.instance.variant.learning_rate
        if dw is not None:
            stepped = _recompute(failing, x, w - lr * dw, b - lr * db, dy, geometry)
            if _agrees(failing, stepped, tolerance) or matches(failing.got["dX"], stepped["dX"], tolerance):
                return "dx was computed with the weights after the SGD step: compute dx (and dW) before updating W"
    return None


def _no_bias(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    return "with b = None the layer takes another path than with a bias, and that path is wrong"


def _frozen(frozen: str) -> Looks:
    def looks(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
        verb = "do" if " and " in frozen else "does"
        return f"wrong when {frozen} {verb} not require a gradient: a path chosen by the needs_input_grad flags is wrong"

    return looks


def _evaluation(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    x, w, b, dy = failing.tensors
    for earlier in calls[: calls.index(failing)]:
        _, old_w, old_b, _ = earlier.tensors
        if not np.array_equal(old_w, w) and _agrees(failing, _recompute(failing, x, old_w, old_b, dy, geometry), tolerance):
            return (
                "it is what the weights before the last update give: the evaluation path uses a copy of the weights "
                "made once (at the first evaluation), which training steps never refresh"
            )
    if "eval" in failing.label and "recording" in failing.label:
        return "wrong in evaluation mode with gradients on (fine-tuning with the module in eval mode)"
    return "wrong in evaluation mode, while the training calls before it were right"


def _activations(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    x, w, b, dy = failing.tensors
    skipped = x.astype(np.float64).copy()
    dead = skipped.reshape(*skipped.shape[:2], -1).max(axis=-1) <= 0
    skipped[dead] = 0
    if _agrees(failing, _recompute(failing, skipped, w, b, dy, geometry), tolerance):
        return (
            "it is what x gives with its all-negative planes zeroed: planes were skipped as dead by a test of "
            "max <= 0; only planes that are exactly zero may be skipped"
        )
    return (
        "wrong for activations a network produces (exact zeros, whole zero or negative planes, a zero item): a "
        "path that skips zero planes or items is wrong"
    )


def _max_pool_gradient(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    x, w, b, dy = failing.tensors
    dy64 = dy.astype(np.float64)
    if _agrees(failing, _recompute(failing, x, w, b, np.maximum(dy64, 0), geometry), tolerance):
        return "it is what the positive entries of dy alone give: a sparse path keeps dy > 0 where it must keep dy != 0"
    keep = np.flatnonzero(np.abs(dy64).reshape(dy64.shape[0], -1).max(axis=1) > 0)
    if 0 < keep.size < dy64.shape[0] and "dK" in failing.got:
        k = keep.size
        dw = reference.backward(dy64[keep], x[:k].astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                **geometry.conv_settings())[1]
        if matches(failing.got["dK"], dw, tolerance):
            return (
                "dK is what the items with nonzero dy give paired with the first items of x: items were compacted "
                "by position (x[:k]) instead of by index (x[keep])"
            )
    return "wrong when dy is mostly exact zeros, as after max-pooling (a zero item among them): a sparse path is wrong"


def _tiny_gradient(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    if all(not np.any(v) for v in failing.got.values()):
        return (
            "every gradient is exactly zero for dy of size 1e-8: small values of dy are flushed to zero; gradients "
            "under loss scaling or late in training are that small"
        )
    return "wrong for dy of size 1e-8 (loss scaling, late training): small values are flushed or lose their precision"


def _large_gradient(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    return "wrong for dy of size 1e3: large values are clipped or overflow"


def _pruned(failing: StepCall, calls: list[StepCall], geometry: LayerGeometry, tolerance: float) -> Optional[str]:
    x, w, b, dy = failing.tensors
    zero = [f for f in range(w.shape[0]) if not np.any(w[f])]
    if "O" in failing.got and zero:
        y = failing.got["O"]
        if all(not np.any(y[:, f]) and b[f] != 0 for f in zero):
            return "the all-zero filter's output is 0, not its bias: a pruned filter was skipped together with its bias"
    return "wrong when a filter's weights are all zero (pruned): a path that skips such filters is wrong"


_LOOKS: dict[str, Looks] = {
    "two instances": _two_instances,
    "other settings": _other_settings,
    "recomputed forward": _recomputed,
    "batch sizes": _batch_sizes,
    "training steps": _training_steps,
    "learning rate": _learning_rate,
    "no bias": _no_bias,
    "evaluation mode": _evaluation,
    "activations": _activations,
    "max-pool gradient": _max_pool_gradient,
    "tiny gradient": _tiny_gradient,
    "large gradient": _large_gradient,
    "pruned filter": _pruned,
}
