"""The calling style of layer objects: a class built with its settings (or with its weights),
whose forward(x) keeps what backward(dout) needs, and whose backward hands the gradients back.

    layer = Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0)
                                     (or Conv(W, b, stride=1, pad=0): the weights themselves)
    layer.build(input_shape)         (when it makes its weights in a step of its own, or in its first forward)
    layer.W, layer.b = w, b          (or params["W"], W.data, or a declared setter: layer.set_params(w, b))
    y = layer.forward(x)             (or a declared method: forward_pass, pass_forward(x, True))
    dx = layer.backward(dy)          then layer.dW, layer.db (or grads["W"], W.grad); or it returns
                                     (dx, dw, db), (dx, [dw, db]), a dict (returns.py)

One object is built per layer geometry and kept for every call on it, so that state it keeps
between calls is exercised by the call protocol. Before each backward, forward runs on the same
inputs, so the cache backward reads belongs to them. The constructor's parameters, the
attributes, a build step and a method clearing accumulated gradients are found by their usual
names (vocabulary.py); others are declared (declare.py).
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal, Mapping, Optional

import numpy as np

from convgrad.errors import ImplementationError
from convgrad.geometry import LayerGeometry, format_shape
from convgrad.adapters.declare import AttributePath, CallForm, Declarations, Placeholder
from convgrad.adapters.functions import UserSettings, parameters
from convgrad.adapters.hints import with_crash_reason
from convgrad.adapters.failure import ImplementationFailure
from convgrad.adapters.live import Mode, Variant, write_in_place
from convgrad.adapters.returns import Gradients, unpack_gradients
from convgrad.adapters.vocabulary import (
    BUILD_METHODS, CONTAINERS, LEARNING_RATE, NAMES, PARAMETER_FIELDS, PLACEHOLDERS, ROLES, ZERO_GRAD,
    handed_over, setting_value, untaken_setting,
)

__all__ = ["StatefulCalls", "stateful_calls", "is_layer_class"]

# The settings a constructor is told by name, found in this order (weights and bias are found apart).
CONSTRUCTOR_NAMES = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "in_shape")
_PER_AXIS = ("kernel_size", "stride", "padding", "dilation")  # an int, or a tuple with one value per axis
# What each declared method may be handed (the placeholders of its CallForm).
_HANDED = {"forward": ("x",), "backward": ("dy", "lr"), "build": ("in_shape", "x_shape", "x", "in_channels",
                                                                    "out_channels", "kernel_size")}
_EMPTY = inspect.Parameter.empty


def is_layer_class(target: Any, declared: Optional[Declarations] = None) -> bool:
    """A class (or an instance of one) with a backward, whose forward takes only x (its other
    parameters have defaults), or with the forward it declares (stateful_calls checks the call)."""
    cls = target if inspect.isclass(target) else type(target)
    declared = declared or Declarations()
    forward = _method_form(declared.forward, "forward", "x")
    backward = getattr(cls, declared.backward.name if declared.backward else "backward", None)
    method = getattr(cls, forward.name, None)
    if not callable(method) or not callable(backward):
        return False
    return declared.forward is not None or _callable_with(method, forward)


def _method_form(declared: Optional[CallForm], name: str, first: str) -> CallForm:
    """The declared call when written out, else `name(first)` under the declared name."""
    if declared is not None and declared.written:
        return declared
    return CallForm(declared.name if declared else name, (Placeholder(first),), written=True)


def _callable_with(method: Any, form: CallForm) -> bool:
    """Whether `method` (of a class: self comes first) takes the arguments of `form`."""
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):
        return False
    arguments, keywords = form.bind({meaning: None for meaning in PLACEHOLDERS})
    named = [p for p in signature.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(named) < 1 + len(arguments):  # x swallowed by *args: not a layer's forward(x)
        return False
    try:
        signature.bind(None, *arguments, **keywords)
    except TypeError:
        return False
    return True


@dataclass(frozen=True)
class StatefulCalls:
    """A layer class behind the calling interface of functions.py (see the module docstring)."""

    cls: type
    constructor: Mapping[str, str]  # convgrad's name -> the constructor's parameter
    defaults: Mapping[str, Any]  # the constructor's parameter -> its default (_EMPTY when required)
    attributes: Mapping[str, AttributePath]  # role -> where, for the roles found at the probe or declared
    has_bias: bool
    declared: Declarations
    forward_call: CallForm  # placeholders: x
    backward_call: CallForm  # placeholders: dy, and lr for a backward that also takes a step
    build: Optional[CallForm] = None  # a step that makes the weights after the constructor
    lazy: bool = False  # the weights are made by the first forward: one forward on zeros first
    zero_grad: Optional[str] = None  # backward accumulates gradients, and this method clears them
    style: Literal["stateful"] = "stateful"
    _built: dict[tuple[Any, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        return untaken_setting(self.constructor, geometry, f"{self.cls.__name__}'s constructor")

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        return None

    @property
    def takes_no_bias(self) -> bool:
        """Built without a bias: a flag `bias=True`, or bias values that default to None."""
        if not self.has_bias or self.declared.set_weights is not None:
            return False
        if "bias" in self.constructor:
            return True
        values = self.constructor.get("bias_values")
        return values is not None and self.defaults.get(values, _EMPTY) is None

    @property
    def takes_learning_rate(self) -> bool:
        return "lr" in self.backward_call.placeholders

    @property
    def takes_bias(self) -> bool:
        return self.has_bias

    @property
    def takes_kernel_size(self) -> bool:
        return "kernel_size" in self.constructor

    def setting_default(self, setting: str) -> Any:
        return 0  # ints; constructor_arguments hands each over by the constructor's own default

    def live(self, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any, variant: Variant) -> "LayerObject":
        """A new object of the class, as a network builds one per layer."""
        w, b = np.array(w, copy=True), (None if b is None else np.array(b, copy=True))
        layer = self._make(settings, geometry, w, b, bias=variant.bias)
        self._set(layer, w, b, variant.bias)
        return LayerObject(self, layer, geometry, variant, (np.shape(w), np.shape(b)))

    def forward(self, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        layer = self._layer(settings, geometry, w, b)
        self._set(layer, w, b)
        return self.call_forward(layer, x)

    def backward(self, dy: Any, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        layer = self._layer(settings, geometry, w, b)
        self._set(layer, w, b)
        self.call_forward(layer, x)  # the cache backward reads must be this call's
        result = self.call_backward(layer, dy, 0.0)
        return self.gradients(layer, result, (np.shape(w), np.shape(b)), self.has_bias)

    def call_forward(self, layer: Any, x: Any) -> Any:
        arguments, keywords = self.forward_call.bind({"x": x})
        return getattr(layer, self.forward_call.name)(*arguments, **keywords)

    def call_backward(self, layer: Any, dy: Any, learning_rate: float) -> Any:
        """backward on dy, after clearing the gradients it accumulates (as a training loop does)."""
        if self.zero_grad is not None:
            getattr(layer, self.zero_grad)()
        arguments, keywords = self.backward_call.bind({"dy": dy, "lr": learning_rate})
        return getattr(layer, self.backward_call.name)(*arguments, **keywords)

    def gradients(self, layer: Any, result: Any, shapes: tuple[tuple[int, ...], tuple[int, ...]], bias: bool) -> Any:
        """(dx, dw, db): what backward returned (returns.py), dw and db not in it read off the layer."""
        unpacked = unpack_gradients(result, self.declared.backward_returns)
        if isinstance(unpacked, (tuple, list)) and len(unpacked) in (2, 3):
            dx, dw, db = (*unpacked, None)[:3]  # (dx, dw, db), or (dx, dw) with db on the layer
        else:
            dx, dw, db = unpacked, None, None  # dx alone
        if dw is None:
            dw = self._gradient(layer, "grad_weights", shapes[0])
        if db is None and bias:
            db = self._gradient(layer, "grad_bias", shapes[1])
        if not self.has_bias and self.declared.bias:
            self._no_hidden_bias(layer, db)
        return Gradients(dx, dw, db)

    def _no_hidden_bias(self, layer: Any, db: Any) -> None:
        """A layer found bias-free that computes a bias gradient keeps its bias where convgrad did not
        look: its db would go unchecked (convgrad's own bias stands in), so that is a failure."""
        held = next((str(p) for p in _parameter_paths("grad_bias") if _holds_array(layer, p)), None)
        if db is None and held is None:
            return
        where = "returned a db" if db is not None else f"left a bias gradient in {held}"
        raise ImplementationFailure(
            f"backward {where}, but convgrad found no bias to set on {self.cls.__name__} "
            f"({', '.join(ROLES['bias'])}); declare where it keeps it, like attributes = {{bias = \"offset\"}}, "
            "or bias = false"
        )

    def _layer(self, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any) -> Any:
        key = (geometry.in_shape, geometry.kernel_shape, geometry.stride, geometry.padding_pairs, geometry.dilation, geometry.groups)
        if key not in self._built:
            self._built[key] = self._make(
                settings, geometry, np.array(w, copy=True), None if b is None else np.array(b, copy=True))
        return self._built[key]

    def _make(self, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any, *, bias: bool = True) -> Any:
        """An object of the class for `geometry`, its weights made (by a build step, or its first
        forward) so that convgrad's can be set. A constructor taking the weights gets w and b."""
        arguments = constructor_arguments(self, settings, geometry, w, b, bias=bias)
        layer = self._guarded(lambda: self.cls(**arguments), geometry,
                              f"creating {self.cls.__name__}({_shown(arguments)})")
        if self.build is not None:
            build = self.build
            arguments_, keywords = build.bind(_build_values(geometry, self.declared))
            self._guarded(lambda: getattr(layer, build.name)(*arguments_, **keywords), geometry,
                          f"{self.cls.__name__}.{build}")
        if self.lazy:
            zeros = _build_values(geometry, self.declared)["x"]
            self._guarded(lambda: self.call_forward(layer, zeros), geometry,
                          f"the first {self.cls.__name__}.{self.forward_call.name}, which makes the weights,")
        return layer

    def _guarded(self, call: Callable[[], Any], geometry: LayerGeometry, what: str) -> Any:
        """A step before the first call: a refusal skips the case, a crash fails it with a hint."""
        # The probe was built (and its weights made) on a 2-D case with a square kernel: the plain case runs.
        return with_crash_reason(what, geometry, self.declared, call, runs=lambda plain: True, asked="creating")

    def _set(self, layer: Any, w: Any, b: Any, bias: bool = True) -> None:
        """The checker's weights, in the shape the layer keeps its own (e.g. bias (F, 1))."""
        bias = bias and self.has_bias
        form = self.declared.set_weights
        if form is not None:
            setter = getattr(layer, form.name)
            if form.written:  # set_weights = "load(weight=w, bias=b)": as written
                arguments, keywords = form.bind({"w": w, "b": b if bias else None})
                setter(*arguments, **keywords)
            else:
                setter(w, b) if bias else setter(w)
            return
        _put(layer, self.attributes["weights"], w, self.cls.__name__, in_place=False)
        if bias:
            _put(layer, self.attributes["bias"], b, self.cls.__name__, in_place=False)

    def _gradient(self, layer: Any, role: str, shape: tuple[int, ...]) -> Any:
        """A gradient left on the layer, copied (the layer may overwrite it next call), in the checker's shape."""
        held = self.attributes.get("weights" if role == "grad_weights" else "bias")
        path = self.attributes.get(role) or next(
            (p for p in _gradient_paths(role, held) if _holds_array(layer, p)), None)
        if path is None or path.get(layer) is None:
            tried = str(path) if path is not None else ", ".join(ROLES[role][:6])
            raise ImplementationFailure(
                f"after backward, {self.cls.__name__} has no {tried} holding the {role.replace('_', ' ')}; "
                f"declare where it is, like attributes = {{{role} = \"...\"}}, or return it from backward"
            )
        value = np.array(path.get(layer), copy=True)
        return value.reshape(shape) if _squeezed(value.shape) == _squeezed(shape) else value


class LayerObject:
    """One object of a layer class, as a network holds it: weights set once and then updated in
    place, forward(x) keeping what backward(dout) reads, and a training backward(dout, lr) given
    the variant's learning rate (0 unless a step is asked for)."""

    def __init__(
        self, calls: StatefulCalls, layer: Any, geometry: LayerGeometry, variant: Variant,
        shapes: tuple[tuple[int, ...], tuple[int, ...]],
    ) -> None:
        self.geometry = geometry
        self._calls, self._layer, self._variant = calls, layer, variant
        self._bias = variant.bias and calls.has_bias
        self._shapes = shapes  # of w and b in the user's layout

    def forward(self, x: Any, *, mode: Mode = "train", record: bool = True) -> Any:
        return self._calls.call_forward(self._layer, x)

    def backward(self, dy: Any) -> Any:
        result = self._calls.call_backward(self._layer, dy, self._variant.learning_rate)
        return self._calls.gradients(self._layer, result, self._shapes, self._bias)

    def update(self, w: Any, b: Any) -> None:
        """As an optimiser does: into the arrays the layer holds (through its setter when it has one)."""
        calls, layer = self._calls, self._layer
        if calls.declared.set_weights is not None:
            calls._set(layer, np.array(w, copy=True), None if b is None else np.array(b, copy=True), self._bias)
            return
        for role, value in (("weights", w), ("bias", b)):
            path = calls.attributes.get(role)
            held = None if path is None else path.get(layer)
            if path is None or value is None or held is None:
                continue
            _put(layer, path, np.array(value, copy=True), calls.cls.__name__, in_place=True)  # as optimisers do

    def held(self) -> tuple[Any, Any]:
        calls, layer = self._calls, self._layer
        w_path, b_path = calls.attributes.get("weights"), calls.attributes.get("bias")
        w = None if w_path is None else w_path.get(layer)
        b = b_path.get(layer) if self._bias and b_path is not None else None
        return (None if w is None else np.array(w, copy=True)), (None if b is None else np.array(b, copy=True))


def _put(layer: Any, path: AttributePath, value: Any, owner: str, *, in_place: bool) -> None:
    """The checker's weights (or bias) where the layer keeps its own, in the dtype it keeps them
    (a float32 layer stays float32) and its shape when it differs only by axes of size 1 ((F, 1)
    for (F,)); a shape that is another layout of the values is refused, never guessed. Written
    into the array it holds when `in_place` (an optimiser's step), else a new array, as assigning
    new weights does (layer.W = ... is the common idiom: a view of the old W made once goes stale)."""
    held = path.get(layer)
    if held is None or np.size(held) != np.size(value):  # nothing yet, or made for other shapes
        path.set(layer, value)
        return
    if _squeezed(np.shape(held)) != _squeezed(np.shape(value)):
        raise ImplementationFailure(
            f"{owner} holds {path} as {format_shape(np.shape(held))}, which is no layout of "
            f"{format_shape(np.shape(value))} convgrad knows; declare weight_layout (oihw, hwio, iohw), or a setter "
            "that takes them as given (set_weights)"
        )
    writable = isinstance(held, np.ndarray) and held.flags.writeable and np.issubdtype(held.dtype, np.floating)
    if writable and in_place:
        write_in_place(held, value)
        return
    dtype = held.dtype if isinstance(held, np.ndarray) and np.issubdtype(held.dtype, np.floating) else None
    path.set(layer, np.reshape(np.asarray(value, dtype=dtype), np.shape(held)))



def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(n for n in shape if n != 1)


def _holds_array(layer: Any, path: AttributePath) -> bool:
    """An array (or a list of numbers) there; a parameter object holding one in .data is not one
    itself (convgrad sets .data, not the object)."""
    value = path.get(layer)
    if isinstance(value, np.ndarray):
        return value.ndim > 0
    return value is not None and not callable(value) and not hasattr(value, "data") and np.ndim(value) > 0


def _check_declared_places(probe: Any, name: str, declared: Declarations) -> None:
    """A declared place for the weights or bias, or a setter, that the probe object does not have
    is a bad declaration (exit 2), not the layer's failure: a typo must not write the weights
    where the layer never reads them."""
    for role in ("weights", "bias"):
        path = declared.attributes.get(role)
        if path is not None and not _holds_array(probe, path):
            raise ImplementationError(
                f"{name}: attributes declares {role} = {str(path)!r}, and "
                f"{type(probe).__name__} holds no array there; give the attribute (or dict key) that holds it",
                parameter="impl",
            )
    setter = declared.set_weights
    if setter is not None and not callable(getattr(probe, setter.name, None)):
        raise ImplementationError(
            f"{name}: set_weights names {setter.name}, which {type(probe).__name__} has no method "
            "called; give the method that takes (w, b)",
            parameter="impl",
        )
    if setter is not None and not setter.placeholders <= {"w", "b"}:
        raise ImplementationError(
            f"{name}: set_weights = {str(setter)!r} names "
            f"{', '.join(sorted(setter.placeholders - {'w', 'b'}))}; a setter is handed w and b only",
            parameter="impl",
        )


@functools.lru_cache(maxsize=None)  # asked on every backward: the same few tuples each time
def _parameter_paths(role: str) -> tuple[AttributePath, ...]:
    """Where a weight or bias may be: an attribute (`W`), an entry of a parameters dict
    (`params["W"]`), or the value of a parameter object (`W.data`)."""
    names = ROLES[role]
    return (
        *(AttributePath((n,)) for n in names),
        *(AttributePath((c, n)) for c in CONTAINERS["parameters"] for n in names),
        *(AttributePath((n, v)) for n in names for v in PARAMETER_FIELDS["value"]),
    )


@functools.lru_cache(maxsize=None)
def _gradient_paths(role: str, held: Optional[AttributePath]) -> tuple[AttributePath, ...]:
    """Where a gradient may be: by its own names (`dW`, `grads["dW"]`), keyed like the parameter
    (`grads["W"]`), or beside a parameter object's value (`W.grad`)."""
    names = ROLES[role]
    paths = [
        *(AttributePath((n,)) for n in names),
        *(AttributePath((c, n)) for c in (*CONTAINERS["gradients"], *CONTAINERS["parameters"]) for n in names),
    ]
    if held is not None and len(held.steps) > 1 and held.steps[-1] in PARAMETER_FIELDS["value"]:
        paths += [AttributePath((*held.steps[:-1], g)) for g in PARAMETER_FIELDS["gradient"]]
    elif held is not None:
        paths += [AttributePath((c, held.steps[-1])) for c in CONTAINERS["gradients"]]
    return tuple(paths)


def _shown(arguments: Mapping[str, Any]) -> str:
    """The constructor's arguments as a message shows them (an array by its shape)."""
    return ", ".join(
        f"{k}=<array {format_shape(np.shape(v))}>" if isinstance(v, np.ndarray) else f"{k}={v!r}"
        for k, v in arguments.items()
    )


def constructor_arguments(
    calls: StatefulCalls, settings: UserSettings, geometry: LayerGeometry, w: Any = None, b: Any = None,
    *, bias: bool = True,
) -> dict[str, Any]:
    """The constructor's keyword arguments for `geometry`: settings as the layer takes them (a
    parameter whose default is a tuple gets a tuple; per_axis: tuples; one_int: one int), and w
    and b for a constructor taking the weights. `bias` False: built without a bias."""
    declared = calls.declared
    padding = settings.get("padding")
    values: dict[str, Any] = {
        "in_channels": geometry.channels, "out_channels": geometry.filters, "kernel_size": geometry.kernel_size,
        "stride": geometry.stride,
        # A word as declared ('same'); pairs only for a layer declaring uneven_padding (declared_refusal).
        "padding": padding if isinstance(padding, str) else geometry.padding_pairs if declared.uneven_padding
        else geometry.padding,
        "dilation": geometry.dilation, "groups": geometry.groups,
        "in_shape": (*geometry.spatial, geometry.channels) if declared.layout == "nhwc" else geometry.in_shape,
        "weights": w, "bias_values": b if bias else None, "bias": bias and declared.bias,
    }
    arguments = {}
    for ours, theirs in calls.constructor.items():
        value = values[ours]
        if ours in _PER_AXIS and isinstance(value, tuple) and not (ours == "padding" and declared.uneven_padding):
            default = calls.defaults.get(theirs, _EMPTY)
            value = handed_over(value, None if default is _EMPTY else default, one_int=declared.one_int,
                                per_axis=declared.per_axis)
        arguments[theirs] = value
    return arguments


def _build_values(geometry: LayerGeometry, declared: Declarations) -> dict[str, Any]:
    """What a build step (and a lazy first forward) is handed, in the layer's layout."""
    channels_last = declared.layout == "nhwc"
    in_shape = (*geometry.spatial, geometry.channels) if channels_last else geometry.in_shape
    x_shape = (geometry.batch, *in_shape) if declared.batched else in_shape  # batched = false: one image
    return {
        "in_shape": in_shape, "x_shape": x_shape, "x": np.zeros(x_shape, dtype=geometry.dtype),
        "in_channels": geometry.channels, "out_channels": geometry.filters,
        "kernel_size": setting_value(geometry.kernel_size),
    }


def stateful_calls(target: Any, name: str, declared: Declarations) -> tuple[StatefulCalls, Optional[str]]:
    """The class of `target` as a layer object, and the weight layout its weights show (None when
    they show none), found by building one probe layer."""
    cls = target if inspect.isclass(target) else type(target)
    declared.refuse(("backward_parts",), "a layer class, whose backward is one method")
    signature = parameters(cls) or {}
    constructor = _constructor(cls, signature, declared)
    calls = StatefulCalls(
        cls, constructor, {n: p.default for n, p in signature.items()}, {}, declared.bias, declared,
        _checked_form(cls, name, "forward", _method_form(declared.forward, "forward", "x")),
        _checked_form(cls, name, "backward", _backward_form(cls, declared)),
        build=None if declared.build is None else _checked_form(cls, name, "build", _build_form(cls, declared.build)),
        zero_grad=next((n for n in ZERO_GRAD if callable(getattr(cls, n, None))), None),
    )
    rank = 2 if declared.spatial_dims is None or 2 in declared.spatial_dims else declared.spatial_dims[0]
    geometry = LayerGeometry(
        in_shape=(2, *(9,) * rank), kernel_shape=(3, 2, *(5,) * rank), batch=1,
        stride=(1,) * rank, padding=(0,) * rank, dilation=(1,) * rank, groups=1, dtype="float64",
    )
    # No padding: 'valid' in the layer's spelling, for one that takes words
    padding = declared.padding_word(geometry) if declared.padding_modes else 0
    settings: UserSettings = {"stride": 1, "padding": padding, "dilation": 1, "groups": 1}
    w, b = _probe_weights(geometry, declared)
    probe, calls = _probe(calls, name, settings, geometry, w, b)
    _check_declared_places(probe, name, declared)
    attributes = dict(declared.attributes)
    if declared.set_weights is None:
        for role in ("weights", "bias"):
            if role not in attributes:
                found = next((p for p in _parameter_paths(role) if _holds_array(probe, p)), None)
                if found is not None:
                    attributes[role] = found
        if "weights" not in attributes:
            built = _shown(constructor_arguments(calls, settings, geometry, w, b))
            tried = "" if calls.build else ", also after a build step or a first forward"
            raise ImplementationError(
                f"{name}: {cls.__name__}({built}) has no weights "
                f"({', '.join(ROLES['weights'])}){tried}; "
                "declare where they are, like attributes = {weights = \"params.W\"}, the step that makes them, like "
                "build = \"build(in_shape)\", or a setter, like set_weights = \"set_params\"",
                parameter="impl",
            )
        if "bias_values" in constructor and "bias" not in attributes and declared.bias:
            raise ImplementationError(
                f"{name}: {cls.__name__} takes {constructor['bias_values']} but keeps it in none "
                f"of {', '.join(ROLES['bias'])}; declare where, like attributes = {{bias = \"biases\"}}",
                parameter="impl",
            )
    has_bias = declared.bias and (declared.set_weights is not None or "bias" in attributes)
    if not has_bias and declared.bias and "bias" in constructor:  # built with bias=True, yet no bias found
        raise ImplementationError(
            f"{name}: {cls.__name__} takes {constructor['bias']}=True but keeps its bias in none of "
            f"{', '.join(ROLES['bias'])}; declare where, like attributes = {{bias = \"offset\"}}, or "
            "bias = false",
            parameter="impl",
        )
    calls = replace(calls, attributes=attributes, has_bias=has_bias)
    weights = attributes["weights"].get(probe) if "weights" in attributes else None
    shown = None if "weights" in constructor or weights is None else _weight_layout(np.shape(weights), geometry)
    return calls, shown


def _probe(
    calls: StatefulCalls, name: str, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any,
) -> tuple[Any, StatefulCalls]:
    """One object of the class, with its weights made: after the constructor (and the declared
    build step), else after a step the class defines under a usual name that takes what convgrad
    can hand over, else after a first forward on zeros (weights made lazily)."""
    try:
        probe = calls._make(settings, geometry, w, b)
    except ImplementationFailure as failure:
        if calls.declared.padding_modes is None and _builds_with_words(calls, settings, geometry, w, b):
            fix = 'declare padding_modes = ["valid", "same"]: it takes padding as a word'
        else:
            fix = ("declare how the constructor takes its settings, like constructor = {in_channels = \"n_in\", "
                   "out_channels = \"n_out\", kernel_size = \"size\"} (and build, if it makes its weights in a step "
                   "of its own)")
        raise ImplementationError(f"{name}: {failure}; {fix}", parameter="impl") from None
    declared = calls.declared
    if declared.set_weights is not None or declared.build is not None or "weights" in declared.attributes:
        return probe, calls
    if any(_holds_array(probe, p) for p in _parameter_paths("weights")):
        return probe, calls
    steps = [replace(calls, build=form) for form in (_fillable(calls.cls, n) for n in BUILD_METHODS) if form]
    for attempt in (*steps, replace(calls, lazy=True)):
        try:
            made = attempt._make(settings, geometry, w, b)
        except ImplementationFailure:
            continue
        if any(_holds_array(made, p) for p in _parameter_paths("weights")):
            return made, attempt
    return probe, calls


def _builds_with_words(calls: StatefulCalls, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any) -> bool:
    """Whether the constructor that raised on padding=0 builds with padding='valid' (Keras style)."""
    try:
        calls._make({**settings, "padding": "valid"}, geometry, w, b)
    except Exception:
        return False
    return True


def _probe_weights(geometry: LayerGeometry, declared: Declarations) -> tuple[np.ndarray, np.ndarray]:
    """w and b for a constructor that takes them, in the declared weight layout and bias shape."""
    f, depth, *kernel = geometry.kernel_shape
    shapes = {"oihw": (f, depth, *kernel), "hwio": (*kernel, depth, f), "iohw": (depth, f, *kernel)}
    random = np.random.default_rng(0)
    bias_shape = tuple(f if s == "F" else 1 for s in declared.bias_shape) if declared.bias_shape else (f,)
    return random.standard_normal(shapes[declared.weight_layout or "oihw"]), random.standard_normal(bias_shape)


def _weight_layout(shape: Optional[tuple[int, ...]], geometry: LayerGeometry) -> Optional[str]:
    """oihw or hwio, from the shape of the probe's own weights: (3, 2, 5, 5) or (5, 5, 2, 3)."""
    f, depth, *kernel = geometry.kernel_shape
    if shape == (f, depth, *kernel):
        return "oihw"
    if shape == (*kernel, depth, f):
        return "hwio"
    return None


def _backward_form(cls: type, declared: Declarations) -> CallForm:
    """The declared backward when written out, else backward(dy), with the learning rate of a
    backward that also takes a step (a default rate too: called without one, it would train)."""
    form = _method_form(declared.backward, "backward", "dy")
    if declared.backward is not None and declared.backward.written:
        return form
    method = getattr(cls, form.name, None)
    rate = next((n for n in (parameters(method) or {}) if n in LEARNING_RATE), None) if callable(method) else None
    return form if rate is None else replace(form, keywords={rate: Placeholder("lr")})


def _build_form(cls: type, declared: CallForm) -> CallForm:
    """A declared build step: as written, else its parameters filled by their names."""
    if declared.written:
        return declared
    return _fillable(cls, declared.name) or declared


def _fillable(cls: type, name: str) -> Optional[CallForm]:
    """name(...) with each parameter given by what its name means (input_shape, x, ...), or None
    when the class has no such method or it needs something convgrad cannot name."""
    method = getattr(cls, name, None)
    found = parameters(method) if callable(method) else None
    if found is None:
        return None
    keywords: dict[str, Any] = {}
    for parameter in found.values():
        if parameter.name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        meaning = next((m for m in _HANDED["build"] if parameter.name in PLACEHOLDERS[m]), None)
        if meaning is not None:
            keywords[parameter.name] = Placeholder(meaning)
        elif parameter.default is _EMPTY:
            return None
    return CallForm(name, (), keywords, written=True)


def _checked_form(cls: type, name: str, key: str, form: CallForm) -> CallForm:
    """A method of the class that takes what its call form hands it; else an error naming the key."""
    unknown = form.placeholders - set(_HANDED[key])
    if unknown:
        raise ImplementationError(
            f"{name} declares {key} = {form}, and a layer object's {key} is handed "
            f"{', '.join(_HANDED[key])} only, not {', '.join(sorted(unknown))}",
            parameter="impl",
        )
    method = getattr(cls, form.name, None)
    if not callable(method):
        raise ImplementationError(
            f"{name}: {cls.__name__} has no method {form.name} (its {key}); declare the method, like "
            f"{key} = {str(replace(form, name=key + '_pass'))!r}",
            parameter="impl",
        )
    if not _callable_with(method, form):
        raise ImplementationError(
            f"{name}: {cls.__name__}.{form.name} cannot be called as {form}; "
            f"declare the arguments it takes, like {key} = \"{form.name}(...)\" with {', '.join(_HANDED[key])}",
            parameter="impl",
        )
    return form


def _constructor(cls: type, signature: Mapping[str, inspect.Parameter], declared: Declarations) -> dict[str, str]:
    """convgrad's name -> the parameter: declared, else found by its usual names. A constructor
    naming no channel counts and no kernel size but weights (`W`) takes the weights themselves."""
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.values())
    mapping = dict(declared.constructor)

    def find(meaning: str, exclude: tuple[str, ...] = ()) -> Optional[str]:
        free = (n for n in NAMES[meaning] if n in signature and n not in mapping.values() and n not in exclude)
        return next(free, None)

    weights = mapping.get("weights") or find("weights")
    sized = any(m in mapping for m in ("in_channels", "out_channels", "kernel_size")) or any(
        find(m, exclude=(weights or "",)) for m in ("in_channels", "out_channels", "kernel_size"))
    if "weights" not in mapping and weights is not None and not sized:
        mapping["weights"] = weights
    if "weights" in mapping and "bias_values" not in mapping:
        values = find("bias_values") or next(  # `bias` that is no flag is the values
            (n for n in NAMES["bias"] if n in signature and not isinstance(signature[n].default, bool)), None)
        if values is not None:
            mapping["bias_values"] = values
    for ours in CONSTRUCTOR_NAMES:
        if ours not in mapping:
            found = find(ours)
            if found is not None:
                mapping[ours] = found
    flag = find("bias")
    if "bias" not in mapping and flag is not None and isinstance(signature[flag].default, bool):
        mapping["bias"] = flag  # bias=True: built with a bias, or without one (a network's b = None)
    for ours, theirs in mapping.items():
        if theirs not in signature and not open_ended:
            raise ImplementationError(
                f"{cls.__name__}'s constructor has no parameter {theirs!r} (constructor declares {ours} = "
                f"{theirs!r}); its parameters are {', '.join(signature) or 'none'}",
                parameter="impl",
            )
    required = [
        n for n, p in signature.items()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n not in mapping.values()
    ]
    if required:
        raise ImplementationError(
            f"{cls.__name__}({', '.join(signature)}) needs {', '.join(required)}, which convgrad "
            f"does not recognise; declare what they are, like CONVGRAD = {{\"constructor\": {{\"in_channels\": "
            f"\"{required[0]}\"}}}}, naming {', '.join((*CONSTRUCTOR_NAMES, 'weights', 'bias_values'))}",
            parameter="impl",
        )
    return mapping
