"""What an implementation declares about itself, so that no command-line flag or glue is needed.

Declarations live next to the layer, in either of two places (a TOML file wins key by key):

    CONVGRAD = {"forward": "conv_forward_naive", "backward": "conv_backward_naive",
                "square_only": True}                 # a dict in the layer's file (or class)

    [impl]                                            # --impl-config conv.toml
    layout = "nhwc"
    padding_modes = ["valid", "same"]

Every key applies to every calling style (functions, layer objects, autograd-engine tensors, torch
Functions and Modules, jax functions); a key that cannot apply to the layer is an error, never
ignored. `KEYS` is the one table of them: what each means, an example, and its parser. A bad
declaration is an ImplementationError naming the key and the fix, with the closest known key.
"""

from __future__ import annotations

import ast
import inspect
import os
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Mapping, NamedTuple, Optional, cast

from convgrad.errors import ImplementationError, Parameter
from convgrad.geometry import DTYPES, LayerGeometry, format_shape, same_padding
from convgrad.adapters.protocol import Unsupported
from convgrad.adapters.vocabulary import CONSTRUCTOR_MEANINGS, LAYOUTS, PLACEHOLDERS, ROLES, WEIGHT_LAYOUTS
from convgrad.adapters.failure import describe_exception
from convgrad.keys import suggestion, unknown_key

__all__ = [
    "Declarations", "CallForm", "Placeholder", "AttributePath", "KEYS", "GRADIENTS", "read_declarations",
    "parse_declarations", "declared_unsupported", "declared_refusal", "own_supports", "padding_mode",
]

GRADIENTS = ("dx", "dw", "db")  # what a backward returns, in convgrad's words
_GRADIENT_ALIASES = {"dx": "dx", "dX": "dx", "dw": "dw", "dW": "dw", "dK": "dw", "dk": "dw", "db": "db", "dB": "db",
                     "_": "_"}


class Placeholder(NamedTuple):
    """A name in a declared call that convgrad fills: x, dy, w, b, cache, lr, in_shape, ..."""

    meaning: str


