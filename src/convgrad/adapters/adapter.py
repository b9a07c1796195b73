"""Call conv layers written in other conventions through convgrad's one protocol, without glue.

The checker speaks `protocol.ConvLayer`: (N, C, *S) arrays, (F, C/g, *k) kernels, (F,)
biases, settings as keywords. An `Adapter` translates that into what the user's layer takes: a
calling style (functions.py: keyword functions, course-style cache functions, a backward in parts;
layer_objects.py: layer objects; autograd_engines.py: a conv on an autograd engine's tensors), one
image at a time (per_image.py), channels-last arrays (layout nhwc), kernels in weight layout hwio
or iohw, biases shaped as declared, settings as the layer takes them (vocabulary.handed_over: ints,
tuples, (before, after) pairs, 'valid'/'same'), and gradients returned in any nesting
(returns.py), db as (F, 1) or (1, 1, 1, F). Every declaration (declare.py) applies. A bias-free layer gets the
bias added here, so O, dX and dK are still checked and db is reported as "no bias". Arrays are
handed over as views of the checker's own copies, so an implementation that writes into its
inputs is still caught by the guard.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Protocol, Sequence, cast

import numpy as np

from convgrad.errors import ImplementationError, Parameter, Part, SettingError
from convgrad.geometry import LayerGeometry, format_shape
from convgrad.adapters.declare import CallForm, Declarations, declared_refusal, read_declarations
from convgrad.adapters.autograd_engines import AutogradCalls
from convgrad.adapters.per_image import PerImageLive, each_image_backward, each_image_forward
from convgrad.adapters.returns import unpack_gradients
from convgrad.adapters.functions import Fitted, SplitBackward, UserSettings, function_calls
from convgrad.adapters.vocabulary import LAYOUTS, WEIGHT_LAYOUTS, Layout, WeightLayout, handed_over, takes_pairs
from convgrad.adapters.failure import ImplementationFailure
from convgrad.adapters.hints import conv_like_names, trial_runs, with_crash_reason
from convgrad.adapters.live import LiveLayer, Mode, Variant
from convgrad.adapters.protocol import Unsupported, call_geometry
from convgrad.adapters.layer_objects import is_layer_class, stateful_calls

__all__ = ["Adapter", "adapt", "Calls"]



class Calls(Protocol):
    """A calling style: the user's layer, called with arrays and settings in its own conventions."""

    @property
    def style(self) -> str: ...

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]: ...

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]: ...

    def forward(self, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any: ...

    def backward(self, dy: Any, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any: ...

    @property
    def takes_bias(self) -> bool:
        """Whether the layer takes a bias at all (forward(x, w, stride=1) does not: a bias-free layer)."""

    @property
    def takes_no_bias(self) -> bool:
        """Whether the layer also runs without a bias (b = None, or built with bias=False)."""

    @property
    def takes_learning_rate(self) -> bool:
        """Whether backward also takes an SGD step (a layer object's backward(dout, lr))."""

    @property
    def takes_kernel_size(self) -> bool:
        """Whether convgrad hands the kernel size over (a constructor's), rather than the layer reading it off w."""

    def setting_default(self, setting: str) -> Any:
        """What the layer's parameter for `setting` defaults to, as far as it tells how the layer
        takes it: an int (one int when every axis agrees) or a tuple (a tuple per axis)."""

    def live(self, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any, variant: Variant) -> OwnLive:
        """One instance as a network holds it, in the user's layouts (live.py)."""


class OwnLive(Protocol):
    """A live layer in the user's own layouts: what each calling style makes (`Calls.live`)."""

    geometry: LayerGeometry

    def forward(self, x: Any, *, mode: Mode = "train", record: bool = True) -> Any: ...

    def backward(self, dy: Any) -> Any: ...

    def update(self, w: Any, b: Any) -> None: ...

    def held(self) -> tuple[Any, Any]: ...


@dataclass(frozen=True)
class _Prepared:
    """What a call takes from its shapes and settings alone, the same for every call of a check."""

    geometry: LayerGeometry
    settings: UserSettings  # as the layer takes them (Adapter._user_settings)


_PREPARED_KEPT = 256  # (shapes, settings) prepared per adapter before it starts over


@dataclass(frozen=True)
class Adapter:
    """The user's layer behind convgrad's protocol (see the module docstring)."""

    calls: Calls
    name: str
    layout: Layout = "nchw"
    weight_layout: WeightLayout = "oihw"
    declared: Declarations = field(default_factory=Declarations)
    has_bias: bool = True  # False: the layer takes no bias; db is convgrad's own, and not checked
    target: Any = field(default=None, compare=False, repr=False)
    # The class convgrad made `target` from, when it did: each layer of a network gets its own.
    factory: Optional[Callable[[], Any]] = field(default=None, compare=False, repr=False)
    _prepared: dict[tuple[Any, ...], _Prepared] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def style(self) -> str:
        return self.calls.style

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        """Why this implementation cannot run `geometry` (the case is skipped), or None."""
        refusal = declared_refusal(self.name, self.declared, geometry, kernel_size_passed=self.calls.takes_kernel_size)
        if refusal is not None:
            return refusal
        if self.style == "cache" and geometry.ndim != 2 and self.declared.spatial_dims is None:
            return f"{self.name} handles 2-D layers only (a cache-style conv_param) and this case is {geometry.ndim}-D"
        return self.calls.unsupported(geometry)

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        """Why forward and backward cannot agree on `geometry` (a failure, not a skip), or None."""
        return self.calls.interface_mismatch(geometry)

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        prepared = self._prepare(x, w, settings)
        geometry = prepared.geometry
        y_shape = geometry.y_shape
        out = self._call("forward", geometry, self._forward_user, self._user_x(x), self._user_w(w), self._user_b(b),
                         dict(prepared.settings), geometry, x=x, w=w, b=b)
        y = self._from_user_activation(out, y_shape, "forward", "the output")
        if not self.has_bias and np.shape(y) == y_shape:
            y = np.asarray(y) + b.reshape(-1, *(1,) * geometry.ndim)  # the layer's output plus convgrad's bias
        return y

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        prepared = self._prepare(x, w, settings)
        geometry = prepared.geometry
        result = self._call("backward", geometry, self._backward_user, self._user_x(dy), self._user_x(x),
                            self._user_w(w), self._user_b(b), dict(prepared.settings), geometry, x=x, w=w, b=b)
        return self.gradients_from_user(result, dy, x.shape, w.shape)

    def _forward_user(self, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        """The style's forward on the batch, or on each image of it (batched = false)."""
        if self.declared.batched:
            return self.calls.forward(x, w, b, settings, geometry)
        return each_image_forward(lambda image: self.calls.forward(image, w, b, settings, geometry), x)

    def _backward_user(self, dy: Any, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        if self.declared.batched:
            return self.calls.backward(dy, x, w, b, settings, geometry)
        return each_image_backward(lambda dy_image, x_image: self.calls.backward(dy_image, x_image, w, b, settings, geometry),
                                   dy, x, self.declared.backward_returns)

    def gradients_from_user(self, result: Any, dy: np.ndarray, x_shape: Sequence[int], w_shape: Sequence[int]) -> Any:
        """What the layer's backward returned, as (dX, dK, db) in convgrad's layouts."""
        result = unpack_gradients(result, self.declared.backward_returns)
        if not self.has_bias and isinstance(result, (tuple, list)) and len(result) in (2, 3):
            # (dx, dw), or (dx, dw, None): db is the gradient of the bias added in forward
            result = (result[0], result[1], dy.sum(axis=(0, *range(2, dy.ndim))))
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            return result  # the guard names what is wrong with it
        dx, dw, db = result
        return (
            self._from_user_activation(dx, x_shape, "backward", "dX"),
            self._from_user_weights(dw, w_shape),
            _flat_bias(db, w_shape[0]),
        )

    def live(self, geometry: LayerGeometry, w: np.ndarray, b: np.ndarray, variant: Variant) -> LiveLayer:
        """One instance of the layer as a network holds it (live.py), in its calling style."""
        if variant.frozen:
            raise Unsupported(f"{self.name} is called with NumPy arrays, which do not require gradients")
        if not variant.bias and (not self.has_bias or not self.calls.takes_no_bias):
            raise Unsupported(f"{self.name} takes no b = None")
        if variant.learning_rate and not self.calls.takes_learning_rate:
            raise Unsupported(f"{self.name} takes no learning rate")
        if variant.learning_rate and not self.declared.batched:
            raise Unsupported(f"{self.name} takes one image at a time: a backward that steps would step once per image")
        settings = self._user_settings(geometry)
        user_b = self._user_b(np.array(b, copy=True)) if variant.bias else None
        calls = self.calls if self.factory is None else _calls_of(self.factory(), self.name, self.declared)
        own = calls.live(settings, geometry, self._user_w(np.array(w, copy=True)), user_b, variant)
        if not self.declared.batched:
            own = PerImageLive(own, self.declared.backward_returns)
        return _AdaptedLive(self, own, b if not self.has_bias else None)

    def _call(self, what: str, geometry: LayerGeometry, function: Callable[..., Any], *arguments: Any,
              x: np.ndarray, w: np.ndarray, b: np.ndarray) -> Any:
        """The user's layer, its exception turned into a reason with a hint that names the fix."""
        return with_crash_reason(
            what, geometry, self.declared, lambda: function(*arguments),
            runs=lambda plain: trial_runs(self, what, plain),
            other_layouts=lambda: self._layouts_that_run(x, w, b, geometry),
        )

    def _layouts_that_run(self, x: np.ndarray, w: np.ndarray, b: np.ndarray,
                          geometry: LayerGeometry) -> Optional[tuple[str, str]]:
        """(layout, weight layout) in which forward runs and gives the right shape, for a layer whose
        layouts nobody declared or gave; None when there is none (or they were given)."""
        if (self.layout, self.weight_layout) != ("nchw", "oihw") or self.declared.layout or self.declared.weight_layout:
            return None
        tried: list[tuple[Layout, WeightLayout]] = [("nchw", k) for k in WEIGHT_LAYOUTS if k != "oihw"]
        tried += [("nhwc", k) for k in WEIGHT_LAYOUTS]
        for layout, weight_layout in tried:
            other = Adapter(self.calls, self.name, layout, weight_layout, replace(self.declared, layout=layout),
                            self.has_bias)
            try:
                out = other.forward(x, w, b, **geometry.conv_settings())
            except Exception:
                continue
            if np.shape(out) == geometry.y_shape:
                return layout, weight_layout
        return None

    def _prepare(self, x: np.ndarray, w: np.ndarray, settings: dict[str, Any]) -> _Prepared:
        """The call's geometry and settings as the layer takes them, worked out once per shapes and
        settings: a check makes hundreds of calls with the same few."""
        key = (x.shape, w.shape, x.dtype, *(tuple(settings[s]) for s in ("stride", "padding", "dilation")),
               int(settings["groups"]))
        prepared = self._prepared.get(key)
        if prepared is None:
            geometry = call_geometry(x, w, settings)
            prepared = _Prepared(geometry, self._user_settings(geometry))
            if len(self._prepared) >= _PREPARED_KEPT:
                self._prepared.clear()
            self._prepared[key] = prepared
        return prepared

    def _user_settings(self, geometry: LayerGeometry) -> UserSettings:
        """stride, padding, dilation, groups as the layer takes them (vocabulary.handed_over: by
        what the style's parameters default to, and one_int, per_axis), or 'valid'/'same'."""
        settings: UserSettings = {"groups": geometry.groups}
        for setting, values in (("stride", geometry.stride), ("padding", geometry.padding), ("dilation", geometry.dilation)):
            settings[setting] = handed_over(values, self.calls.setting_default(setting), one_int=self.declared.one_int,
                                            per_axis=self.declared.per_axis)
        if self.declared.padding_modes is not None:
            settings["padding"] = self.declared.padding_word(geometry)  # unsupported() skipped the cases it is None
        elif self.declared.uneven_padding:  # a layer that takes pairs gets them in every case
            settings["padding"] = geometry.padding_pairs
        return settings

    # Layout translation: views in, views back out, shapes checked in the user's own layout.
    def _user_x(self, array: np.ndarray) -> np.ndarray:
        return np.moveaxis(array, 1, -1) if self.layout == "nhwc" else array

    def _user_w(self, w: np.ndarray) -> np.ndarray:
        return to_weight_layout(w, self.weight_layout)

    def _user_b(self, b: np.ndarray) -> Optional[np.ndarray]:
        if not self.has_bias:
            return None
        shape = self.declared.bias_shape
        return b if shape is None else b.reshape(tuple(b.shape[0] if s == "F" else 1 for s in shape))

    def _from_user_activation(self, value: Any, shape: Sequence[int], what: str, name: str) -> Any:
        if self.layout == "nchw":
            return value
        user_shape = (shape[0], *shape[2:], shape[1])
        array = _checked_shape(value, user_shape, what, name, "N, *spatial, C in layout nhwc")
        return value if array is None else np.moveaxis(array, -1, 1)

    def _from_user_weights(self, value: Any, shape: Sequence[int]) -> Any:
        if self.weight_layout == "oihw":
            return value
        user_shape = to_weight_layout(np.empty(shape, dtype=np.int8), self.weight_layout).shape
        array = _checked_shape(value, user_shape, "backward", "dK", f"{_WEIGHT_AXES[self.weight_layout]} in weight "
                               f"layout {self.weight_layout}")
        return value if array is None else from_weight_layout(array, self.weight_layout)


class _AdaptedLive:
    """A live layer of the user's calling style behind convgrad's layouts (see `Adapter.live`)."""

    def __init__(self, adapter: Adapter, own: Any, added_bias: Optional[np.ndarray]) -> None:
        self._adapter = adapter
        self._own = own  # in the user's layouts
        self._added_bias = None if added_bias is None else added_bias.copy()  # a bias-free layer's, added here
        self._x_shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray, *, mode: Mode = "train", record: bool = True) -> Any:
        adapter = self._adapter
        self._x_shape = tuple(x.shape) if record else self._x_shape
        out = self._own.forward(adapter._user_x(x), mode=mode, record=record)
        y_shape = (x.shape[0], *self._own.geometry.y_shape[1:])
        y = adapter._from_user_activation(out, y_shape, "forward", "the output")
        if self._added_bias is not None and np.shape(y) == y_shape:
            y = np.asarray(y) + self._added_bias.reshape(-1, *(1,) * (len(y_shape) - 2))
        return y

    def backward(self, dy: np.ndarray) -> Any:
        result = self._own.backward(self._adapter._user_x(dy))
        return self._adapter.gradients_from_user(result, dy, self._x_shape, self._own.geometry.w_shape)

    def update(self, w: np.ndarray, b: Optional[np.ndarray]) -> None:
        if self._added_bias is not None and b is not None:
            np.copyto(self._added_bias, b)
            b = None
        self._own.update(self._adapter._user_w(w), None if b is None else self._adapter._user_b(b))

    def held(self) -> tuple[Any, Any]:
        w, b = self._own.held()
        if w is not None and np.ndim(w) == len(self._own.geometry.w_shape):
            w = from_weight_layout(np.asarray(w), self._adapter.weight_layout)
        return w, (self._added_bias if self._added_bias is not None else b)


def adapt(
    target: Any, name: str, *, layout: Optional[str] = None, weight_layout: Optional[str] = None,
    declared: Optional[Declarations] = None, factory: Optional[Callable[[], Any]] = None,
) -> Adapter:
    """Wrap a layer (functions, or a layer class) in its calling style; raises ImplementationError
    if it has none. Layouts given here win over declared ones; declared ones over the defaults."""
    declared = read_declarations(target) if declared is None else declared
    layout = layout or declared.layout or "nchw"
    known_layout = next((known for known in LAYOUTS if known == layout), None)
    if known_layout is None:
        raise SettingError(Parameter("layout", repr(layout)), f" is not known; use {' or '.join(LAYOUTS)}")
    given_weight_layout = weight_layout or declared.weight_layout
    if given_weight_layout is not None and given_weight_layout not in WEIGHT_LAYOUTS:
        raise SettingError(
            Parameter("weight_layout", repr(given_weight_layout)), f" is not known; use {' or '.join(WEIGHT_LAYOUTS)}"
        )
    has_bias = declared.bias
    calls: Calls
    if is_layer_class(target, declared) and declared.tensor is None:
        stateful, shown = stateful_calls(target, name, declared)
        calls, has_bias = stateful, stateful.has_bias
        given_weight_layout = given_weight_layout or shown
    else:
        calls = _calls_of(target, name, declared)
        has_bias = has_bias and calls.takes_bias  # conv2d(x, w, stride=1): the adapter adds the bias
    known_weight_layout: WeightLayout = next((k for k in WEIGHT_LAYOUTS if k == given_weight_layout), "oihw")
    if takes_pairs(calls.setting_default("padding")):  # padding=((0, 0), (0, 0)): as np.pad takes it
        declared = replace(declared, uneven_padding=True)
    return Adapter(
        calls=calls, name=name, layout=known_layout, weight_layout=known_weight_layout, declared=declared,
        has_bias=has_bias, target=target, factory=factory,
    )


# What only a layer object has: how it is built and where it keeps its weights.
_LAYER_OBJECT_KEYS = ("constructor", "attributes", "set_weights", "build")


def _calls_of(target: Any, name: str, declared: Declarations) -> Calls:
    """The calling style of an object holding functions (not a layer class)."""
    if declared.tensor is not None:
        declared.refuse(("backward", "backward_parts", "backward_returns", *_LAYER_OBJECT_KEYS),
                        "a conv on an autograd library's tensors, whose backward the library runs")
        return _autograd_calls(target, name, declared)
    declared.refuse(_LAYER_OBJECT_KEYS, "functions (they belong to a layer class)")
    forward = _function(target, name, declared, "forward", declared.forward)
    if declared.backward_parts:
        parts = {g: Fitted.of(_function(target, name, declared, "backward", form), form)
                 for g, form in declared.backward_parts.items()}
        return function_calls(forward, SplitBackward(parts["dx"], parts["dw"], parts.get("db")), declared.forward)
    backward = _function(target, name, declared, "backward", declared.backward)
    return function_calls(forward, backward, declared.forward, declared.backward)


def _function(target: Any, name: str, declared: Declarations, part: str, form: Optional[CallForm]) -> Callable[..., Any]:
    """The function `form` names (else the one named `part`) on `target`; missing is an error with a hint."""
    function = getattr(target, form.name if form is not None else part, None)
    if not callable(function):
        raise ImplementationError(*_missing_message(target, name, part, declared), parameter="impl")
    return cast(Callable[..., Any], function)


def _autograd_calls(target: Any, name: str, declared: Declarations) -> AutogradCalls:
    """A conv function on the tensors of a small autograd library (autograd.py)."""
    assert declared.tensor is not None
    tensor = getattr(target, declared.tensor, None)
    if not callable(tensor):
        raise ImplementationError(
            f"{name} has no {declared.tensor} (declared as tensor); name the class that wraps an array",
            parameter="impl",
        )
    function = getattr(target, declared.forward.name if declared.forward else "forward", None)
    if not callable(function):
        raise ImplementationError(*_missing_message(target, name, "forward", declared), parameter="impl")
    return AutogradCalls(function, tensor)


def _missing_message(target: Any, name: str, part: str, declared: Declarations) -> tuple[Part, ...]:
    """No forward (or backward): name the functions and classes that look like a conv layer, and
    the tensor declaration when the file defines an autograd engine's tensor class."""
    engine = _engine_hint(target)
    if inspect.isfunction(target):
        return (
            f"{name} names the function {target.__name__}, not an object holding forward and backward; name both, like ",
            Parameter("impl", name.rsplit(":", 1)[0] + ":FORWARD,BACKWARD"), engine,
        )
    wanted = str(getattr(declared, part) or part)
    tried = {"forward", "backward", *(str(f) for f in (declared.forward, declared.backward) if f)}
    forwards, backwards, classes = (
        [n for n in names if n not in tried] for names in conv_like_names(target)
    )
    if forwards or backwards or classes:
        found = ", ".join([*forwards, *backwards][:4] + classes[:2])
        example = f":{forwards[0]},{backwards[0]}" if forwards and backwards else f":{(classes or forwards or backwards)[0]}"
        return (
            f"{name} has no {wanted} function, but it defines {found}; name them, like ", Parameter("impl", name + example),
            engine,
        )
    return (
        f"{name} has no {wanted} function; define forward(x, w, b, *, stride, padding, "
        "dilation, groups) and backward(dy, x, w, b, *, stride, padding, dilation, groups), "
        "or point ", Parameter("impl"), " at the object holding them with FILE.py:NAME",
    )


def _engine_hint(target: Any) -> str:
    """'; or, ...' naming the tensor declaration when target's module defines a class with backward
    and no forward (an autograd engine's tensor) next to conv-like functions, else ''."""
    module = sys.modules.get(getattr(target, "__module__", ""), target) if inspect.isfunction(target) else target
    members = vars(module) if hasattr(module, "__dict__") else {}
    tensors = [n for n, v in members.items() if inspect.isclass(v) and callable(getattr(v, "backward", None))
               and not callable(getattr(v, "forward", None)) and getattr(v, "__module__", None) == getattr(module, "__name__", None)]
    forwards = conv_like_names(module)[0]
    if not tensors or not forwards:
        return ""
    return (f"; or, if {forwards[0]} works on {tensors[0]} objects of an autograd engine, declare "
            f"CONVGRAD = {{\"tensor\": \"{tensors[0]}\", \"forward\": \"{forwards[0]}\"}}")


_WEIGHT_AXES = {"oihw": "F, C/groups, *k", "hwio": "*k, C/groups, F", "iohw": "C/groups, F, *k"}


def to_weight_layout(w: np.ndarray, layout: WeightLayout) -> np.ndarray:
    """(F, C/g, *k) kernels as a view in `layout`."""
    if layout == "hwio":
        return np.moveaxis(w, (0, 1), (-1, -2))
    return np.swapaxes(w, 0, 1) if layout == "iohw" else w


def from_weight_layout(w: np.ndarray, layout: WeightLayout) -> np.ndarray:
    """Kernels in `layout` as (F, C/g, *k)."""
    if layout == "hwio":
        return np.moveaxis(w, (-1, -2), (0, 1))
    return np.swapaxes(w, 0, 1) if layout == "iohw" else w


def _checked_shape(value: Any, expected: tuple[int, ...], what: str, name: str, layout: str) -> Optional[np.ndarray]:
    """The value as an array of the expected shape, None if it is no array (the guard reports it)."""
    if value is None:
        return None
    try:
        array = np.asarray(value)
    except Exception:  # e.g. a tensor that needs .detach(): the guard says so
        return None
    if array.shape != expected:
        raise ImplementationFailure(
            f"{what} returned shape {format_shape(array.shape)} for {name}, expected "
            f"{format_shape(expected)} ({layout})",
            shape=tuple(array.shape),
        )
    return array


def _flat_bias(value: Any, filters: int) -> Any:
    """Accept a bias gradient shaped (F,), (F, 1), (1, 1, 1, F), ...: F values, other axes of size 1."""
    try:
        array = np.asarray(value)
    except Exception:
        return value
    if array.ndim > 1 and array.size == filters and sorted(array.shape)[:-1] == [1] * (array.ndim - 1):
        return array.reshape(filters)
    return value
