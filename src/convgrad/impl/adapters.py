"""Call conv layers written in other conventions through convgrad's one protocol, without glue.

The checker speaks `protocol.ConvLayer`: (N, C, *S) arrays, (F, C/g, *k) kernels, (F,)
biases, settings as keywords. An `Adapter` translates that into what the user's functions take:
only the keywords they accept, course-style `conv_param`/`cache` functions, channels-last arrays
(layout nhwc), (*k, C/g, F) kernels (weight layout hwio), and bias gradients returned as
(F, 1) or (1, 1, 1, F). Arrays are handed over as views of the checker's own copies, so an
implementation that writes into its inputs is still caught by the guard.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, Sequence, get_args

import numpy as np

from convgrad.errors import ImplementationError, SettingError, literal, named
from convgrad.geometry import LayerGeometry, format_shape, output_size
from convgrad.impl.guard import ImplementationFailure

__all__ = ["Adapter", "adapt", "LAYOUTS", "WEIGHT_LAYOUTS", "SETTING_NAMES", "Layout", "WeightLayout"]

Layout = Literal["nchw", "nhwc"]  # channels first or last, for any number of spatial axes
WeightLayout = Literal["oihw", "hwio"]  # (F, C/g, *k) or (*k, C/g, F)
LAYOUTS: tuple[Layout, ...] = get_args(Layout)
WEIGHT_LAYOUTS: tuple[WeightLayout, ...] = get_args(WeightLayout)
SETTING_NAMES = ("stride", "padding", "dilation", "groups")
_NEUTRAL = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}  # what a layer without the keyword does

# None stands for "accepts every keyword" (a **kwargs function, or one convgrad cannot inspect).
Accepted = Optional[frozenset[str]]


@dataclass(frozen=True)
class Adapter:
    """The user's forward/backward behind convgrad's protocol (see the module docstring)."""

    target: Any
    name: str
    style: Literal["keywords", "cache"]  # the protocol, or forward(x, w, b, conv_param) -> (out, cache)
    layout: Layout = "nchw"
    weight_layout: WeightLayout = "oihw"
    forward_accepts: Accepted = None
    backward_accepts: Accepted = None
    spatial_dims: Optional[tuple[int, ...]] = None  # None: any number of spatial axes

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        """Why this implementation cannot run `geometry` (the case is skipped), or None."""
        if self.spatial_dims is not None and geometry.ndim not in self.spatial_dims:
            dims = " or ".join(f"{d}-D" for d in self.spatial_dims)
            return f"{self.name} handles {dims} layers only (spatial_dims) and this case is {geometry.ndim}-D"
        if self.style == "cache":
            return _cache_style_unsupported(_needed(geometry))
        for setting, values, refusing in self._refused(geometry):
            if len(refusing) == 2:  # neither takes it: the layer cannot express this case
                return f"forward and backward do not accept the keyword {setting}, and this case needs {setting} {format_shape(values)}"
        return None

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        """Why forward and backward cannot agree on `geometry` (a failure, not a skip), or None.

        A forward that takes a setting and a backward that does not compute the gradient of some
        other layer: the case fails with that reason instead of being skipped."""
        if self.style == "cache":
            return None
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
        for setting, values in _needed(geometry).items():
            if all(v == _NEUTRAL[setting] for v in values):
                continue
            refusing = [
                what
                for what, accepts in (("forward", self.forward_accepts), ("backward", self.backward_accepts))
                if accepts is not None and setting not in accepts
            ]
            if refusing:
                refused.append((setting, values, refusing))
        return refused

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        x_user, w_user = self._user_x(x), self._user_w(w)
        if self.style == "cache":
            out = self._cache_forward(x_user, w_user, b, settings)[0]
        else:
            out = self.target.forward(x_user, w_user, b, **_keep(settings, self.forward_accepts))
        y_shape = (x.shape[0], w.shape[0], *_out_spatial(x.shape[2:], w.shape[2:], settings))
        return self._from_user_activation(out, y_shape, "forward", "the output")

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        dy_user, x_user, w_user = self._user_x(dy), self._user_x(x), self._user_w(w)
        if self.style == "cache":
            cache = self._cache_forward(x_user, w_user, b, settings)[1]
            result = self.target.backward(dy_user, cache)
        else:
            result = self.target.backward(dy_user, x_user, w_user, b, **_keep(settings, self.backward_accepts))
        if not isinstance(result, (tuple, list)) or len(result) != 3:
            return result  # the guard names what is wrong with it
        dx, dw, db = result
        return (
            self._from_user_activation(dx, x.shape, "backward", "dX"),
            self._from_user_weights(dw, w.shape),
            _flat_bias(db, b.shape[0]),
        )

    def _cache_forward(self, x: Any, w: Any, b: Any, settings: dict[str, Any]) -> tuple[Any, Any]:
        conv_param = {"stride": settings["stride"][0], "pad": settings["padding"][0]}
        result = self.target.forward(x, w, b, conv_param)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise ImplementationFailure(
                f"forward returned {_kind(result)}; a cache-style forward returns the tuple (out, cache)"
            )
        return result[0], result[1]

    # Layout translation: views in, views back out, shapes checked in the user's own layout.
    def _user_x(self, array: np.ndarray) -> np.ndarray:
        return np.moveaxis(array, 1, -1) if self.layout == "nhwc" else array

    def _user_w(self, w: np.ndarray) -> np.ndarray:
        return np.moveaxis(w, (0, 1), (-1, -2)) if self.weight_layout == "hwio" else w

    def _from_user_activation(self, value: Any, shape: Sequence[int], what: str, name: str) -> Any:
        if self.layout == "nchw":
            return value
        user_shape = (shape[0], *shape[2:], shape[1])
        array = _checked_shape(value, user_shape, what, name, "N, *spatial, C in layout nhwc")
        return value if array is None else np.moveaxis(array, -1, 1)

    def _from_user_weights(self, value: Any, shape: Sequence[int]) -> Any:
        if self.weight_layout == "oihw":
            return value
        user_shape = (*shape[2:], shape[1], shape[0])
        array = _checked_shape(value, user_shape, "backward", "dK", "*k, C/groups, F in weight layout hwio")
        return value if array is None else np.moveaxis(array, (-1, -2), (0, 1))


def adapt(target: Any, name: str, *, layout: str = "nchw", weight_layout: str = "oihw") -> Adapter:
    """Wrap an object with `forward` and `backward`; raises ImplementationError if it has not."""
    known_layout = next((known for known in LAYOUTS if known == layout), None)
    if known_layout is None:
        raise SettingError(f"{named('layout', repr(layout))} is not known; use {' or '.join(LAYOUTS)}")
    known_weight_layout = next((known for known in WEIGHT_LAYOUTS if known == weight_layout), None)
    if known_weight_layout is None:
        raise SettingError(
            f"{named('weight_layout', repr(weight_layout))} is not known; use {' or '.join(WEIGHT_LAYOUTS)}"
        )
    functions = {}
    for part in ("forward", "backward"):
        function = getattr(target, part, None)
        if not callable(function):
            raise ImplementationError(
                f"{literal(name)} has no {part} function; define forward(x, w, b, *, stride, padding, "
                "dilation, groups) and backward(dy, x, w, b, *, stride, padding, dilation, groups), "
                "or point {impl} at the object holding them with FILE.py:NAME",
                parameter="impl",
            )
        functions[part] = function
    style: Literal["keywords", "cache"] = "cache" if _is_cache_style(functions["forward"], functions["backward"]) else "keywords"
    spatial_dims = _spatial_dims(target, name, default=(2,) if style == "cache" else None)
    return Adapter(
        target=target,
        name=name,
        style=style,
        layout=known_layout,
        weight_layout=known_weight_layout,
        forward_accepts=_accepted_keywords(functions["forward"]),
        backward_accepts=_accepted_keywords(functions["backward"]),
        spatial_dims=spatial_dims,
    )


def _parameters(function: Callable[..., Any]) -> Optional[dict[str, inspect.Parameter]]:
    try:
        return dict(inspect.signature(function).parameters)
    except (TypeError, ValueError):  # builtins and some extension functions have no signature
        return None


def _accepted_keywords(function: Callable[..., Any]) -> Accepted:
    parameters = _parameters(function)
    if parameters is None or any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return None
    return frozenset(
        n for n, p in parameters.items() if n in SETTING_NAMES and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    )


def _is_cache_style(forward: Callable[..., Any], backward: Callable[..., Any]) -> bool:
    """forward(x, w, b, conv_param) and backward(dout, cache): the course-assignment convention."""
    f_params, b_params = _parameters(forward), _parameters(backward)
    if f_params is None or b_params is None:
        return False
    if "conv_param" in f_params:
        return True
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    f_positional = [p for p in f_params.values() if p.kind in positional]
    b_positional = [p for p in b_params.values() if p.kind in positional]
    takes_settings = _accepted_keywords(forward) != frozenset()
    return len(f_positional) == 4 and len(b_positional) == 2 and not takes_settings


def _needed(geometry: LayerGeometry) -> dict[str, tuple[int, ...]]:
    return {"stride": geometry.stride, "padding": geometry.padding, "dilation": geometry.dilation, "groups": (geometry.groups,)}


def _cache_style_unsupported(needed: dict[str, tuple[int, ...]]) -> Optional[str]:
    for setting in ("dilation", "groups"):
        if any(v != _NEUTRAL[setting] for v in needed[setting]):
            return (
                f"a cache-style conv_param has no {setting}, and this case needs {setting} "
                f"{format_shape(needed[setting])}"
            )
    for setting, key in (("stride", "stride"), ("padding", "pad")):
        if len(set(needed[setting])) > 1:
            return (
                f"a cache-style conv_param holds one {key} for every axis, and this case needs "
                f"{setting} {format_shape(needed[setting])}"
            )
    return None


def _spatial_dims(target: Any, name: str, default: Optional[tuple[int, ...]]) -> Optional[tuple[int, ...]]:
    declared = getattr(target, "spatial_dims", None)
    if declared is None:
        return default
    values = (declared,) if isinstance(declared, int) else declared
    try:
        dims = tuple(int(d) for d in values)
    except (TypeError, ValueError):
        dims = ()
    if not dims or any(d not in (1, 2, 3) for d in dims):
        raise ImplementationError(
            f"{literal(name)}.spatial_dims is {literal(repr(declared))}; declare the layer ranks it "
            "handles, like spatial_dims = (2,)",
            parameter="impl",
        )
    return dims


def _keep(settings: dict[str, Any], accepts: Accepted) -> dict[str, Any]:
    return settings if accepts is None else {k: v for k, v in settings.items() if k in accepts}


def _out_spatial(spatial: Sequence[int], kernel: Sequence[int], settings: dict[str, Any]) -> tuple[int, ...]:
    return tuple(
        output_size(h, k, s, p, d)
        for h, k, s, p, d in zip(spatial, kernel, settings["stride"], settings["padding"], settings["dilation"])
    )


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


def _kind(value: Any) -> str:
    return "None" if value is None else f"a {type(value).__name__}"
