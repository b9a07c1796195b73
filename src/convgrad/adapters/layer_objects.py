"""The calling style of layer objects: a class built with its settings, whose forward(x) keeps
what backward(dout) needs, and whose backward returns dX and leaves dW and db on attributes.

    layer = Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0)
    layer.W, layer.b = w, b          (or a declared setter: layer.set_params(w, b))
    y = layer.forward(x)
    dx = layer.backward(dy)          then layer.dW, layer.db

One object is built per layer geometry and kept for every call on it, so that state it keeps
between calls is exercised by the call protocol. Before each backward, forward runs on the same
inputs, so the cache backward reads belongs to them. The constructor's parameters and the
attributes are found by their usual names; others are declared (declare.py).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional

import numpy as np

from convgrad.errors import ImplementationError, literal
from convgrad.geometry import LayerGeometry
from convgrad.adapters.declare import AttributePath, Declarations
from convgrad.adapters.functions import UserSettings, parameters
from convgrad.harness.guard import ImplementationFailure, describe_exception
from convgrad.adapters.live import Mode, Variant, write_in_place
from convgrad.adapters.vocabulary import LEARNING_RATE, NAMES, ROLES, untaken_setting
from convgrad.adapters.protocol import Unsupported

__all__ = ["StatefulCalls", "stateful_calls", "is_layer_class"]

# The settings a constructor is told by name (weights and bias flags are layer_objects' own business).
CONSTRUCTOR_NAMES = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "in_shape")
CONSTRUCTOR_ALIASES = NAMES
ATTRIBUTE_ALIASES = ROLES
_LEARNING_RATE = LEARNING_RATE


def is_layer_class(target: Any) -> bool:
    """A class (or an instance of one) whose forward takes only x: a layer object."""
    cls = target if inspect.isclass(target) else type(target)
    forward = getattr(cls, "forward", None)
    found = parameters(forward) if callable(forward) else None
    if found is None or not callable(getattr(cls, "backward", None)):
        return False
    required = [p for p in found.values() if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(required) == 2  # self and x


@dataclass(frozen=True)
class StatefulCalls:
    """A layer class behind the calling interface of functions.py (see the module docstring)."""

    cls: type
    constructor: Mapping[str, str]  # convgrad's name -> the constructor's parameter
    attributes: Mapping[str, AttributePath]  # role -> where, for the roles found or declared
    has_bias: bool
    declared: Declarations
    learning_rate: Optional[str] = None  # a backward(dout, lr) that also updates: given lr = 0
    style: Literal["stateful"] = "stateful"
    _built: dict[tuple[Any, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        return untaken_setting(self.constructor, geometry, f"{self.cls.__name__}'s constructor")

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        return None

    @property
    def takes_no_bias(self) -> bool:
        """A constructor flag `bias=True` (a `bias` that defaults to anything else is a value)."""
        flag = (parameters(self.cls) or {}).get("bias")
        return self.has_bias and flag is not None and flag.default is True and self.declared.set_weights is None

    @property
    def takes_learning_rate(self) -> bool:
        return self.learning_rate is not None

    @property
    def takes_kernel_size(self) -> bool:
        return "kernel_size" in self.constructor

    def live(self, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any, variant: Variant) -> "LayerObject":
        """A new object of the class, as a network builds one per layer."""
        arguments = constructor_arguments(self.constructor, settings, geometry, self.declared)
        if not variant.bias:
            arguments["bias"] = False
        layer = self._construct(arguments)
        self._set(layer, np.array(w, copy=True), None if b is None else np.array(b, copy=True), variant.bias)
        return LayerObject(self, layer, geometry, variant, (np.shape(w), np.shape(b)))

    def forward(self, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        layer = self._layer(settings, geometry)
        self._set(layer, w, b)
        return layer.forward(x)

    def backward(self, dy: Any, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        layer = self._layer(settings, geometry)
        self._set(layer, w, b)
        layer.forward(x)  # the cache backward reads must be this call's
        dx = layer.backward(dy, **{self.learning_rate: 0.0}) if self.learning_rate else layer.backward(dy)
        if isinstance(dx, (tuple, list)) and len(dx) == 3:
            return dx  # a backward that returns (dx, dw, db) itself
        dw = self._gradient(layer, "grad_weights", np.shape(w))
        db = self._gradient(layer, "grad_bias", np.shape(b)) if self.has_bias else None
        return dx, dw, db

    def _layer(self, settings: UserSettings, geometry: LayerGeometry) -> Any:
        key = (geometry.in_shape, geometry.kernel_shape, geometry.stride, geometry.padding, geometry.dilation, geometry.groups)
        if key not in self._built:
            self._built[key] = self._construct(constructor_arguments(self.constructor, settings, geometry, self.declared))
        return self._built[key]

    def _construct(self, arguments: dict[str, Any]) -> Any:
        try:
            return self.cls(**arguments)
        except Unsupported:  # the constructor refuses the case: skipped (run_case)
            raise
        except Exception as error:
            shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
            raise ImplementationFailure(
                f"creating {self.cls.__name__}({shown}) raised {describe_exception(error)}"
            ) from error

    def _set(self, layer: Any, w: Any, b: Any, bias: bool = True) -> None:
        """The checker's weights, in the shape the layer keeps its own (e.g. bias (F, 1))."""
        bias = bias and self.has_bias
        if self.declared.set_weights is not None:
            setter = getattr(layer, self.declared.set_weights.name)
            setter(w, b) if bias else setter(w)
            return
        self.attributes["weights"].set(layer, _like(self.attributes["weights"].get(layer), w))
        if bias:
            self.attributes["bias"].set(layer, _like(self.attributes["bias"].get(layer), b))

    def _gradient(self, layer: Any, role: str, shape: tuple[int, ...]) -> Any:
        """A gradient attribute, copied (the layer may overwrite it next call) in the checker's shape."""
        path = self.attributes.get(role) or next(
            (AttributePath((n,)) for n in ATTRIBUTE_ALIASES[role] if _has_array(layer, n)), None)
        name = None if path is None else str(path)
        if path is None or path.get(layer) is None:
            tried = name or ", ".join(ATTRIBUTE_ALIASES[role][:6])
            raise ImplementationFailure(
                f"after backward, {self.cls.__name__} has no {tried} holding the {role.replace('_', ' ')}; "
                f"declare where it is, like attributes = {{{role} = \"...\"}}"
            )
        value = np.array(path.get(layer), copy=True)
        return value.reshape(shape) if value.size == int(np.prod(shape)) else value


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
        return self._layer.forward(x)

    def backward(self, dy: Any) -> Any:
        layer, calls = self._layer, self._calls
        rate = {calls.learning_rate: self._variant.learning_rate} if calls.learning_rate else {}
        dx = layer.backward(dy, **rate)
        if isinstance(dx, (tuple, list)) and len(dx) == 3:
            return dx
        dw = calls._gradient(layer, "grad_weights", self._shapes[0])
        db = calls._gradient(layer, "grad_bias", self._shapes[1]) if self._bias else None
        return dx, dw, db

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
            if isinstance(held, np.ndarray) and held.size == np.size(value) and held.flags.writeable:
                write_in_place(held, value)
            else:
                path.set(layer, _like(held, np.array(value, copy=True)))

    def held(self) -> tuple[Any, Any]:
        calls, layer = self._calls, self._layer
        w_path, b_path = calls.attributes.get("weights"), calls.attributes.get("bias")
        w = None if w_path is None else w_path.get(layer)
        b = b_path.get(layer) if self._bias and b_path is not None else None
        return (None if w is None else np.array(w, copy=True)), (None if b is None else np.array(b, copy=True))


