"""The network scenario: after the call protocol, the layer is driven the way a training loop drives it.

The first call proves the gradients by finite differences and the call protocol (calls.py) asks
whether the layer computes the same function when called again. Neither calls it the way a
network does, and a layer can be right in every unit test and wrong in training. Here each case
builds live instances of the layer (adapters/live.py: layer objects, call streams of functions, torch
modules with parameters of their own) and runs these steps, comparing every output of every call
with the reference convolution of what that call was given (float64 to the tensor-scale rtol,
below it to the rounding bound):

    two instances          forward A, forward A2, backward A2, backward A  (same settings)
    other settings         forward A, forward B, backward B, backward A   (equal shapes, other
                                                                           stride/padding/dilation)
    recomputed forward     forward A twice, the same batch again as gradient checkpointing does,
                           then backward; the caller writes into every O and dX it gets (an
                           in-place ReLU), so a layer that hands out an array it keeps shows it
    batch sizes            a larger batch, a smaller tail, a batch of 1
    training steps         the weights updated in place between steps, as an optimiser does
    learning rate          backward(dout, lr) of a layer object that trains itself: dx with the
                           weights before the step, the weights after it W - lr*dW
    no bias                built with b = None, where the layer takes it
    x/w/b frozen           torch: each input, and each pair, not requiring a gradient; the others
                           must come back
    evaluation mode        forward without recording (torch: module.eval() under no_grad)
    activations, max-pool gradient, tiny gradient, large gradient, pruned filter
                           the data a network feeds a layer

Without the forward check (no reference) every call is compared with the same layer called
plainly on the same tensors, as the first call was. Each step costs forward and backward calls,
never finite differences. A failing step says which call, and what the numbers look like
(findings/network.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Optional

import numpy as np

from convgrad import reference
from convgrad.compare import compare_with_reference, scale_floor
from convgrad.findings import network as findings
from convgrad.geometry import GRADIENT_NAMES, GradientName, LayerGeometry, TensorName, format_shape
from convgrad.adapters.failure import ImplementationFailure
from convgrad.harness.guard import GuardedLayer, checked_array, finite, guarded_call, unchanged
from convgrad.harness.stages import SCENARIO_PART, Stage, enter, finished
from convgrad.adapters.live import FULL, LiveLayer, Mode, Variant
from convgrad.adapters.protocol import Implementation, Unsupported
from convgrad.numerics.gradient import ProgressFactory
from convgrad.numerics.rounding import rounding_bounds
from convgrad.options import CheckOptions
from convgrad.report import CallCheck, Status, TensorComparison

__all__ = ["network_scenario", "other_settings", "SCENARIO", "LEARNING_RATE"]

OTHER_LAYERS = 2  # layers of equal shapes and other settings: each setting a key may leave out
# Each set of inputs a network freezes (torch's requires_grad), and when it does.
FROZEN: dict[tuple[str, ...], str] = {
    ("x",): "a first layer's input",
    ("w",): "a frozen weight, as in a fine-tuned backbone",
    ("b",): "a frozen bias",
    ("x", "b"): "a first layer that trains its weight alone",
    ("x", "w"): "a first layer that trains its bias alone, as BitFit does",
    ("w", "b"): "a frozen layer that passes gradients back to its input, as an adversarial attack or a frozen backbone does",
}

SCENARIO = "network scenario"
REFERENCE = "the reference convolution of each call's own tensors and weights"
PLAIN = "the same layer called plainly (forward then backward) on the same tensors"
LEARNING_RATE = 0.01  # what a layer object that trains itself is given: small, so W moves a little
OPTIMISER_STEP = 0.1  # each training step moves the weights by this share of their largest value
Outputs = dict[TensorName, np.ndarray]
_MODE_WORDS = {
    ("train", True): "", ("eval", False): " in evaluation mode", ("eval", True): " in evaluation mode, recording",
    ("train", False): " without recording",
}


@dataclass
class _Instance:
    """One live layer and what it should hold now."""

    name: str  # "layer A"
    geometry: LayerGeometry
    live: LiveLayer
    variant: Variant
    w: np.ndarray  # the weights it should hold, in the case's dtype
    b: np.ndarray  # zeros for a layer without bias
    x: Optional[np.ndarray] = None  # the input of its latest recorded forward
    mode: str = "train"  # of its latest recorded forward


@dataclass
class _Call:
    """What one call returned, compared: its rows and the float64 values (for the findings)."""

    label: str  # "forward of layer A"
    rows: tuple[TensorComparison, ...]
    got: Outputs
    expected: Outputs
    tensors: tuple[np.ndarray, ...]  # x, w, b, dy as the call was given them (b zeros without bias)
    instance: _Instance

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.rows)


@dataclass
class _Step:
    """One step of the scenario: its calls in order, and the failure that ended it, if one did."""

    name: str
    called_with: str
    calls: list[_Call] = field(default_factory=list)
    failure: Optional[ImplementationFailure] = None
    failed_on: Optional[_Instance] = None  # the instance whose call raised the failure
    extra_cause: Optional[str] = None  # a finding that no row shows (the weights after a step)
    forward_calls: int = 0

    @property
    def passed(self) -> bool:
        return self.failure is None and self.extra_cause is None and all(c.passed for c in self.calls)

    @property
    def first_failing(self) -> Optional[_Call]:
        return next((c for c in self.calls if not c.passed), None)


class _Network:
    """Builds instances, calls them through the guard's checks, compares, and writes into what
    they return, as the layers after them would."""

    def __init__(self, implementation: Implementation, geometry: LayerGeometry, options: CheckOptions) -> None:
        self.implementation, self.geometry, self.options = implementation, geometry, options
        self.rng = np.random.default_rng((options.seed, 2024))
        self.rtol = options.tolerances(geometry.dtype).rtol
        self.dtype = np.dtype(geometry.dtype)
        self.warnings: list[str] = []
        self.calls = 0  # forward calls, the cost measure
        self.step: Optional[_Step] = None
        self._plain: dict[LayerGeometry, GuardedLayer] = {}

    # Tensors
    def normal(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.rng.standard_normal(shape).astype(self.dtype)

    def x(self, batch: int, geometry: Optional[LayerGeometry] = None) -> np.ndarray:
        return self.normal((batch, *(geometry or self.geometry).in_shape))

    def dy(self, batch: int, geometry: Optional[LayerGeometry] = None) -> np.ndarray:
        return self.normal((batch, *(geometry or self.geometry).y_shape[1:]))

    # Instances
    def build(self, name: str, geometry: LayerGeometry, variant: Variant = FULL) -> Optional[_Instance]:
        """A new live layer with weights of its own; None when the layer cannot be that variant."""
        w = self.normal(geometry.w_shape)
        b = self.normal(geometry.b_shape) if variant.bias else np.zeros(geometry.b_shape, self.dtype)
        try:
            live = guarded_call(f"building {name}", self.implementation.live, geometry, w, b, variant)
        except Unsupported:
            return None
        return _Instance(name, geometry, live, variant, w, b)

    def build_variant(self, name: str, geometry: LayerGeometry, variant: Variant) -> Optional[_Instance]:
        """A variant the layer may not have after all: None when building it fails."""
        try:
            return self.build(name, geometry, variant)
        except ImplementationFailure:
            return None

    def update(self, instance: _Instance, w: np.ndarray, b: np.ndarray) -> None:
        """New weights, written in place into the arrays the layer holds."""
        w, b = w.astype(self.dtype), b.astype(self.dtype)
        guarded_call(f"updating the weights of {instance.name}", instance.live.update, w,
                     b if instance.variant.bias else None)
        instance.w, instance.b = w, b

    # Calls
    def forward(
        self, instance: _Instance, x: np.ndarray, *, mode: Mode = "train", record: bool = True,
        into: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """The instance's output for x, compared with what it should be; the caller then applies
        an in-place ReLU to the array the layer returned. `into`: a buffer of the caller's that is
        refilled with x and handed over (a data loader's preallocated batch), else a fresh copy."""
        label = f"forward of {instance.name}" + _MODE_WORDS[(mode, record)]
        if into is not None:
            np.copyto(into, x)
        given = x.copy() if into is None else into
        self.calls += 1
        self._calling(instance)
        returned = guarded_call("forward", instance.live.forward, given, mode=mode, record=record)
        unchanged("forward", {"x": x}, {"x": given})
        shape = (x.shape[0], *instance.geometry.y_shape[1:])
        own, y = checked_array("forward", "the output", returned, shape, self.dtype, self.warnings)
        finite("forward", "the output", y)
        if record:
            instance.x, instance.mode = given, mode
        dy = np.zeros(shape, self.dtype)  # the output's bound does not depend on dy
        expected = self.expected(instance, x, dy, ("O",))
        self.record(label, instance, {"O": y}, expected, (x, instance.w, instance.b, dy))
        if own.flags.writeable:
            np.maximum(own, 0, out=own)  # the next layer's in-place ReLU
        return y

    def backward(self, instance: _Instance, dy: np.ndarray, *, into: Optional[np.ndarray] = None) -> Outputs:
        """The gradients of the instance's latest recorded forward, each one asked for compared;
        the caller then writes into the dX the layer returned (its in-place activation backward)."""
        assert instance.x is not None
        label = f"backward of {instance.name}"
        if into is not None:
            np.copyto(into, dy)
        given, x_kept = (dy.copy() if into is None else into), instance.x.copy()
        self._calling(instance)
        result = guarded_call("backward", instance.live.backward, given)
        unchanged("backward", {"dy": dy, "x": x_kept}, {"dy": given, "x": instance.x})
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            raise ImplementationFailure(f"backward returned {type(result).__name__}; return the tuple (dx, dw, db)")
        got: Outputs = {}
        owns = []
        for name, value, shape in zip(GRADIENT_NAMES, result, (instance.x.shape, instance.geometry.w_shape, instance.geometry.b_shape)):
            if not self.asked(instance, name):
                continue
            if value is None:
                raise ImplementationFailure(findings.dropped(name, instance.variant, instance.mode), status="failed")
            own, array = checked_array("backward", name, value, shape, self.dtype, self.warnings)
            finite("backward", name, array)
            got[name] = array
            owns.append((name, own))
        expected = self.expected(instance, x_kept, dy, tuple(got))
        self.record(label, instance, got, expected, (x_kept, instance.w, instance.b, dy))
        for name, own in owns:
            if name == "dX" and own.flags.writeable:
                np.negative(own, out=own)  # e.g. gradient accumulation into the buffer it was handed
        return got

    def asked(self, instance: _Instance, name: GradientName) -> bool:
        """Whether the network asks the instance for this gradient."""
        if name == "db" and (not instance.variant.bias or not self.implementation.has_bias):
            return False
        return {"dX": "x", "dK": "w", "db": "b"}[name] not in instance.variant.frozen

    def expected(self, instance: _Instance, x: np.ndarray, dy: np.ndarray, names: tuple[TensorName, ...]) -> Outputs:
        """What the call should have returned: the reference convolution of its tensors, or
        without the forward check the layer's own plain calls."""
        geometry = instance.geometry
        if not self.options.forward_check:
            return self.plain(geometry, x, instance.w, instance.b, dy, names)
        x64, w64, b64, dy64 = (np.asarray(t, dtype=np.float64) for t in (x, instance.w, instance.b, dy))
        settings = geometry.conv_settings()
        values: Outputs = {}
        if "O" in names:
            values["O"] = reference.forward(x64, w64, b64, **settings)
        if set(names) - {"O"}:
            values.update(zip(GRADIENT_NAMES, reference.backward(dy64, x64, w64, b64, **settings)))
        return values

    def plain(
        self, geometry: LayerGeometry, x: np.ndarray, w: np.ndarray, b: np.ndarray, dy: np.ndarray,
        names: tuple[TensorName, ...],
    ) -> Outputs:
        sized = replace(geometry, batch=x.shape[0])
        guard = self._plain.get(sized) or self._plain.setdefault(sized, GuardedLayer(self.implementation, sized))
        self.calls += "O" in names
        if "O" in names:
            return {"O": guard.forward(x, w, b)}
        gradients, _ = guard.backward(dy, x, w, b)
        return {n: g for n, g in zip(GRADIENT_NAMES, gradients) if g is not None}

    def record(self, label: str, instance: _Instance, got: Outputs, expected: Outputs, tensors: tuple[np.ndarray, ...]) -> None:
        assert self.step is not None
        x, w, b, dy = tensors
        bounds = (
            rounding_bounds(x, w, b, dy, instance.geometry, names=tuple(got)) if self.options.forward_check
            else None
        )
        rows = []
        for name, value in got.items():
            floor = 0.0 if name == "O" else scale_floor(name, x, w, dy)
            rows.append(compare_with_reference(
                name, value, expected[name], bounds, self.rtol, method="reference" if self.options.forward_check
                else "plain call", against="reference" if self.options.forward_check else "plain call", floor=floor,
                call=label,
            ))
        self.step.calls.append(_Call(label, tuple(rows), got, expected, tensors, instance))

    def _calling(self, instance: _Instance) -> None:
        """Which instance a failure that ends the step came from (and a hang is in)."""
        if self.step is not None:
            self.step.failed_on = instance
            enter(Stage(instance.name, _step_part(self.step.name)))

    def run(self, name: str, called_with: str, body: Callable[[], None]) -> _Step:
        """One step: its calls in order; a call that fails outright ends it."""
        self.step = _Step(name, called_with)
        enter(Stage("layer A", _step_part(name)))  # until a call names its instance: building, updating
        before = self.calls
        try:
            body()
        except ImplementationFailure as failure:
            self.step.failure = failure
        except Unsupported as refusal:  # a refusal mid-step is a failure: the step's layer was built
            self.step.failure = ImplementationFailure(f"the layer refused a call it was built for: {refusal}")
        self.step.forward_calls = self.calls - before
        return self.step


def other_settings(geometry: LayerGeometry, implementation: Implementation) -> list[LayerGeometry]:
    """Up to OTHER_LAYERS layers of the same input and kernel shapes and other settings, which the
    implementation supports: first as ASPP's branches are (dilation d, padding d for 3x3: the same
    output shape; stride 1 only), then with other padding alone, no padding, other stride alone. A
    table keyed on shapes that leaves out one setting meets a layer that differs in just that."""
    found: list[LayerGeometry] = []
    for candidate in _setting_candidates(geometry):
        if len(found) < OTHER_LAYERS and (
            all(o >= 1 for o in candidate.out_spatial)
            and _per_axis(candidate) <= _per_axis(geometry)  # no value per axis the case did not ask for
            and _unreached(candidate) <= _unreached(geometry)
            and implementation.unsupported(candidate) is None
        ):
            found.append(candidate)
    return found


def _per_axis(geometry: LayerGeometry) -> set[str]:
    """The settings whose value differs between axes (or between the sides of one)."""
    per_axis = {name for name in ("stride", "padding", "dilation") if len(set(getattr(geometry, name))) > 1}
    return per_axis | ({"padding"} if geometry.uneven_padding else set())


@functools.lru_cache(maxsize=64)
def _unreached(geometry: LayerGeometry) -> tuple[int, int]:
    """(kernel taps, inputs) that no window pairs with a real input: a layer where more of them
    read padding alone computes structural zeros, judged against rounding alone."""
    one = replace(geometry, batch=1)
    ones = [np.ones(shape) for shape in (one.y_shape, one.x_shape, one.w_shape, one.b_shape)]
    dx, dw, _ = reference.backward(*ones, **one.conv_settings())
    return int(np.count_nonzero(dw == 0)), int(np.count_nonzero(dx == 0))


def _padded(geometry: LayerGeometry, more: list[int]) -> LayerGeometry:
    """`geometry` with `more` padding on both sides of each axis."""
    return replace(geometry, padding=tuple(p + m for p, m in zip(geometry.padding, more)),
                   padding_after=tuple(a + m for a, m in zip(geometry.padding_end, more)))


def _setting_candidates(geometry: LayerGeometry) -> Iterator[LayerGeometry]:
    dilation, more = [], []
    # d*(k-1) grows by an even number: the padding keeps the output. A case with one dilation for
    # every axis gets one for B too (a layer taking one int must not fail for B's sake alone).
    steps = [1 if k % 2 == 1 else 2 for k in geometry.kernel_size]
    uniform = len(set(geometry.dilation)) == 1 and max(geometry.kernel_size) > 1  # a 1x1 kernel has no dilation
    for k, d, step in zip(geometry.kernel_size, geometry.dilation, steps):
        step = max(steps) if uniform else step
        dilation.append(d + step if k > 1 or uniform else d)
        more.append(step * (k - 1) // 2 if k > 1 else 0)
    if tuple(dilation) != geometry.dilation and all(s == 1 for s in geometry.stride):
        # ASPP's branches are stride 1; dilation with stride is rare in networks, and XLA aborts
        # (a crash, not an error) differentiating some 3-D convolutions that have both.
        yield _padded(replace(geometry, dilation=tuple(dilation)), more)
    yield _padded(geometry, [1] * geometry.ndim)
    if any(geometry.padding_totals):
        yield replace(geometry, padding=tuple(0 for _ in geometry.padding), padding_after=None)
    # Last: another stride is a shape of output the case never asked for, where libraries have
    # limits of their own (XLA aborts differentiating some strided grouped 3-D convolutions).
    yield replace(geometry, stride=tuple(s + 1 for s in geometry.stride))


def network_scenario(
    implementation: Implementation,
    geometry: LayerGeometry,
    options: CheckOptions,
    first_tensors: tuple[np.ndarray, ...],
    progress: Optional[ProgressFactory] = None,
) -> tuple[tuple[CallCheck, ...], int, tuple[str, ...]]:
    """The scenario's steps as checks (see the module docstring), the forward calls they made and
    the warnings their results raised. `first_tensors`: the first call's x, w, b, dy (layer A's
    first batch is its x). Run after a first call that held: every row of it passed."""
    net = _Network(implementation, geometry, options)
    n = geometry.batch
    enter(Stage("layer A", SCENARIO_PART))
    try:
        a = net.build("layer A", geometry)
        assert a is not None, "every implementation lives as its default variant"
        net.update(a, first_tensors[1], first_tensors[2])
    except ImplementationFailure as failure:
        check = CallCheck("building layers", "the case's settings", REFERENCE, failure.status,
                          cause=str(failure), part=SCENARIO)
        return (check,), 0, ()
    # The variants are the layer's where convgrad can tell it has them (a bias flag, a learning
    # rate, torch's requires_grad): one it turns out not to build is not the layer's.
    learner = net.build_variant("layer L", geometry, Variant(learning_rate=LEARNING_RATE))
    unbiased = net.build_variant("layer without bias", geometry, Variant(bias=False))
    freezing = [
        net.build_variant(f"layer with {' and '.join(f)} frozen", geometry, Variant(frozen=frozenset(f)))
        for f in FROZEN
    ]
    plan: list[tuple[str, str, int, Callable[[], None]]] = []  # name, called with, forward calls, body

    def two_instances() -> None:
        a2 = net.build("layer A2", geometry)
        assert a2 is not None
        x2, dy2 = net.x(n), net.dy(n)
        net.forward(a, first_tensors[0])
        net.forward(a2, x2)
        net.backward(a2, dy2)
        net.backward(a, first_tensors[3])

    plan.append(("two instances", "forward A, forward A2, backward A2, backward A: two instances of the layer, the "
                 "same settings, other weights (A's first batch is the first call's)", 2, two_instances))

    others = [(name, settings) for name, settings in zip("BC", other_settings(geometry, implementation))]
    if others:
        def other_layers() -> None:
            built = [net.build(f"layer {name}", settings) for name, settings in others]
            layers = [a, *(layer for layer in built if layer is not None)]
            dys = [net.dy(n, layer.geometry) for layer in layers]
            for layer in layers:
                net.forward(layer, net.x(n, layer.geometry))
            for layer, dy in reversed(list(zip(layers, dys))):
                net.backward(layer, dy)

        names = "".join(name for name, _ in others)
        order = ", ".join([f"forward {c}" for c in "A" + names] + [f"backward {c}" for c in reversed("A" + names)])
        differences = "; ".join(f"{name} has {findings.settings_difference(geometry, settings)}" for name, settings in others)
        plan.append(("other settings", f"{order}: layers of the same input and kernel shapes; {differences}",
                     1 + len(others), other_layers))

    def recomputed() -> None:
        x_other, x, dy = net.x(n), net.x(n), net.dy(n)
        net.forward(a, x_other)
        net.forward(a, x)
        net.backward(a, dy)
        net.forward(a, x)  # gradient checkpointing: the same batch again, after the caller wrote into O and dX
        net.backward(a, dy)

    plan.append(("recomputed forward", "forward A on another batch, then forward A, backward A on one batch, twice "
                 "(as gradient checkpointing recomputes it), the caller writing into every O and dX it got",
                 3, recomputed))
    sizes = tuple(k for k in _batch_sizes(n) if implementation.unsupported(replace(geometry, batch=k)) is None)

    def batch_sizes() -> None:
        for size in sizes:
            net.forward(a, net.x(size))
            net.backward(a, net.dy(size))

    if sizes:  # those the layer declares it takes
        plan.append(("batch sizes", f"forward and backward of A at batch {', then '.join(map(str, sizes))} (after "
                 f"batch {n})", len(sizes), batch_sizes))

    def training_steps() -> None:
        x_buffer, dy_buffer = np.empty((n, *geometry.in_shape), net.dtype), np.empty((n, *geometry.y_shape[1:]), net.dtype)
        for _ in range(2):
            x, dy = net.x(n), net.dy(n)
            net.forward(a, x, into=x_buffer)
            got = net.backward(a, dy, into=dy_buffer)
            net.update(a, *_optimiser_step(a, got, net.step))

    plan.append(("training steps", "two steps of forward, backward and an SGD update of A's weights in place (the "
                 "same arrays, as an optimiser changes them), each batch in the same buffers, refilled", 2,
                 training_steps))
    for name, called_with, instance, repeats in (
        ("learning rate", f"forward and backward(dout, lr={LEARNING_RATE:g}) twice: dx with the weights before the "
         "step, and the weights after it W - lr*dW", learner, 2),
        ("no bias", "forward and backward of a layer built with b = None", unbiased, 1),
        *((f"{' and '.join(f)} frozen", f"forward and backward with {' and '.join(f)} not requiring a gradient "
           f"({FROZEN[f]}): every other gradient must come back", layer, 1) for f, layer in zip(FROZEN, freezing)),
    ):
        if instance is not None:
            plan.append((name, called_with, repeats, functools.partial(_plain_steps, net, instance, n, repeats)))

    def evaluation() -> None:
        net.forward(a, net.x(n), mode="eval", record=False)  # validation
        net.forward(a, net.x(n))  # back to training: a step that updates the weights
        got = net.backward(a, net.dy(n))
        net.update(a, *_optimiser_step(a, got, net.step))
        net.forward(a, net.x(n), mode="eval", record=False)  # the next validation sees the new weights
        net.forward(a, net.x(n), mode="eval")  # fine-tuning with the module in eval mode, still recording
        net.backward(a, net.dy(n))

    if getattr(a.live, "has_modes", False):  # elsewhere the mode changes nothing
        plan.append(("evaluation mode", "validation between training steps (module.eval() under no_grad, before and "
                     "after an update), then a step in eval mode with gradients on, as when fine-tuning", 4,
                     evaluation))
    three = max(n, 3) if implementation.unsupported(replace(geometry, batch=max(n, 3))) is None else n
    for name, (called_with, make) in _DATA.items():
        batch = three if name in _ZERO_ITEM else n  # room for a zero item between two others, if taken
        plan.append((name, called_with, 1, functools.partial(_data_step, net, a, make, batch)))

    def pruned() -> None:
        w, b = a.w.copy(), a.b.copy()
        pruned_filter = int(net.rng.integers(geometry.filters))
        w[pruned_filter] = 0
        b[pruned_filter] = b[pruned_filter] or 1.0
        net.update(a, w, b)
        net.forward(a, net.x(n))
        net.backward(a, net.dy(n))

    plan.append(("pruned filter", "forward and backward of A with one filter's weights all zero (pruned) and its "
                 "bias not", 1, pruned))

    # Each forward is made twice without the forward check: the layer's own plain call is the reference.
    per_forward = 1 if options.forward_check else 2
    advance = progress(SCENARIO, per_forward * sum(p[2] for p in plan)) if progress else None
    compared_with = REFERENCE if options.forward_check else PLAIN
    checks: list[CallCheck] = []
    for name, called_with, forwards, body in plan:
        check = _as_check(net.run(name, called_with, body), geometry, net.rtol, compared_with, implementation.name)
        if not check.passed and not all(c.passed for c in checks):
            # Layer A carries on: state the first failure left mostly fails the rest, and a call
            # that then raises is part of that failure, not a case that could not be checked.
            check = replace(check, follows=True, status="failed")
        checks.append(check)
        finished(check)  # kept should a later step hang
        if advance is not None:
            advance(per_forward * forwards)  # as planned, even when a failing call ended the step early
    return tuple(checks), net.calls, tuple(net.warnings)


def _step_part(step: str) -> str:
    return f"{SCENARIO_PART}'s step '{step}'"


def _plain_steps(net: _Network, instance: _Instance, n: int, repeats: int) -> None:
    """Forward and backward of one instance; after a backward that took its own step, its weights."""
    for i in range(repeats):
        net.forward(instance, net.x(n))
        net.backward(instance, net.dy(n))
        if instance.variant.learning_rate:
            _after_own_step(net, instance, first=i == 0)


def _data_step(net: _Network, instance: _Instance, make: Callable[[_Network, int], tuple[np.ndarray, np.ndarray]], batch: int) -> None:
    x, dy = make(net, batch)
    net.forward(instance, x)
    net.backward(instance, dy)


def _batch_sizes(n: int) -> tuple[int, ...]:
    """A larger batch, a smaller tail than the case's (at least 2 when it is 1), then 1."""
    tail = max(1, n - 1) if n > 2 else 2
    return (n + 3, tail, 1)


def _optimiser_step(instance: _Instance, got: Outputs, step: Optional[_Step]) -> tuple[np.ndarray, np.ndarray]:
    """SGD on the gradients the step's reference gave (right whatever the layer returned), scaled to
    move the weights by OPTIMISER_STEP of their largest value."""
    assert step is not None
    expected = step.calls[-1].expected
    dw, db = expected.get("dK", np.zeros_like(instance.w)), expected.get("db", np.zeros_like(instance.b))
    largest = float(np.max(np.abs(dw), initial=0.0))
    rate = OPTIMISER_STEP * float(np.max(np.abs(instance.w), initial=1.0)) / largest if largest > 0 else 0.0
    return instance.w - rate * dw, instance.b - rate * db


def _after_own_step(net: _Network, instance: _Instance, *, first: bool) -> None:
    """After backward(dout, lr): the first step must leave W - lr*dW (of the weights before it:
    plain SGD, which momentum's first step also is); after a later one the layer's own optimiser
    may differ, and the weights it holds are taken as they are for the calls after it."""
    step = net.step
    assert step is not None
    expected = step.calls[-1].expected
    dw, db = expected["dK"], expected.get("db", np.zeros_like(instance.b, dtype=np.float64))
    held_w, held_b = guarded_call("reading the weights", instance.live.held)
    held_w = _as_weights(held_w, instance.w, "W")
    held_b = _as_weights(held_b, instance.b, "b") if instance.variant.bias and held_b is not None else None
    if first:
        cause = findings.learning_rate_step(
            instance.w, instance.b, dw, db, held_w, held_b, LEARNING_RATE, net.rtol, net.dtype
        )
        if cause is not None:
            step.extra_cause = cause
            raise ImplementationFailure(cause, status="failed")  # the next calls would start from unknown weights
    instance.w = held_w.astype(net.dtype)
    if held_b is not None:
        instance.b = held_b.astype(net.dtype)


def _as_weights(held: Any, like: np.ndarray, name: str) -> np.ndarray:
    """What the layer holds as `name`, in float64 and the shape of `like`; a failure when it is not that."""
    try:
        values = np.asarray(held, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ImplementationFailure(
            f"after backward(dout, lr) the layer holds {name} as {type(held).__name__}, not numbers ({error})"
        ) from error
    if values.size != like.size:
        raise ImplementationFailure(
            f"after backward(dout, lr) the layer holds {name} of shape {format_shape(values.shape)}, expected "
            f"{format_shape(like.shape)}", status="failed",
        )
    return values.reshape(like.shape)


def _activations(net: _Network, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """x as a ReLU branch concatenated with a normalised one leaves it: half the planes rectified
    (half exact zeros; a quarter of those planes all zero), a quarter entirely negative, a quarter
    as drawn, and item 1 all zero (a ReLU can kill a whole item)."""
    x = net.x(batch)
    choice = net.rng.random(x.shape[:2])
    rectified, negative = choice < 0.5, (choice >= 0.5) & (choice < 0.75)
    x[rectified] = np.maximum(x[rectified], 0)
    x[choice < 0.125] = 0
    x[negative] = -np.abs(x[negative]) - 0.25
    x[0, 0] = -np.abs(x[0, 0]) - 0.25  # at least one negative plane, whatever the draw
    x[1:2] = 0
    return x, net.dy(batch)


def _max_pool_gradient(net: _Network, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """dy as max-pooling passes it back: three quarters exact zeros, both signs, item 1 all zero."""
    dy = net.dy(batch)
    dy[net.rng.random(dy.shape) < 0.75] = 0
    dy[1:2] = 0
    return net.x(batch), dy


def _scaled_gradient(factor: float) -> Callable[[_Network, int], tuple[np.ndarray, np.ndarray]]:
    def make(net: _Network, batch: int) -> tuple[np.ndarray, np.ndarray]:
        return net.x(batch), (net.dy(batch).astype(np.float64) * factor).astype(net.dtype)

    return make


_ZERO_ITEM = ("activations", "max-pool gradient")  # the steps with a zero item
_DATA: dict[str, tuple[str, Callable[[_Network, int], tuple[np.ndarray, np.ndarray]]]] = {
    "activations": ("x as a ReLU branch concatenated with a normalised one leaves it: exact zeros, whole zero "
                    "planes, whole negative planes, a zero item", _activations),
    "max-pool gradient": ("dy as after max-pooling: three quarters exact zeros of both signs, a zero item",
                          _max_pool_gradient),
    "tiny gradient": ("dy of size 1e-8, as under loss scaling or late in training", _scaled_gradient(1e-8)),
    "large gradient": ("dy of size 1e3", _scaled_gradient(1e3)),
}


def _as_check(step: _Step, geometry: LayerGeometry, rtol: float, compared_with: str, impl: str) -> CallCheck:
    """The step as a later check: its rows, and when it failed, the cause of its first failure (a
    wrong result before a call that then failed is that failure's cause)."""
    rows = tuple(t for call in step.calls for t in call.rows)
    failing = step.first_failing
    status: Status = "passed" if step.passed else "failed"
    if step.passed:
        cause = None
    elif step.extra_cause is not None:
        cause = step.extra_cause
    elif failing is not None:
        cause = findings.cause(step.name, failing, step.calls, geometry, rtol, impl)
    else:
        assert step.failure is not None
        own = step.failed_on.geometry if step.failed_on is not None else geometry
        cause = findings.call_failed(step.name, str(step.failure), step.calls, own, geometry, impl)
        status = step.failure.status
    return CallCheck(step.name, step.called_with, compared_with, status, tensors=rows, cause=cause,
                     forward_calls=step.forward_calls, part=SCENARIO)