@dataclass(frozen=True)
class CallForm:
    """A declared function or method, with the arguments it is called with when they are written:
    "forward_pass", or "pass_forward(x, True)" (x is convgrad's; True is passed as it is)."""

    name: str
    arguments: tuple[Any, ...] = ()  # Placeholder or a constant, in order
    keywords: Mapping[str, Any] = field(default_factory=dict)  # Placeholder or a constant
    written: bool = False  # with parentheses: exactly these arguments, else the style's own

    def bind(self, values: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The positional and keyword arguments, placeholders filled from `values` (by meaning)."""
        def fill(argument: Any) -> Any:
            return values[argument.meaning] if isinstance(argument, Placeholder) else argument

        return [fill(a) for a in self.arguments], {k: fill(v) for k, v in self.keywords.items()}

    @property
    def placeholders(self) -> set[str]:
        return {a.meaning for a in (*self.arguments, *self.keywords.values()) if isinstance(a, Placeholder)}

    def __str__(self) -> str:
        if not self.written:
            return self.name
        def shown(argument: Any) -> str:
            return argument.meaning if isinstance(argument, Placeholder) else repr(argument)

        parts = [shown(a) for a in self.arguments] + [f"{k}={shown(v)}" for k, v in self.keywords.items()]
        return f"{self.name}({', '.join(parts)})"


@dataclass(frozen=True)
class AttributePath:
    """Where a value lives on an object: attributes, keys of dicts and indices of lists on the way
    ("params.W", "params[0]")."""

    steps: tuple[str, ...]

    def get(self, target: Any, default: Any = None) -> Any:
        for step in self.steps:
            if isinstance(target, Mapping):
                if step not in target:
                    return default
                target = target[step]
            elif isinstance(target, (list, tuple)) and step.isdigit():
                if int(step) >= len(target):
                    return default
                target = target[int(step)]
            elif hasattr(target, step):
                target = getattr(target, step)
            else:
                return default
        return target

    def set(self, target: Any, value: Any) -> None:
        holder = AttributePath(self.steps[:-1]).get(target) if len(self.steps) > 1 else target
        last = self.steps[-1]
        if isinstance(holder, dict):
            holder[last] = value
        elif isinstance(holder, list) and last.isdigit():
            holder[int(last)] = value
        else:
            setattr(holder, last, value)

    def __str__(self) -> str:
        return ".".join(self.steps)


@dataclass(frozen=True)
class Declarations:
    """Everything an implementation may declare; None or the default means "not declared"."""

    forward: Optional[CallForm] = None
    backward: Optional[CallForm] = None
    backward_parts: Mapping[str, CallForm] = field(default_factory=dict)  # dx, dw, db: a backward split in parts
    backward_returns: Optional[tuple[Any, ...]] = None  # e.g. ("dx", ("dw", "db")): how backward returns them
    layout: Optional[str] = None
    weight_layout: Optional[str] = None
    bias_shape: Optional[tuple[str, ...]] = None  # e.g. ("F", "1"): how the layer takes its bias
    bias: bool = True  # False: a bias-free layer (db is not the layer's, so it is not checked)
    batched: bool = True  # False: the layer takes one image; convgrad loops over the batch
    dtypes: Optional[tuple[str, ...]] = None  # the dtypes the layer computes in; others run at the first
    spatial_dims: Optional[tuple[int, ...]] = None
    square_only: bool = False  # square inputs only
    square_kernels: bool = False  # square kernels only
    stride_tiles: bool = False  # the stride must tile the padded input exactly
    padding_modes: Optional[tuple[str, ...]] = None  # padding as words only: 'valid' and/or 'same'
    uneven_padding: bool = False  # takes padding as a (before, after) pair per axis (then in every case)
    one_int: bool = False  # one int for every axis (stride, padding, dilation, kernel size)
    per_axis: bool = False  # a tuple per axis always (stride, padding, dilation, kernel size)
    constructor: Mapping[str, str] = field(default_factory=dict)  # convgrad's name -> the parameter's
    attributes: Mapping[str, AttributePath] = field(default_factory=dict)  # role (weights, ...) -> where
    set_weights: Optional[CallForm] = None  # a method taking (w, b), or (w) for a bias-free layer
    build: Optional[CallForm] = None  # a method that makes the weights after the constructor
    tensor: Optional[str] = None  # an autograd library's tensor class (autograd_engines.py)
    # The layer's own supports(geometry), a function beside it (not a key: it is code, not data).
    supports: Optional[Callable[[LayerGeometry], Any]] = field(default=None, compare=False)
    source: str = ""  # where they were read, for messages
    given: frozenset[str] = field(default=frozenset(), compare=False)  # keys given, even at their default

    def merged(self, other: "Declarations") -> "Declarations":
        """These declarations with every key `other` declares taken from `other`."""
        mine, theirs = self.declared(), other.declared()
        return Declarations(**{**mine, **theirs, "source": other.source or self.source,
                               "given": self.given | other.given})

    def declared(self) -> dict[str, Any]:
        """The keys given (square_only = false in a TOML file overrides the file's True), and any
        other with a value besides the default."""
        defaults = Declarations()
        return {
            f.name: getattr(self, f.name) for f in fields(self)
            if f.name not in ("source", "given")
            and (f.name in self.given or getattr(self, f.name) != getattr(defaults, f.name))
        }

    def padding_word(self, geometry: LayerGeometry) -> Optional[str]:
        """The case's padding as the word the layer declared, in its spelling ('same', 'SAME')."""
        mode = padding_mode(geometry)
        return next((m for m in self.padding_modes or () if m.lower() == mode), mode)

    def refuse(self, keys: tuple[str, ...], what: str) -> None:
        """Raise if any of `keys` is declared: they cannot apply to `what`, and are never ignored."""
        declared = self.declared()
        given = [k for k in keys if k in declared]
        if given:
            raise ImplementationError(
                f"{self.source or 'the declarations'} declare {', '.join(given)}, which cannot "
                f"apply to {what}; remove {'it' if len(given) == 1 else 'them'}",
                parameter="impl",
            )


def read_declarations(*targets: Any, config: Optional[str] = None) -> Declarations:
    """The declarations of each target in turn (its CONVGRAD dict, and a bare spatial_dims; a
    later target wins, e.g. a class over its module), then the TOML file `config` on top."""
    declared = Declarations()
    for target in targets:
        supports = own_supports(target)
        if supports is not None:
            declared = declared.merged(Declarations(supports=supports, source=declared.source))
        spatial = getattr(target, "spatial_dims", None)
        if spatial is not None and not callable(spatial):  # the older way, kept: spatial_dims = (2,)
            declared = declared.merged(parse_declarations({"spatial_dims": spatial}, _name_of(target) + ".spatial_dims"))
        own = getattr(target, "CONVGRAD", None)
        if own is None:
            continue
        where = f"CONVGRAD in {_name_of(target)}"
        if not isinstance(own, Mapping):
            raise ImplementationError(
                f"{where} is a {type(own).__name__}; make it a dict, like CONVGRAD = {{\"layout\": \"nhwc\"}}",
                parameter="impl",
            )
        declared = declared.merged(parse_declarations(own, where))
    if config is not None:
        declared = declared.merged(parse_declarations(_read_toml(config), config))
    return declared


def own_supports(target: Any) -> Optional[Callable[[LayerGeometry], Any]]:
    """The target's supports(geometry), if it can be called as it is (a class's instance method
    cannot: it is read again from the instance convgrad makes)."""
    supports = getattr(target, "supports", None)
    if not callable(supports):
        return None
    if inspect.isclass(target) and inspect.isfunction(inspect.getattr_static(target, "supports")):
        return None
    return cast(Callable[[LayerGeometry], Any], supports)


def _name_of(target: Any) -> str:
    file = getattr(target, "__file__", None)
    return os.path.basename(file) if isinstance(file, str) else getattr(target, "__name__", type(target).__name__)


def _read_toml(path: str) -> Mapping[str, Any]:
    import tomllib

    if not os.path.isfile(path):
        raise ImplementationError(f"{path}: no such file; check ", Parameter("impl_config"))
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as error:
        raise ImplementationError(
            f"{path} is not valid TOML: {error}; fix the file", parameter="impl_config"
        ) from None
    table = document.get("impl", document)
    if not isinstance(table, Mapping):
        raise ImplementationError(f"{path}: [impl] must be a table of declarations", parameter="impl_config")
    return table


def parse_declarations(values: Mapping[str, Any], where: str) -> Declarations:
    """Validate declared values; every problem is one line naming the key, the value and the fix."""
    parsed: dict[str, Any] = {}
    for key, value in values.items():
        if key not in KEYS:
            raise _bad(where, "has an " + unknown_key(str(key), KEYS))
        parsed.update(KEYS[key].parse(value, key, where))
    return Declarations(**parsed, source=where, given=frozenset(parsed))


def _bad(where: str, problem: str) -> ImplementationError:
    return ImplementationError(f"{where} {problem}", parameter="impl")


def _wrong(where: str, key: str, value: Any) -> ImplementationError:
    return _bad(where, f"declares {key} = {value!r}; give e.g. {key} = {KEYS[key].example}")


def _text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _wrong(where, key, value)
    return value.strip()


def _identifier(value: Any, key: str, where: str) -> str:
    text = _text(value, key, where)
    if not text.isidentifier():
        raise _wrong(where, key, value)
    return text


def _call_form(value: Any, key: str, where: str) -> CallForm:
    """ "name" or "name(x, True, training=False)": names are convgrad's values, the rest constants."""
    text = _text(value, key, where)
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise _wrong(where, key, value) from None
    if isinstance(tree, ast.Name):
        return CallForm(tree.id)
    if not isinstance(tree, ast.Call) or not isinstance(tree.func, ast.Name):
        raise _wrong(where, key, value)

    def argument(node: ast.expr) -> Any:
        if isinstance(node, ast.Name):
            meaning = next((m for m, names in PLACEHOLDERS.items() if node.id in names), None)
            if meaning is None:
                raise _bad(where, f"declares {key} = {text!r}, and {node.id!r} is no value convgrad hands over; "
                                  f"use {', '.join(PLACEHOLDERS)} or a constant like True")
            return Placeholder(meaning)
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise _wrong(where, key, value) from None

    if any(k.arg is None for k in tree.keywords) or any(isinstance(a, ast.Starred) for a in tree.args):
        raise _wrong(where, key, value)
    return CallForm(tree.func.id, tuple(argument(a) for a in tree.args),
                    {str(k.arg): argument(k.value) for k in tree.keywords}, written=True)


def _backward(value: Any, key: str, where: str) -> dict[str, Any]:
    """One function, or a table of the functions that compute dx, dw (and db) each."""
    if isinstance(value, Mapping):
        parts = {}
        for part, form in value.items():
            if part not in GRADIENTS:
                raise _bad(where, f"declares backward.{part}; a split backward names {', '.join(GRADIENTS)}")
            parts[str(part)] = _call_form(form, key, where)
        if "dx" not in parts or "dw" not in parts:
            raise _bad(where, "declares a split backward without dx or dw; give e.g. "
                              'backward = {dx = "conv_backward_input", dw = "conv_backward_weights"}')
        return {"backward_parts": parts}
    return {"backward": _call_form(value, key, where)}


def _returns(value: Any, key: str, where: str) -> tuple[Any, ...]:
    """ "dx, (dw, db)": the nesting of what backward returns; _ for a value to leave."""
    text = _text(value, key, where)
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise _wrong(where, key, value) from None

    def shape(node: ast.expr) -> Any:
        if isinstance(node, ast.Name) and node.id in _GRADIENT_ALIASES:
            return _GRADIENT_ALIASES[node.id]
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(shape(e) for e in node.elts)
        raise _bad(where, f"declares {key} = {text!r}; name the values dx, dw, db (or _), like {KEYS[key].example}")

    pattern = shape(tree)
    pattern = pattern if isinstance(pattern, tuple) else (pattern,)
    named = _flatten(pattern)
    if "dx" not in named or len([n for n in named if n != "_"]) != len({n for n in named if n != "_"}):
        raise _bad(where, f"declares {key} = {text!r}; it must name dx once (dw and db at most once)")
    return pattern


def _flatten(pattern: Any) -> list[str]:
    return [n for p in pattern for n in (_flatten(p) if isinstance(p, tuple) else [p])]


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


def _words(choices: tuple[str, ...], *, spelled: bool = False) -> Any:
    """One word or a list of them, each among `choices` in any case; `spelled` keeps the layer's
    own spelling (TensorFlow's 'SAME' is handed over as 'SAME')."""

    def parse(value: Any, key: str, where: str) -> tuple[str, ...]:
        values = (value,) if isinstance(value, str) else value
        try:
            words = tuple(str(v).strip() for v in values)
        except TypeError:
            words = ()
        if not words or any(w.lower() not in choices for w in words):
            raise _wrong(where, key, value)
        return words if spelled else tuple(w.lower() for w in words)

    return parse


def _table(known: tuple[str, ...], parse_value: Callable[[Any, str, str], Any]) -> Any:
    """A table from convgrad's names (`known`) to the layer's own."""

    def parse(value: Any, key: str, where: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _wrong(where, key, value)
        mapping = {}
        for ours, theirs in value.items():
            if ours not in known:
                raise _bad(where, f"{key} names {ours!r}; {suggestion(str(ours), known)}it can map {', '.join(known)}")
            mapping[str(ours)] = parse_value(theirs, key, where)
        return mapping

    return parse


def _path(value: Any, key: str, where: str) -> AttributePath:
    """ "dW", "params.W" or 'params["W"]'."""
    text = _text(value, key, where)
    steps = tuple(s.strip("'\" ") for s in text.replace("[", ".").replace("]", "").split("."))
    if not all(steps):
        raise _wrong(where, key, value)
    return AttributePath(steps)


class Key(NamedTuple):
    """One declaration key: how its value is read, an example, and what it means."""

    parse: Callable[[Any, str, str], dict[str, Any]]
    example: str
    meaning: str


def _as(parser: Callable[[Any, str, str], Any]) -> Callable[[Any, str, str], dict[str, Any]]:
    """A parser of one field named like its key."""
    return lambda value, key, where: {key: parser(value, key, where)}


KEYS: dict[str, Key] = {
    "forward": Key(_as(_call_form), '"conv_forward" or "pass_forward(x, True)"',
                   "the forward function or method, with fixed extra arguments when written out"),
    "backward": Key(_backward, '"conv_backward" or {dx = "grad_input", dw = "grad_weight"}',
                    "the backward function or method, or one function per gradient"),
    "backward_returns": Key(_as(_returns), '"dx, (dw, db)"', "how backward returns the gradients"),
    "layout": Key(_as(_choice(LAYOUTS)), '"nhwc"', "activations channels first (nchw) or last (nhwc)"),
    "weight_layout": Key(_as(_choice(WEIGHT_LAYOUTS)), '"hwio"', "kernels as (F, C, *k), (*k, C, F) or (C, F, *k)"),
    "bias_shape": Key(_as(_bias_shape), '"F,1"', "the shape the layer keeps its bias in"),
    "bias": Key(_as(_flag), "false", "false: the layer has no bias (db is not checked)"),
    "batched": Key(_as(_flag), "false", "false: the layer takes one image (C, *spatial); convgrad loops over the batch"),
    "dtypes": Key(_as(_words(DTYPES)), '["float32"]', "the dtypes the layer computes in; a case in another runs at the first"),
    "spatial_dims": Key(_as(_spatial_dims), "[2]", "the numbers of spatial dimensions the layer handles"),
    "square_only": Key(_as(_flag), "true", "square inputs only"),
    "square_kernels": Key(_as(_flag), "true", "square kernels only"),
    "stride_tiles": Key(_as(_flag), "true", "the stride must tile the padded input exactly"),
    "padding_modes": Key(_as(_words(("valid", "same"), spelled=True)), '["valid", "same"]', "padding given as these words only"),
    "uneven_padding": Key(_as(_flag), "true", "takes padding as ((before, after), ...) per axis, in every case"),
    "one_int": Key(_as(_flag), "true", "one int for every axis (stride, padding, dilation, kernel size)"),
    "per_axis": Key(_as(_flag), "true", "a tuple per axis always (stride, padding, dilation, kernel size)"),
    "constructor": Key(_as(_table(CONSTRUCTOR_MEANINGS, _identifier)),
                       '{in_channels = "n_in", out_channels = "n_out", kernel_size = "size"}',
                       "a layer class's constructor parameters, by what they mean"),
    "attributes": Key(_as(_table(tuple(ROLES), _path)), '{weights = "params.W", grad_weights = "grads.dW"}',
                      "where a layer object keeps weights, bias and their gradients"),
    "set_weights": Key(_as(_call_form), '"set_params"', "a method taking (w, b) that sets the weights"),
    "build": Key(_as(_call_form), '"build(in_shape)"', "a method that makes the weights after the constructor"),
    "tensor": Key(_as(_identifier), '"Tensor"', "an autograd library's tensor class; forward is a function on it"),
}


def padding_mode(geometry: LayerGeometry) -> Optional[str]:
    """'valid' or 'same' when the case's padding is one of them, else None.

    'same' is TensorFlow's (and Keras'): ceil(H / s) outputs, per axis a total padding of
    max((ceil(H/s) - 1)*s + d*(k-1) + 1 - H, 0), total // 2 before and the rest after. So at
    stride 1 with an odd (dilated) kernel extent it is the symmetric padding that keeps the size;
    at a stride, or with an even extent, it is often one more after than before."""
    if not any(geometry.padding_totals):
        return "valid"
    same = all(
        same_padding(h, k, s, d) == pair
        for h, k, s, d, pair in zip(geometry.spatial, geometry.kernel_size, geometry.stride, geometry.dilation,
                                    geometry.padding_pairs)
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
    if declared.square_kernels and len(set(geometry.kernel_size)) > 1:
        return f"takes square kernels only (square_kernels) and this kernel is {format_shape(geometry.kernel_size)}"
    if declared.one_int:
        for setting, values in (("kernel size", geometry.kernel_size), ("stride", geometry.stride),
                                ("padding", geometry.padding), ("dilation", geometry.dilation)):
            as_word = setting == "padding" and declared.padding_modes is not None  # one word for every axis
            if len(set(values)) > 1 and (kernel_size_passed or setting != "kernel size") and not as_word:
                return f"takes one int for every axis (one_int) and this case needs {setting} {format_shape(values)}"
        if geometry.uneven_padding and declared.padding_modes is None:
            return f"takes one int for every axis (one_int) and this case needs padding {geometry.padding_text} (before,after)"
    if declared.stride_tiles:
        for axis, (over, hp, k, s, d) in enumerate(zip(geometry.left_over, geometry.padded_spatial,
                                                         geometry.kernel_size, geometry.stride, geometry.dilation)):
            if over:
                return (
                    f"needs a stride that tiles the padded input (stride_tiles), and along axis "
                    f"{geometry.axis_names[axis]} stride {s} does not tile {hp} with kernel extent {d * (k - 1) + 1}"
                )
    if declared.padding_modes is not None:
        mode = padding_mode(geometry)
        if mode not in [m.lower() for m in declared.padding_modes]:
            words = " or ".join(repr(m) for m in declared.padding_modes)
            return f"takes padding {words} only (padding_modes) and this case needs padding {geometry.padding_text}"
    return None


def declared_refusal(
    name: str, declared: Declarations, geometry: LayerGeometry, *, kernel_size_passed: bool = True,
) -> Optional[str]:
    """Why the layer does not run `geometry` by what it declares: its limits, then its own
    supports(geometry) (True or None yes; False, a reason, or raising Unsupported no). The one
    place every calling style asks."""
    limit = declared_unsupported(declared, geometry, kernel_size_passed=kernel_size_passed)
    if limit is not None:
        return f"{name} {limit}"
    if geometry.uneven_padding and not declared.uneven_padding and declared.padding_modes is None:
        return (f"{name} takes one padding per axis, and this case pads {geometry.padding_text} (before,after); "
                "declare uneven_padding = true if it takes a (before, after) pair per axis")
    supports = declared.supports
    if supports is None:
        return None
    try:
        answer = supports(geometry)
    except Unsupported as refusal:
        return f"{name}: {refusal}"
    except Exception as error:
        return f"{name}.supports() raised {describe_exception(error)}"
    if answer is None or answer is True:
        return None
    if answer is False:
        return f"{name}.supports() returned False for this case"
    return f"{name}: {answer}"