def _like(current: Any, value: Any) -> Any:
    """`value` reshaped to the shape of what the attribute holds now, when the sizes agree."""
    shape = np.shape(current) if current is not None else None
    if shape is not None and shape != np.shape(value) and int(np.prod(shape)) == np.size(value):
        return np.reshape(value, shape)
    return value


def _has_array(layer: Any, name: str) -> bool:
    value = getattr(layer, name, None)
    return value is not None and not callable(value) and np.ndim(value) > 0


def constructor_arguments(
    constructor: Mapping[str, str], settings: UserSettings, geometry: LayerGeometry, declared: Declarations
) -> dict[str, Any]:
    """The constructor's keyword arguments for `geometry`, settings as the layer takes them."""
    kernel = geometry.kernel_size
    values: dict[str, Any] = {
        "in_channels": geometry.channels,
        "out_channels": geometry.filters,
        "kernel_size": kernel[0] if len(set(kernel)) == 1 and (declared.one_int or _ints(settings)) else kernel,
        "in_shape": (*geometry.spatial, geometry.channels) if declared.layout == "nhwc" else geometry.in_shape,
        **settings,
    }
    return {theirs: values[ours] for ours, theirs in constructor.items()}


def _ints(settings: UserSettings) -> bool:
    return not any(isinstance(v, tuple) for v in settings.values())


