"""Calling styles for a pair of functions (see adapters.py for what surrounds them):

    keywords   forward(x, w, b, *, stride, padding, dilation, groups) -> y
               backward(dy, x, w, b, *, stride, ...) -> (dx, dw, db)       convgrad's own protocol,
               passing only the keywords each function accepts
    cache      forward(x, w, b, conv_param) -> (out, cache)                 the course-assignment style,
               backward(dout, cache) -> (dx, dw, db)                        conv_param = {stride, pad}

Arrays arrive in the layer's own layouts (b is None for a bias-free layer, which takes none); settings arrive as the layer takes them (`UserSettings`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

from convgrad.geometry import LayerGeometry, format_shape
from convgrad.adapters.vocabulary import NEUTRAL, SETTING_NAMES
from convgrad.harness.guard import ImplementationFailure
from convgrad.adapters.live import Mode, StreamLayer, Variant

__all__ = ["KeywordCalls", "CacheCalls", "function_calls", "UserSettings", "parameters"]

UserSettings = dict[str, Any]  # stride, padding, dilation, groups as the layer takes them

# None stands for "accepts every keyword" (a **kwargs function, or one convgrad cannot inspect).
Accepted = Optional[frozenset[str]]


def needed(geometry: LayerGeometry) -> dict[str, tuple[int, ...]]:
    return {"stride": geometry.stride, "padding": geometry.padding, "dilation": geometry.dilation, "groups": (geometry.groups,)}


@dataclass(frozen=True)
class KeywordCalls:
    """forward and backward in convgrad's protocol, given only the keywords they accept."""

    forward_function: Callable[..., Any]
    backward_function: Callable[..., Any]
    forward_accepts: Accepted = None
    backward_accepts: Accepted = None
    int_defaults: frozenset[str] = frozenset()  # settings forward defaults to an int (`stride=1`)
    style: Literal["keywords"] = "keywords"

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

    takes_learning_rate = False
    takes_kernel_size = False

    def live(self, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any, variant: Variant) -> StreamLayer:
        """One call stream: forward on a batch, later backward with that batch's x."""
        return StreamLayer(
            lambda x, w_, b_: self.forward(x, w_, b_, settings, geometry),
            lambda dy, x, w_, b_: self.backward(dy, x, w_, b_, settings, geometry),
            geometry, w, b,
        )

    def forward(self, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        return self.forward_function(x, w, *_bias(b), **_keep(settings, self.forward_accepts))

    def backward(self, dy: Any, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        return self.backward_function(dy, x, w, *_bias(b), **_keep(settings, self.backward_accepts))


@dataclass(frozen=True)
class CacheCalls:
    """forward(x, w, b, conv_param) -> (out, cache) and backward(dout, cache)."""

    forward_function: Callable[..., Any]
    backward_function: Callable[..., Any]
    style: Literal["cache"] = "cache"

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        settings = needed(geometry)
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

    takes_learning_rate = False
    takes_kernel_size = False

    def live(self, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any, variant: Variant) -> "CacheStream":
        return CacheStream(self, settings, geometry, w, b)

    def forward(self, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        return self._forward(x, w, b, settings)[0]

    def backward(self, dy: Any, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        return self.backward_function(dy, self._forward(x, w, b, settings)[1])

    def _forward(self, x: Any, w: Any, b: Any, settings: UserSettings) -> tuple[Any, Any]:
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
            lambda dy, cache, w_, b_: calls.backward_function(dy, cache),
            geometry, w, b,
        )

    def forward(self, x: Any, *, mode: Mode = "train", record: bool = True) -> Any:
        out, cache = self._forward(x, self._w, self._b)
        if record:
            self._x = cache  # what backward takes in place of x
        return out


def function_calls(forward: Callable[..., Any], backward: Callable[..., Any]) -> KeywordCalls | CacheCalls:
    """The calling style two functions are written in, read from their signatures."""
    if _is_cache_style(forward, backward):
        return CacheCalls(forward, backward)
    return KeywordCalls(forward, backward, _accepted_keywords(forward), _accepted_keywords(backward), _int_defaults(forward))


def parameters(function: Callable[..., Any]) -> Optional[dict[str, inspect.Parameter]]:
    try:
        return dict(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # builtins and some extension functions have no signature
        return None


def _accepted_keywords(function: Callable[..., Any]) -> Accepted:
    found = parameters(function)
    if found is None or any(p.kind is p.VAR_KEYWORD for p in found.values()):
        return None
    return frozenset(
        n for n, p in found.items() if n in SETTING_NAMES and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def _int_defaults(function: Callable[..., Any]) -> frozenset[str]:
    """The settings a function's signature defaults to an int: such a layer computes with an int."""
    found = parameters(function) or {}
    return frozenset(n for n, p in found.items() if n in SETTING_NAMES and type(p.default) is int)


def _is_cache_style(forward: Callable[..., Any], backward: Callable[..., Any]) -> bool:
    """forward(x, w, b, conv_param) and backward(dout, cache): the course-assignment convention."""
    f_params, b_params = parameters(forward), parameters(backward)
    if f_params is None or b_params is None:
        return False
    if "conv_param" in f_params:
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    f_positional = [p for p in f_params.values() if p.kind in positional]
    b_positional = [p for p in b_params.values() if p.kind in positional]
    takes_settings = _accepted_keywords(forward) != frozenset()
    return len(f_positional) == 4 and len(b_positional) == 2 and not takes_settings


def _bias_defaults_to_none(function: Callable[..., Any]) -> bool:
    """forward(x, w, b=None, ...): the layer also runs without a bias."""
    found = parameters(function) or {}
    positional = [p for p in found.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 and positional[2].default is None


def _bias(b: Any) -> tuple[Any, ...]:
    """The bias argument, or none for a bias-free layer (the adapter passes None)."""
    return () if b is None else (b,)


def _keep(settings: UserSettings, accepts: Accepted) -> UserSettings:
    return settings if accepts is None else {k: v for k, v in settings.items() if k in accepts}


def _one(value: Any) -> Any:
    """conv_param holds one value for every axis (unsupported() skips cases that need more)."""
    return value[0] if isinstance(value, tuple) else value


def _kind(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__}"
