"""Calling styles for a pair of functions (see adapter.py for what surrounds them):

    keywords   forward(x, w, b, *, stride, padding, dilation, groups) -> y
               backward(dy, x, w, b, *, stride, ...) -> (dx, dw, db)       convgrad's own protocol,
               passing only the settings each function accepts, under its own names (`s`, `pad`),
               and only the tensors it takes (a backward(dy, x, w) gets no b)
    cache      forward(x, w, b, conv_param) -> (out, cache)                 the course-assignment style,
               backward(dout, cache) -> (dx, dw, db)                        conv_param = {stride, pad},
               or the settings as keywords: forward(x, w, b, stride=1, padding=0)

A declared call with written arguments (`forward = "conv(x, w, b, True)"`) is called as written; a
backward split in parts (`backward = {dx = ..., dw = ...}`) is one backward (`SplitBackward`).
Arrays arrive in the layer's own layouts (b is None for a bias-free layer, which takes none);
settings arrive as the layer takes them (`UserSettings`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Optional

from convgrad.adapters.declare import CallForm
from convgrad.errors import ImplementationError
from convgrad.adapters.vocabulary import NEUTRAL, SETTING_NAMES, setting_of
from convgrad.geometry import LayerGeometry, format_shape
from convgrad.adapters.failure import ImplementationFailure
from convgrad.adapters.live import Mode, StreamLayer, Variant

__all__ = ["Fitted", "KeywordCalls", "CacheCalls", "SplitBackward", "function_calls", "UserSettings", "parameters"]

UserSettings = dict[str, Any]  # stride, padding, dilation, groups as the layer takes them

# None stands for "accepts every keyword" (a **kwargs function, or one convgrad cannot inspect).
Accepted = Optional[frozenset[str]]


def needed(geometry: LayerGeometry) -> dict[str, tuple[int, ...]]:
    return {"stride": geometry.stride, "padding": geometry.padding, "dilation": geometry.dilation, "groups": (geometry.groups,)}


@dataclass(frozen=True)
class Fitted:
    """One user function, called the way its signature (or its declared call) takes it: the
    leading tensors it has parameters for, and the settings it accepts under its own names."""

    function: Callable[..., Any]
    tensors: Optional[int] = None  # leading positional tensors it takes; None: as many as given
    names: Optional[Mapping[str, str]] = None  # setting -> its parameter; None: any (**kwargs)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # setting -> the parameter's default
    form: Optional[CallForm] = None  # a declared call with its arguments written out

    @classmethod
    def of(cls, function: Callable[..., Any], form: Optional[CallForm] = None) -> "Fitted":
        found = parameters(function)
        if found is None:
            return cls(function, form=form)
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        tensors = 0
        for parameter in found.values():
            if parameter.kind is parameter.VAR_POSITIONAL:
                tensors = -1
                break
            if parameter.kind not in positional or setting_of(parameter.name) is not None:
                break
            tensors += 1
        names = {
            setting: p.name for p in found.values()
            if (setting := setting_of(p.name)) is not None and p.kind is not p.POSITIONAL_ONLY
        }
        open_ended = any(p.kind is p.VAR_KEYWORD for p in found.values())
        defaults = {setting_of(p.name): p.default for p in found.values() if setting_of(p.name) and p.default is not p.empty}
        return cls(function, None if tensors < 0 else tensors, None if open_ended else names,
                   {str(k): v for k, v in defaults.items()}, form)

    @property
    def accepts(self) -> Accepted:
        """The settings it takes, in convgrad's names (None: any, a **kwargs function); a declared
        call passes the settings it names (conv(x, w, b, stride, padding)) and those its signature
        takes beside them."""
        if self.names is None:
            return None
        named = self.form.placeholders & set(SETTING_NAMES) if self.form is not None and self.form.written else set()
        return frozenset(self.names) | frozenset(named)

    def call(self, roles: tuple[str, ...], tensors: tuple[Any, ...], settings: UserSettings) -> Any:
        """Called with convgrad's tensors in the style's order, named by `roles` (x, w, b, dy,
        cache: what a declared call names them), None for an absent bias, and the settings."""
        given = [t for t in tensors if t is not None]
        if self.form is not None and self.form.written:
            values = {**dict(zip(roles, tensors)), **settings}
            args, keywords = self.form.bind(values)
            rest = {self._name(k): v for k, v in settings.items() if self._takes(k) and self._name(k) not in keywords
                    and k not in self.form.placeholders}
            return self.function(*args, **keywords, **rest)
        if self.tensors is not None:
            given = given[:self.tensors]
        return self.function(*given, **{self._name(k): v for k, v in settings.items() if self._takes(k)})

    def _takes(self, setting: str) -> bool:
        return self.names is None or setting in self.names

    def _name(self, setting: str) -> str:
        return setting if self.names is None else self.names.get(setting, setting)


@dataclass(frozen=True)
class SplitBackward:
    """A backward written as one function per gradient, called as one: dx from the first, dw (or
    (dw, db)) from the second, db from the third when there is one."""

    dx: Fitted
    dw: Fitted
    db: Optional[Fitted] = None

    def call(self, roles: tuple[str, ...], tensors: tuple[Any, ...], settings: UserSettings) -> tuple[Any, Any, Any]:
        dx = self.dx.call(roles, tensors, settings)
        dw = self.dw.call(roles, tensors, settings)
        if self.db is not None:
            return dx, dw, self.db.call(roles, tensors, settings)
        if isinstance(dw, (tuple, list)) and len(dw) == 2:
            return dx, dw[0], dw[1]
        return dx, dw, None


@dataclass(frozen=True)
class KeywordCalls:
    """forward and backward in convgrad's protocol, given only the tensors and keywords they take."""

    forward_function: Callable[..., Any]
    backward_function: Callable[..., Any]
    forward_accepts: Accepted = None
    backward_accepts: Accepted = None
    style: Literal["keywords"] = "keywords"
    fitted_forward: Optional[Fitted] = None  # how each is called (Fitted.of the function when None)
    fitted_backward: Optional[Fitted | SplitBackward] = None

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        for setting, values, refusing in self._refused(geometry):
            if len(refusing) == 2:  # neither takes it: the layer cannot express this case
                return f"forward and backward do not accept the keyword {setting}, and this case needs {setting} {format_shape(values)}"
        return None

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        """A forward that takes a setting and a backward that does not compute the gradient of
        some other layer: the case fails with that reason instead of being skipped."""
        for setting, values, refusing in self._refused(geometry):
            if len(refusing) == 1:
                other = "backward" if refusing[0] == "forward" else "forward"
                return (
                    f"{other} accepts the keyword {setting} but {refusing[0]} does not, and this case needs "
                    f"{setting} {format_shape(values)}: the two cannot compute the same layer; give "
                    f"{refusing[0]} the {setting} parameter too"
                )
        return None

    def _refused(self, geometry: LayerGeometry) -> list[tuple[str, tuple[int, ...], list[str]]]:
        """(setting, values, [forward and/or backward]) for each non-neutral setting refused."""
        refused = []
        for setting, values in needed(geometry).items():
            if all(v == NEUTRAL[setting] for v in values):
                continue
            refusing = [
                what
                for what, accepts in (("forward", self.forward_accepts), ("backward", self.backward_accepts))
                if accepts is not None and setting not in accepts
            ]
            if refusing:
                refused.append((setting, values, refusing))
        return refused

    @property
    def takes_no_bias(self) -> bool:
        return _bias_defaults_to_none(self.forward_function)

    @property
    def takes_bias(self) -> bool:
        tensors = (self.fitted_forward or Fitted.of(self.forward_function)).tensors
        return tensors is None or tensors != 2  # forward(x, w, stride=1): bias-free

    takes_learning_rate = False
    takes_kernel_size = False

    def setting_default(self, setting: str) -> Any:
        """The forward's own default, else a tuple: the protocol's settings are tuples per axis."""
        default = (self.fitted_forward or Fitted.of(self.forward_function)).defaults.get(setting)
        return default if isinstance(default, (int, tuple, list)) else ()

    def live(self, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any, variant: Variant) -> StreamLayer:
        """One call stream: forward on a batch, later backward with that batch's x."""
        return StreamLayer(
            lambda x, w_, b_: self.forward(x, w_, b_, settings, geometry),
            lambda dy, x, w_, b_: self.backward(dy, x, w_, b_, settings, geometry),
            geometry, w, b,
        )

    def forward(self, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        fitted = self.fitted_forward or Fitted.of(self.forward_function)
        return fitted.call(("x", "w", "b"), (x, w, b), settings)

    def backward(self, dy: Any, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        fitted = self.fitted_backward or Fitted.of(self.backward_function)
        return fitted.call(("dy", "x", "w", "b"), (dy, x, w, b), settings)


@dataclass(frozen=True)
class CacheCalls:
    """forward(x, w, b, conv_param) -> (out, cache) and backward(dout, cache); with `keywords`, the
    settings go to forward as keywords instead of in conv_param."""

    forward_function: Callable[..., Any]
    backward_function: Callable[..., Any]
    style: Literal["cache"] = "cache"
    keywords: Optional[Fitted] = None  # forward(x, w, b, stride=1, padding=0) -> (out, cache)
    fitted_backward: Optional[Fitted | SplitBackward] = None  # backward(dout, cache), or split in parts

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        settings = needed(geometry)
        if self.keywords is not None:
            accepts = self.keywords.accepts
            for setting, values in settings.items():
                if accepts is not None and setting not in accepts and any(v != NEUTRAL[setting] for v in values):
                    return f"forward does not accept the keyword {setting}, and this case needs {setting} {format_shape(values)}"
            return None
        if geometry.uneven_padding:
            return f"a cache-style conv_param holds one pad for both sides, and this case pads {geometry.padding_text}"
        for setting in ("dilation", "groups"):
            if any(v != NEUTRAL[setting] for v in settings[setting]):
                return (
                    f"a cache-style conv_param has no {setting}, and this case needs {setting} "
                    f"{format_shape(settings[setting])}"
                )
        for setting, key in (("stride", "stride"), ("padding", "pad")):
            if len(set(settings[setting])) > 1:
                return (
                    f"a cache-style conv_param holds one {key} for every axis, and this case needs "
                    f"{setting} {format_shape(settings[setting])}"
                )
        return None

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        return None

    @property
    def takes_no_bias(self) -> bool:
        return _bias_defaults_to_none(self.forward_function)

    @property
    def takes_bias(self) -> bool:
        return self.keywords is None or self.keywords.tensors != 2  # forward(x, w, stride=1) -> (out, cache)

    takes_learning_rate = False
    takes_kernel_size = False

    def setting_default(self, setting: str) -> Any:
        """conv_param holds ints; a forward with keywords, its own default, else an int (course code
        computes with ints)."""
        default = self.keywords.defaults.get(setting) if self.keywords is not None else None
        return default if isinstance(default, (int, tuple, list)) else 0

    def live(self, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any, variant: Variant) -> "CacheStream":
        return CacheStream(self, settings, geometry, w, b)

    def forward(self, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        return self._forward(x, w, b, settings)[0]

    def backward(self, dy: Any, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        return self.backward_from_cache(dy, self._forward(x, w, b, settings)[1])

    def backward_from_cache(self, dy: Any, cache: Any) -> Any:
        fitted = self.fitted_backward or Fitted.of(self.backward_function)
        return fitted.call(("dy", "cache"), (dy, cache), {})

    def _forward(self, x: Any, w: Any, b: Any, settings: UserSettings) -> tuple[Any, Any]:
        if self.keywords is not None:
            result = self.keywords.call(("x", "w", "b"), (x, w, b), settings)
        else:
            conv_param = {"stride": _one(settings["stride"]), "pad": _one(settings["padding"])}
            result = self.forward_function(x, w, *_bias(b), conv_param)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise ImplementationFailure(
                f"forward returned {_kind(result)}; a cache-style forward returns the tuple (out, cache)"
            )
        return result[0], result[1]


class CacheStream(StreamLayer):
    """A cache-style layer as one call stream: backward gets the cache of its latest forward."""

    def __init__(self, calls: CacheCalls, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any) -> None:
        super().__init__(
            lambda x, w_, b_: calls._forward(x, w_, b_, settings),
            lambda dy, cache, w_, b_: calls.backward_from_cache(dy, cache),
            geometry, w, b,
        )

    def forward(self, x: Any, *, mode: Mode = "train", record: bool = True) -> Any:
        out, cache = self._forward(x, self._w, self._b)
        if record:
            self._x = cache  # what backward takes in place of x
        return out


def function_calls(
    forward: Callable[..., Any], backward: Callable[..., Any] | SplitBackward,
    forward_form: Optional[CallForm] = None, backward_form: Optional[CallForm] = None,
) -> KeywordCalls | CacheCalls:
    """The calling style two functions are written in, read from their signatures (and the calls
    declared for them)."""
    fitted_forward = Fitted.of(forward, forward_form)
    fitted_backward = backward if isinstance(backward, SplitBackward) else Fitted.of(backward, backward_form)
    backward_function = backward.dx.function if isinstance(backward, SplitBackward) else backward
    style = _cache_style(forward, fitted_forward, fitted_backward)
    backward_forms = ([p.form for p in (backward.dx, backward.dw, backward.db) if p is not None]
                      if isinstance(backward, SplitBackward) else [backward_form])
    _check_forms([forward_form], "forward", {"x", "w", "b", *SETTING_NAMES})
    _check_forms(backward_forms, "backward", {"dy", "cache"} if style else {"dy", "x", "w", "b", *SETTING_NAMES})
    if style == "conv_param":
        return CacheCalls(forward, backward_function, fitted_backward=fitted_backward)
    if style == "keywords":
        return CacheCalls(forward, backward_function, keywords=fitted_forward, fitted_backward=fitted_backward)
    backward_accepts: Accepted = None
    if isinstance(fitted_backward, SplitBackward):
        parts = [p.accepts for p in (fitted_backward.dx, fitted_backward.dw, fitted_backward.db) if p is not None]
        backward_accepts = None if any(a is None for a in parts) else frozenset().union(*(a for a in parts if a is not None))
    else:
        backward_accepts = fitted_backward.accepts
    return KeywordCalls(forward, backward_function, fitted_forward.accepts, backward_accepts,
                        fitted_forward=fitted_forward, fitted_backward=fitted_backward)


def _check_forms(forms: list[Optional[CallForm]], what: str, handed: set[str]) -> None:
    """A declared call naming a value this style does not hand over is a bad declaration."""
    for form in forms:
        if form is not None and not form.placeholders <= handed:
            unknown = ", ".join(sorted(form.placeholders - handed))
            raise ImplementationError(
                f"{what} = {str(form)!r} names {unknown}, which convgrad does not hand this "
                f"{what}; it is handed {', '.join(sorted(handed))}",
                parameter="impl",
            )


def parameters(function: Callable[..., Any]) -> Optional[dict[str, inspect.Parameter]]:
    try:
        return dict(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # builtins and some extension functions have no signature
        return None


def _cache_style(forward: Callable[..., Any], fitted_forward: Fitted, fitted_backward: Fitted | SplitBackward) -> Optional[str]:
    """'conv_param' for forward(x, w, b, conv_param), 'keywords' for forward(x, w, b, stride=1, ...)
    with backward(dout, cache): the course-assignment conventions; None for neither."""
    f_params = parameters(forward)
    backward_tensors = (fitted_backward.dx.tensors if isinstance(fitted_backward, SplitBackward)
                        else fitted_backward.tensors)
    if f_params is None:
        return None
    if "conv_param" in f_params:
        return "conv_param"
    if backward_tensors != 2 or fitted_forward.tensors not in (2, 3, 4):
        return None
    if fitted_forward.tensors == 4:  # forward(x, w, b, conv_param) under another name
        return "conv_param" if fitted_forward.names == {} else None
    return "keywords"


def _bias_defaults_to_none(function: Callable[..., Any]) -> bool:
    """forward(x, w, b=None, ...): the layer also runs without a bias."""
    found = parameters(function) or {}
    positional = [p for p in found.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 and positional[2].default is None


def _bias(b: Any) -> tuple[Any, ...]:
    """The bias argument, or none for a bias-free layer (the adapter passes None)."""
    return () if b is None else (b,)


def _one(value: Any) -> Any:
    """conv_param holds one value for every axis (unsupported() skips cases that need more)."""
    return value[0] if isinstance(value, tuple) else value


def _kind(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__}"