def stateful_calls(target: Any, name: str, declared: Declarations) -> tuple[StatefulCalls, Optional[str]]:
    """The class of `target` as a layer object, and the weight layout its weights show (None when
    they show none), found by building one probe layer."""
    cls = target if inspect.isclass(target) else type(target)
    signature = parameters(cls) or {}
    constructor = _constructor(cls, signature, declared)
    probe_geometry = LayerGeometry(
        in_shape=(2, *(9,) * _probe_rank(declared)), kernel_shape=(3, 2, *(5,) * _probe_rank(declared)), batch=1,
        stride=(1,) * _probe_rank(declared), padding=(0,) * _probe_rank(declared),
        dilation=(1,) * _probe_rank(declared), groups=1, dtype="float64",
    )
    probe_settings: UserSettings = {
        "stride": 1, "padding": "valid" if declared.padding_modes else 0, "dilation": 1, "groups": 1,
    }
    arguments = constructor_arguments(constructor, probe_settings, probe_geometry, declared)
    try:
        probe = cls(**arguments)
    except Exception as error:
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        raise ImplementationError(
            f"{literal(name)}: creating {cls.__name__}({literal(shown)}) raised {literal(describe_exception(error))}; "
            "declare how the constructor takes its settings, like constructor = {{in_channels = \"n_in\", "
            "out_channels = \"n_out\", kernel_size = \"size\"}}",
            parameter="impl",
        ) from None
    attributes = dict(declared.attributes)
    if declared.set_weights is None:
        for role in ("weights", "bias"):
            if role not in attributes:
                found = next((n for n in ATTRIBUTE_ALIASES[role] if _has_array(probe, n)), None)
                if found is not None:
                    attributes[role] = AttributePath((found,))
        if "weights" not in attributes:
            raise ImplementationError(
                f"{literal(name)}: {cls.__name__}({literal(', '.join(arguments))}) has no weights attribute "
                f"({literal(', '.join(ATTRIBUTE_ALIASES['weights']))}); declare it, like attributes = "
                "{{weights = \"kernel_weights\", bias = \"kernel_bias\"}}, or a setter, like set_weights = \"set_params\"",
                parameter="impl",
            )
    has_bias = declared.bias and (declared.set_weights is not None or "bias" in attributes)
    backward = parameters(getattr(cls, "backward")) or {}
    # A default learning rate too: called without one, such a backward would train with it.
    learning_rate = next((n for n in backward if n in _LEARNING_RATE), None)
    calls = StatefulCalls(cls, constructor, attributes, has_bias, declared, learning_rate)
    weights = attributes["weights"].get(probe) if "weights" in attributes else None
    return calls, _weight_layout(np.shape(weights) if weights is not None else None, probe_geometry)


def _probe_rank(declared: Declarations) -> int:
    return 2 if declared.spatial_dims is None or 2 in declared.spatial_dims else declared.spatial_dims[0]


def _weight_layout(shape: Optional[tuple[int, ...]], geometry: LayerGeometry) -> Optional[str]:
    """oihw or hwio, from the shape of the probe's own weights: (3, 2, 5, 5) or (5, 5, 2, 3)."""
    f, depth, *kernel = geometry.kernel_shape
    if shape == (f, depth, *kernel):
        return "oihw"
    if shape == (*kernel, depth, f):
        return "hwio"
    return None


def _constructor(cls: type, signature: Mapping[str, inspect.Parameter], declared: Declarations) -> dict[str, str]:
    """convgrad's name -> the parameter: declared, else found by its usual names."""
    open_ended = any(p.kind is p.VAR_KEYWORD for p in signature.values())
    mapping = dict(declared.constructor)
    for ours in CONSTRUCTOR_NAMES:
        if ours not in mapping:
            found = next((n for n in CONSTRUCTOR_ALIASES[ours] if n in signature and n not in mapping.values()), None)
            if found is not None:
                mapping[ours] = found
    for ours, theirs in mapping.items():
        if theirs not in signature and not open_ended:
            raise ImplementationError(
                f"{cls.__name__}'s constructor has no parameter {theirs!r} (constructor declares {ours} = "
                f"{theirs!r}); its parameters are {literal(', '.join(signature) or 'none')}",
                parameter="impl",
            )
    required = [
        n for n, p in signature.items()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and n not in mapping.values()
    ]
    if required:
        raise ImplementationError(
            f"{cls.__name__}({literal(', '.join(signature))}) needs {literal(', '.join(required))}, which convgrad "
            f"does not recognise; declare what they are, like CONVGRAD = {{{{\"constructor\": {{{{\"in_channels\": "
            f"\"{required[0]}\"}}}}}}}}, naming {', '.join(CONSTRUCTOR_NAMES)}",
            parameter="impl",
        )
    return mapping
