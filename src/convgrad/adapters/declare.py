"""What an implementation declares about itself, so that no command-line flag or glue is needed.

Declarations live next to the layer, in either of two places (a TOML file wins key by key):

    CONVGRAD = {"forward": "conv_forward_naive", "backward": "conv_backward_naive",
                "square_only": True}                 # a dict in the layer's file (or class)

    [impl]                                            # --impl-config conv.toml
    layout = "nhwc"
    padding_modes = ["valid", "same"]

Keys: which functions (forward, backward), conventions (layout, weight_layout, bias_shape, bias,
spatial_dims), limits (square_only, stride_tiles, padding_modes, one_int) and, for a layer class,
how to build it (constructor) and where its parameters live (attributes, set_weights), and for
a function on an autograd library's tensors, the tensor class (tensor). A bad declaration is an ImplementationError naming the key and the fix.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from convgrad.errors import ImplementationError, literal
from convgrad.geometry import LayerGeometry, format_axes, format_shape

__all__ = ["Declarations", "CONSTRUCTOR_NAMES", "ATTRIBUTE_ROLES", "read_declarations", "declared_unsupported", "padding_mode"]

# What a layer class's constructor can be told, in convgrad's words.
CONSTRUCTOR_NAMES = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "in_shape")
_PADDING_MODES = ("valid", "same")
_LAYOUTS = ("nchw", "nhwc")
_WEIGHT_LAYOUTS = ("oihw", "hwio")
_EXAMPLES: dict[str, str] = {
    "forward": '"conv_forward_naive"', "backward": '"conv_backward_naive"', "layout": '"nhwc"',
    "weight_layout": '"hwio"', "bias_shape": '"F,1"', "bias": "false", "spatial_dims": "[2]",
    "square_only": "true", "stride_tiles": "true", "padding_modes": '["valid", "same"]', "one_int": "true",
    "constructor": '{in_channels = "n_in", out_channels = "n_out", kernel_size = "size"}',
    "tensor": '"Tensor"',
    "attributes": '{weights = "W", bias = "b", grad_weights = "dW", grad_bias = "db"}', "set_weights": '"set_params"',
}
ATTRIBUTE_ROLES = ("weights", "bias", "grad_weights", "grad_bias")


@dataclass(frozen=True)
class Declarations:
    """Everything an implementation may declare; None or the default means "not declared"."""

    forward: Optional[str] = None
    backward: Optional[str] = None
    layout: Optional[str] = None
    weight_layout: Optional[str] = None
    bias_shape: Optional[tuple[str, ...]] = None  # e.g. ("F", "1"): how the layer takes its bias
    bias: bool = True  # False: a bias-free layer (db is not the layer's, so it is not checked)
    spatial_dims: Optional[tuple[int, ...]] = None
    square_only: bool = False  # square inputs only
    stride_tiles: bool = False  # the stride must tile the padded input exactly
    padding_modes: Optional[tuple[str, ...]] = None  # padding as words only: 'valid' and/or 'same'
    one_int: bool = False  # one int for every axis (stride, padding, dilation, kernel size)
    constructor: Mapping[str, str] = field(default_factory=dict)  # convgrad's name -> the parameter's
    attributes: Mapping[str, str] = field(default_factory=dict)  # role (weights, ...) -> attribute name
    set_weights: Optional[str] = None  # a method taking (w, b), or (w) for a bias-free layer
    tensor: Optional[str] = None  # an autograd library's tensor class (autograd.py)
    source: str = ""  # where they were read, for messages

    def merged(self, other: "Declarations") -> "Declarations":
        """These declarations with every key `other` declares taken from `other`."""
        mine, theirs = _declared(self), _declared(other)
        return Declarations(**{**mine, **theirs, "source": other.source or self.source})


def _declared(declarations: Declarations) -> dict[str, Any]:
    defaults = Declarations()
    return {
        name: getattr(declarations, name)
        for name in declarations.__dataclass_fields__
        if name != "source" and getattr(declarations, name) != getattr(defaults, name)
    }


def read_declarations(*targets: Any, config: Optional[str] = None) -> Declarations:
    """The declarations of each target in turn (its CONVGRAD dict, and a bare spatial_dims; a
    later target wins, e.g. a class over its module), then the TOML file `config` on top."""
    declared = Declarations()
    for target in targets:
        spatial = getattr(target, "spatial_dims", None)
        if spatial is not None:  # the older way, kept: spatial_dims = (2,) as a plain attribute
            declared = declared.merged(parse_declarations({"spatial_dims": spatial}, _name_of(target) + ".spatial_dims"))
        own = getattr(target, "CONVGRAD", None)
        if own is None:
            continue
        where = f"CONVGRAD in {_name_of(target)}"
        if not isinstance(own, Mapping):
            raise ImplementationError(
                f"{literal(where)} is a {type(own).__name__}; make it a dict, like CONVGRAD = {{{{\"layout\": \"nhwc\"}}}}",
                parameter="impl",
            )
        declared = declared.merged(parse_declarations(own, where))
    if config is not None:
        declared = declared.merged(parse_declarations(_read_toml(config), config))
    return declared


def _name_of(target: Any) -> str:
    file = getattr(target, "__file__", None)
    return os.path.basename(file) if isinstance(file, str) else getattr(target, "__name__", type(target).__name__)


def _read_toml(path: str) -> Mapping[str, Any]:
    import tomllib

    if not os.path.isfile(path):
        raise ImplementationError(f"{literal(path)}: no such file; check {{impl_config}}", parameter="impl_config")
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as error:
        raise ImplementationError(
            f"{literal(path)} is not valid TOML: {literal(error)}; fix the file", parameter="impl_config"
        ) from None
    table = document.get("impl", document)
    if not isinstance(table, Mapping):
        raise ImplementationError(f"{literal(path)}: [impl] must be a table of declarations", parameter="impl_config")
    return table


def parse_declarations(values: Mapping[str, Any], where: str) -> Declarations:
    """Validate declared values; every problem is one line naming the key, the value and the fix."""
    parsed: dict[str, Any] = {}
    for key, value in values.items():
        if key not in _EXAMPLES:
            close = difflib.get_close_matches(str(key), list(_EXAMPLES), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise _bad(where, f"has an unknown key {key!r}; {hint}known keys: {', '.join(_EXAMPLES)}")
        parsed[key] = _PARSERS[key](value, key, where)
    return Declarations(**parsed, source=where)


def _bad(where: str, problem: str) -> ImplementationError:
    return ImplementationError(f"{literal(where)} {literal(problem)}", parameter="impl")


def _wrong(where: str, key: str, value: Any) -> ImplementationError:
    return _bad(where, f"declares {key} = {value!r}; give e.g. {key} = {_EXAMPLES[key]}")


def _text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _wrong(where, key, value)
    return value.strip()


def _identifier(value: Any, key: str, where: str) -> str:
    text = _text(value, key, where)
    if not text.isidentifier():
        raise _wrong(where, key, value)
    return text


def _choice(choices: tuple[str, ...]) -> Any:
    def parse(value: Any, key: str, where: str) -> str:
        text = _text(value, key, where).lower()
        if text not in choices:
            raise _wrong(where, key, value)
        return text

    return parse


def _flag(value: Any, key: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong(where, key, value)
    return value


def _bias_shape(value: Any, key: str, where: str) -> tuple[str, ...]:
    parts = tuple(p.strip().upper() for p in str(value).strip("()").split(",") if p.strip()) if isinstance(value, str) else ()
    if parts.count("F") != 1 or any(p not in ("F", "1") for p in parts):
        raise _wrong(where, key, value)
    return parts


def _spatial_dims(value: Any, key: str, where: str) -> tuple[int, ...]:
    values = (value,) if isinstance(value, int) else value
    try:
        dims = tuple(int(d) for d in values if not isinstance(d, bool))
    except (TypeError, ValueError):
        dims = ()
    if not dims or any(d not in (1, 2, 3) for d in dims):
        raise _bad(where, f"declares spatial_dims = {value!r}; declare the layer ranks it handles, like spatial_dims = (2,)")
    return dims


def _padding_modes(value: Any, key: str, where: str) -> tuple[str, ...]:
    values = (value,) if isinstance(value, str) else value
    try:
        modes = tuple(str(v).lower() for v in values)
    except TypeError:
        modes = ()
    if not modes or any(m not in _PADDING_MODES for m in modes):
        raise _wrong(where, key, value)
    return modes


def _names(known: tuple[str, ...]) -> Any:
    """A table from convgrad's names (`known`) to the layer's own identifiers."""

    def parse(value: Any, key: str, where: str) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise _wrong(where, key, value)
        mapping = {}
        for ours, theirs in value.items():
            if ours not in known:
                close = difflib.get_close_matches(str(ours), known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise _bad(where, f"{key} names {ours!r}; {hint}it can map {', '.join(known)}")
            mapping[str(ours)] = _identifier(theirs, key, where)
        return mapping

    return parse


_PARSERS: dict[str, Any] = {
    "forward": _identifier, "backward": _identifier, "layout": _choice(_LAYOUTS),
    "weight_layout": _choice(_WEIGHT_LAYOUTS), "bias_shape": _bias_shape, "bias": _flag,
    "spatial_dims": _spatial_dims, "square_only": _flag, "stride_tiles": _flag, "padding_modes": _padding_modes,
    "one_int": _flag, "constructor": _names(CONSTRUCTOR_NAMES), "attributes": _names(ATTRIBUTE_ROLES),
    "set_weights": _identifier, "tensor": _identifier,
}


def padding_mode(geometry: LayerGeometry) -> Optional[str]:
    """'valid' or 'same' when the case's padding is one of them, else None.

    'same' is only unambiguous at stride 1 with an odd (dilated) kernel extent: the symmetric
    padding that keeps the size."""
    if all(p == 0 for p in geometry.padding):
        return "valid"
    same = all(
        s == 1 and d * (k - 1) % 2 == 0 and p == d * (k - 1) // 2
        for s, d, k, p in zip(geometry.stride, geometry.dilation, geometry.kernel_size, geometry.padding)
    )
    return "same" if same else None


def declared_unsupported(
    declared: Declarations, geometry: LayerGeometry, *, kernel_size_passed: bool = True
) -> Optional[str]:
    """Why a declared limit rules `geometry` out (the case is skipped with this reason), or None.
    one_int limits the kernel size only where convgrad hands it over (a layer object's
    constructor); functions read it off w."""
    if declared.spatial_dims is not None and geometry.ndim not in declared.spatial_dims:
        dims = " or ".join(f"{d}-D" for d in declared.spatial_dims)
        return f"handles {dims} layers only (spatial_dims) and this case is {geometry.ndim}-D"
    if declared.square_only and len(set(geometry.spatial)) > 1:
        return f"takes square inputs only (square_only) and this input is {format_shape(geometry.spatial)}"
    if declared.one_int:
        for setting, values in (("kernel size", geometry.kernel_size), ("stride", geometry.stride),
                                ("padding", geometry.padding), ("dilation", geometry.dilation)):
            if len(set(values)) > 1 and (kernel_size_passed or setting != "kernel size"):
                return f"takes one int for every axis (one_int) and this case needs {setting} {format_shape(values)}"
    if declared.stride_tiles:
        for axis, (h, k, s, p, d) in enumerate(zip(geometry.spatial, geometry.kernel_size, geometry.stride,
                                                    geometry.padding, geometry.dilation)):
            if (h + 2 * p - d * (k - 1) - 1) % s:
                return (
                    f"needs a stride that tiles the padded input (stride_tiles), and along axis "
                    f"{geometry.axis_names[axis]} stride {s} does not tile {h + 2 * p} with kernel extent {d * (k - 1) + 1}"
                )
    if declared.padding_modes is not None:
        mode = padding_mode(geometry)
        if mode not in declared.padding_modes:
            words = " or ".join(repr(m) for m in declared.padding_modes)
            return f"takes padding {words} only (padding_modes) and this case needs padding {format_axes(geometry.padding)}"
    return None
