"""A conv layer's geometry: parsed from flags or config values, validated once, then frozen.

Everything downstream (reference layer, finite differences, reports) takes a `LayerGeometry`
and may assume it describes a layer that exists and fits in memory.
"""

from __future__ import annotations

import functools

import math
import operator
import os
import re
from dataclasses import dataclass
from typing import Literal, Optional, Sequence, SupportsIndex, TypedDict, Union, cast, get_args

from convgrad.errors import GeometryError, Parameter, Part

__all__ = [
    "plural",
    "Dtype",
    "DTYPES",
    "TensorName",
    "GradientName",
    "GRADIENT_NAMES",
    "TENSOR_NAMES",
    "LayerGeometry",
    "AxisSpec",
    "ConvSettings",
    "parse_shape",
    "parse_axes",
    "resolve_geometry",
    "memory_estimate_bytes",
    "output_size",
    "format_shape",
    "format_axes",
    "format_padding",
    "same_padding",
    "as_padding_pairs",
    "PaddingSpec",
    "PaddingPairs",
]

Dtype = Literal["float64", "float32"]
DTYPES: tuple[Dtype, ...] = get_args(Dtype)
TensorName = Literal["O", "dX", "dK", "db"]  # the output, then the gradients of x, w and b
GradientName = Literal["dX", "dK", "db"]
GRADIENT_NAMES: tuple[GradientName, ...] = get_args(GradientName)
TENSOR_NAMES: tuple[TensorName, ...] = get_args(TensorName)
SPATIAL_AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, padding_after: Optional[int] = None) -> int:
    """Output positions along one axis: floor((H + p + p_after - d*(k-1) - 1) / s) + 1 (p_after = p unless given)."""
    after = padding if padding_after is None else padding_after
    return (size + padding + after - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's 'SAME' along one axis: (before, after) giving ceil(H / s) outputs, the odd
    pixel after: total = max((ceil(H/s) - 1)*s + d*(k-1) + 1 - H, 0), before = total // 2."""
    total = max((-(-size // stride) - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


def plural(count: int, word: str) -> str:
    """'1 case', '3 cases'."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_shape(shape: Optional[Sequence[int]]) -> str:
    """'3x20x20'; 'scalar' for (), '-' for None (nothing usable was returned)."""
    if shape is None:
        return "-"
    return "x".join(str(s) for s in shape) if len(shape) else "scalar"


def format_axes(values: Sequence[int]) -> str:
    """A per-axis setting: '2' when every axis has the same value, else '2x1'."""
    return str(values[0]) if len(set(values)) == 1 else format_shape(values)


def as_padding_pairs(padding: Sequence[int] | Sequence[Sequence[int]]) -> PaddingPairs:
    """Padding as a call hands it over (`ConvSettings`: one int per axis, or a (before, after)
    pair per axis) as a pair per axis."""
    pairs = []
    for value in padding:
        if isinstance(value, int):  # the common cases, before the slower protocol check
            pairs.append((value, value))
        elif isinstance(value, tuple) and len(value) == 2:
            pairs.append((operator.index(value[0]), operator.index(value[1])))
        elif _is_number(value):
            number = operator.index(cast(SupportsIndex, value))
            pairs.append((number, number))
        else:
            before, after = value
            pairs.append((operator.index(before), operator.index(after)))
    return tuple(pairs)


def _is_number(value: object) -> bool:
    """An int or an integer scalar (numpy's too), not a sequence (an array row has __index__ as well)."""
    return isinstance(value, SupportsIndex) and not hasattr(value, "__len__")


def format_padding(before: Sequence[int], after: Sequence[int]) -> str:
    """Padding as a user writes it: '1' or '1x0' when both sides agree, else before,after per
    axis: '0,1' when every axis agrees, '0,1x1,2' otherwise (an even axis as one number: '0,1x1')."""
    if tuple(before) == tuple(after):
        return format_axes(before)
    sides = [f"{b},{a}" if b != a else str(b) for b, a in zip(before, after)]
    return sides[0] if len(set(sides)) == 1 else "x".join(sides)



# One setting per spatial axis may be given as an int, a sequence, or text like "2x1" / "same";
# padding also as (before, after) pairs per axis, or text like "0,1" / "0,1x1,2".
AxisSpec = Union[int, Sequence[int], str]
PaddingSpec = Union[AxisSpec, Sequence[Sequence[int]]]
PaddingPairs = tuple[tuple[int, int], ...]


class ConvSettings(TypedDict):
    """The settings every implementation call receives, by keyword. padding is one int per axis
    when both sides of every axis agree, else a (before, after) pair per axis."""

    stride: tuple[int, ...]
    padding: tuple[int, ...] | PaddingPairs
    dilation: tuple[int, ...]
    groups: int


_SEPARATORS = re.compile(r"\s*[x×X,]\s*")


def _memory_limit_bytes() -> int:
    """Half of physical memory: the check needs room for the implementation's own workspace."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 8 * 2**30
    return total // 2


def _parse_int_list(text: str, parameter: str, *examples: str) -> tuple[int, ...]:
    text = text.strip()
    like = _examples(parameter, examples)
    if not text:
        raise GeometryError(Parameter(parameter), " is empty; give sizes like ", *like)
    values = []
    for part in _SEPARATORS.split(text):
        if not re.fullmatch(r"[+-]?\d+", part):
            raise GeometryError(Parameter(parameter, text), f": {part!r} is not a whole number; give sizes like ", *like)
        values.append(int(part))
    return tuple(values)


def parse_shape(text: str | Sequence[int], parameter: str, example: str = "3x20x20") -> tuple[int, ...]:
    """Parse '3x20x20' (separators x, ×, or ',') or a sequence of ints into a tuple of sizes > 0."""
    if isinstance(text, str):
        values = _parse_int_list(text, parameter, example)
    else:
        try:
            values = tuple(_as_int(v, parameter, example) for v in text)
        except TypeError:  # e.g. `in = 20` in a config file: a number, not a shape
            raise GeometryError(
                Parameter(parameter, text), " is not a shape; give sizes like ", Parameter(parameter, example)
            ) from None
        if not values:
            raise GeometryError(Parameter(parameter), " is empty; give sizes like ", Parameter(parameter, example))
    for v in values:
        if v <= 0:
            raise GeometryError(
                Parameter(parameter, format_shape(values)), f" has a size of {v}; every size must be a "
                "positive whole number, like ", Parameter(parameter, example),
            )
    return values


def _as_int(value: object, parameter: str, example: str) -> int:
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise GeometryError(
            Parameter(parameter, repr(value)), " is not a whole number; give sizes like ", Parameter(parameter, example)
        )
    return operator.index(value)


def parse_axes(spec: AxisSpec, parameter: str, *, words: Sequence[str] = ()) -> tuple[int, ...] | str:
    """Parse one per-axis setting: an int, 'AxB' (one per axis), a sequence, or one of `words`."""
    if isinstance(spec, str):
        word = spec.strip().lower()
        if word in words:
            return word
        if re.fullmatch(r"[a-z_]+", word):
            allowed = ", ".join(["a whole number", "one per axis like 2x1", *words])
            raise GeometryError(Parameter(parameter, repr(spec)), f" is not understood; use {allowed}")
        return _parse_int_list(spec, parameter, "2", "2x1")
    if isinstance(spec, bool):
        raise GeometryError(*_not_a_whole_number(parameter, spec))
    if isinstance(spec, int):
        return (spec,)
    try:
        return tuple(_as_int(v, parameter, "2x1") for v in spec)
    except TypeError:
        raise GeometryError(*_not_a_whole_number(parameter, repr(spec))) from None


def _not_a_whole_number(parameter: str, shown: object) -> tuple[Part, ...]:
    return (Parameter(parameter, shown), " is not a whole number; use e.g. ", *_examples(parameter, ("2", "2x1")))


def _examples(parameter: str, examples: tuple[str, ...]) -> tuple[Part, ...]:
    """`stride=2 or stride=2x1`: the parameter given each example, in its audience's words."""
    parts: list[Part] = []
    for example in examples:
        parts += [" or "] if parts else []
        parts.append(Parameter(parameter, example))
    return tuple(parts)


@dataclass(frozen=True)
class LayerGeometry:
    """A validated conv layer: input, kernels and settings, with every per-axis value expanded.

    `padding` is the padding before each axis, and after it too unless `padding_after` says
    otherwise (TensorFlow's 'SAME' at a stride pads one more after). `padding_after` equal to
    `padding` is kept as None, so equal layers compare and hash equal however they were made, and
    `replace(geometry, padding=...)` of an evenly padded layer stays even.
    """

    in_shape: tuple[int, ...]  # (C, *spatial)
    kernel_shape: tuple[int, ...]  # (F, C // groups, *kernel)
    batch: int
    stride: tuple[int, ...]
    padding: tuple[int, ...]  # before each axis
    dilation: tuple[int, ...]
    groups: int
    dtype: Dtype
    padding_after: Optional[tuple[int, ...]] = None  # after each axis, when it differs from `padding`

    def __post_init__(self) -> None:
        if self.padding_after is not None and tuple(self.padding_after) == tuple(self.padding):
            object.__setattr__(self, "padding_after", None)

    @property
    def uneven_padding(self) -> bool:
        """Whether some axis is padded differently before and after."""
        return self.padding_after is not None

    @property
    def padding_end(self) -> tuple[int, ...]:
        """The padding after each axis."""
        return self.padding if self.padding_after is None else self.padding_after

    @property
    def padding_pairs(self) -> PaddingPairs:
        """(before, after) per axis."""
        return tuple(zip(self.padding, self.padding_end))

    @property
    def padding_totals(self) -> tuple[int, ...]:
        """before + after per axis."""
        return tuple(b + a for b, a in zip(self.padding, self.padding_end))

    @property
    def padding_shown(self) -> str:
        """'1x1' (one per axis), or per side '0,1x0,1' when some axis pads before and after unevenly."""
        return self.padding_text if self.uneven_padding else format_shape(self.padding)

    @property
    def padding_text(self) -> str:
        """'1', '1x0', or per side '0,1' / '0,1x1,2': as --padding and a suite file take it."""
        return format_padding(self.padding, self.padding_end)

    @property
    def ndim(self) -> int:
        """Number of spatial axes (1, 2 or 3)."""
        return len(self.in_shape) - 1

    @property
    def channels(self) -> int:
        return self.in_shape[0]

    @property
    def filters(self) -> int:
        return self.kernel_shape[0]

    @property
    def spatial(self) -> tuple[int, ...]:
        return self.in_shape[1:]

    @property
    def padded_spatial(self) -> tuple[int, ...]:
        return tuple(h + t for h, t in zip(self.spatial, self.padding_totals))

    @property
    def left_over(self) -> tuple[int, ...]:
        """Per axis, the padded rows past the last window the stride reaches (0: the stride tiles it)."""
        return tuple((hp - d * (k - 1) - 1) % s for hp, k, s, d in
                     zip(self.padded_spatial, self.kernel_size, self.stride, self.dilation))

    @property
    def kernel_size(self) -> tuple[int, ...]:
        return self.kernel_shape[2:]

    @property
    def axis_names(self) -> tuple[str, ...]:
        return SPATIAL_AXIS_NAMES[self.ndim]

    @functools.cached_property  # read on every call into the layer: worked out once
    def out_spatial(self) -> tuple[int, ...]:
        return tuple(
            output_size(h, k, s, p, d, a)
            for h, k, s, p, d, a in zip(self.spatial, self.kernel_size, self.stride, self.padding, self.dilation,
                                        self.padding_end)
        )

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, *self.in_shape)

    @property
    def w_shape(self) -> tuple[int, ...]:
        return self.kernel_shape

    @property
    def b_shape(self) -> tuple[int, ...]:
        return (self.filters,)

    @functools.cached_property
    def y_shape(self) -> tuple[int, ...]:
        return (self.batch, self.filters, *self.out_spatial)

    @property
    def multiply_adds(self) -> int:
        """Multiply-adds of one forward call at this batch: what a call costs, next to another's."""
        return math.prod(self.y_shape) * math.prod(self.w_shape[1:])

    def shape_of(self, tensor: TensorName) -> tuple[int, ...]:
        """The shape tensor O, dX, dK or db must have."""
        return {"O": self.y_shape, "dX": self.x_shape, "dK": self.w_shape, "db": self.b_shape}[tensor]

    def conv_settings(self) -> ConvSettings:
        """stride, padding, dilation and groups, as every implementation call takes them."""
        padding = self.padding_pairs if self.uneven_padding else self.padding
        return ConvSettings(stride=self.stride, padding=padding, dilation=self.dilation, groups=self.groups)

    def describe_fields(self) -> tuple[str, ...]:
        """('N=1', 'X 3x20x20', 'K 5x3x3x3', 'stride 1', ...): what `describe` joins, for
        renderers that break lines between fields."""
        return (
            f"N={self.batch}", f"X {format_shape(self.in_shape)}", f"K {format_shape(self.kernel_shape)}",
            f"stride {format_axes(self.stride)}", f"padding {self.padding_text}",
            f"dilation {format_axes(self.dilation)}", f"groups {self.groups}",
        )

    def describe(self) -> str:
        """One line: 'N=1  X 3x20x20  K 5x3x3x3  stride 1  padding 0  dilation 1  groups 1'."""
        return "  ".join(self.describe_fields())

    def brief(self) -> str:
        """Compact, e.g. 'N2 3x6x7 * 4x3x3x3 s2 p1' (stride, padding, dilation, groups, dtype).

        Settings at their defaults are left out.
        """
        parts = [f"N{self.batch}" if self.batch > 1 else "", format_shape(self.in_shape), "*", format_shape(self.kernel_shape)]
        if any(v != 1 for v in self.stride):
            parts.append(f"s{format_axes(self.stride)}")
        if any(self.padding_totals):
            parts.append(f"p{self.padding_text}")
        if any(v != 1 for v in self.dilation):
            parts.append(f"d{format_axes(self.dilation)}")
        if self.groups > 1:
            parts.append(f"g{self.groups}")
        if self.dtype != "float64":
            parts.append(self.dtype)
        return " ".join(p for p in parts if p)

    def changed_settings(self) -> dict[str, str]:
        """The settings beyond `in` and `kernels` that are not at their defaults, as a user writes
        them ('2', '2x1', 'float32'), keyed by the names of a suite file: what it takes to reproduce
        the layer with `convgrad check` or in a suite."""
        written = {
            "batch": (str(self.batch), "1"), "stride": (format_axes(self.stride), "1"),
            "padding": (self.padding_text, "0"), "dilation": (format_axes(self.dilation), "1"),
            "groups": (str(self.groups), "1"), "dtype": (self.dtype, "float64"),
        }
        return {key: value for key, (value, default) in written.items() if value != default}

    def check_flags(self) -> list[str]:
        """['--in', '3x8x8', '--kernels', '4x3x3x3', '--stride', '2']: the `convgrad check` flags
        that give this layer."""
        flags = ["--in", format_shape(self.in_shape), "--kernels", format_shape(self.kernel_shape)]
        return flags + [word for key, value in self.changed_settings().items() for word in (f"--{key}", value)]

    def settings(self) -> dict[str, object]:
        """The geometry as plain JSON-ready values, keyed by the names of a suite file."""
        return {
            "in": list(self.in_shape),
            "kernels": list(self.kernel_shape),
            "batch": self.batch,
            "stride": list(self.stride),
            "padding": [list(pair) for pair in self.padding_pairs] if self.uneven_padding else list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "dtype": self.dtype,
        }


def _expand(values: tuple[int, ...], ndim: int, parameter: str, text: str, minimum: int) -> tuple[int, ...]:
    if len(values) == 1:
        values = values * ndim
    elif len(values) != ndim:
        raise GeometryError(
            Parameter(parameter, text), f" has {len(values)} values but the input has {ndim} spatial "
            f"{'axis' if ndim == 1 else 'axes'}; give one value or {ndim} like ",
            Parameter(parameter, "x".join(["1"] * ndim)),
        )
    for v in values:
        if v < minimum:
            what = "zero or more" if minimum == 0 else "1 or more"
            raise GeometryError(Parameter(parameter, text), f" has {v}; each value must be {what}")
    return values


def resolve_geometry(
    in_shape: str | Sequence[int],
    kernel_shape: str | Sequence[int],
    *,
    batch: int = 1,
    stride: AxisSpec = 1,
    padding: PaddingSpec = 0,
    dilation: AxisSpec = 1,
    groups: int = 1,
    dtype: str = "float64",
    memory_limit_bytes: int | None = None,
) -> LayerGeometry:
    """Turn user-facing settings into a validated `LayerGeometry`, or raise `GeometryError`.

    `kernel_shape` is either the full kernel tensor shape (F, C/groups, *k) or (F, *k), in which
    case the depth C/groups is taken from `in_shape` and `groups`.
    """
    x_dims = parse_shape(in_shape, "in_shape", "3x20x20")
    k_dims = parse_shape(kernel_shape, "kernel_shape", "5x3x3x3")
    if len(x_dims) < 2 or len(x_dims) > 4:
        raise GeometryError(
            Parameter("in_shape", format_shape(x_dims)), f" has {len(x_dims)} sizes; give channels then 1 to 3 "
            "spatial sizes: CxL, CxHxW (e.g. ", Parameter("in_shape", "3x20x20"), ") or CxDxHxW",
        )
    ndim = len(x_dims) - 1
    channels = x_dims[0]

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise GeometryError(Parameter("batch", repr(batch)), ": the batch size must be a whole number of 1 or more")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise GeometryError(Parameter("groups", repr(groups)), ": groups must be a whole number of 1 or more")
    if dtype not in DTYPES:
        raise GeometryError(Parameter("dtype", repr(dtype)), " is not supported; use float64 or float32")

    if len(k_dims) == ndim + 1:
        if channels % groups:
            raise GeometryError(*_groups_message("C", channels, groups))
        k_dims = (k_dims[0], channels // groups, *k_dims[1:])
    elif len(k_dims) != ndim + 2:
        fix = f"{k_dims[0]}x{channels // groups if channels % groups == 0 else channels}x" + "x".join(["3"] * ndim)
        raise GeometryError(
            Parameter("kernel_shape", format_shape(k_dims)), f" has {len(k_dims)} sizes but ",
            Parameter("in_shape", format_shape(x_dims)), f" is {ndim}-D; give Fx(C/groups)x{'x'.join(['k'] * ndim)} like ",
            Parameter("kernel_shape", fix), f", or Fx{'x'.join(['k'] * ndim)}",
        )
    filters, depth = k_dims[0], k_dims[1]
    if channels % groups:
        raise GeometryError(*_groups_message("C", channels, groups))
    if filters % groups:
        raise GeometryError(*_groups_message("F", filters, groups))
    if depth * groups != channels:
        change: tuple[Part, ...]
        if groups == 1:
            change = ("use ", Parameter("kernel_shape", f"{filters}x{channels}x{format_shape(k_dims[2:])}"))
            if channels % depth == 0 and filters % (channels // depth) == 0:
                change += (" or ", Parameter("groups", channels // depth))
        else:
            change = ("use ", Parameter("kernel_shape", f"{filters}x{channels // groups}x{format_shape(k_dims[2:])}"),
                   " or change ", Parameter("groups"))
        raise GeometryError(
            f"kernels expect {depth * groups} input channels but ", Parameter("in_shape"), f" has {channels}; ", *change,
            parameter="kernel_shape",
        )

    stride_t = _expand(_numbers(parse_axes(stride, "stride"), "stride"), ndim, "stride", _text(stride), 1)
    dilation_t = _expand(_numbers(parse_axes(dilation, "dilation"), "dilation"), ndim, "dilation", _text(dilation), 1)
    kernel = k_dims[2:]
    before, after = _resolve_padding(padding, x_dims[1:], kernel, stride_t, dilation_t)

    names = SPATIAL_AXIS_NAMES[ndim]
    for name, h, k, p, a, d in zip(names, x_dims[1:], kernel, before, after, dilation_t):
        extent = d * (k - 1) + 1
        if extent > h + p + a:
            dilated = f"dilated kernel ({k} with dilation {d} spans {extent})" if d > 1 else f"kernel ({k})"
            padded = f"{h} + 2*{p}" if p == a else f"{h} + {p} + {a}"
            raise GeometryError(
                f"the {dilated} is larger than the padded input along {name} ({padded} = {h + p + a}); use a smaller ",
                Parameter("kernel_shape"), " or ", Parameter("dilation"), ", a larger ", Parameter("in_shape"),
                ", or more ", Parameter("padding"),
                parameter="kernel_shape",
            )

    geometry = LayerGeometry(
        in_shape=x_dims,
        kernel_shape=k_dims,
        batch=batch,
        stride=stride_t,
        padding=before,
        dilation=dilation_t,
        groups=groups,
        dtype=dtype,
        padding_after=after,
    )
    limit = _memory_limit_bytes() if memory_limit_bytes is None else memory_limit_bytes
    needed = memory_estimate_bytes(geometry)
    if needed > limit:
        raise GeometryError(
            f"checking this layer would need about {_gib(needed)} of memory (limit {_gib(limit)}); use a smaller ",
            Parameter("in_shape"), ", ", Parameter("batch"), " or ", Parameter("kernel_shape"),
        )
    return geometry


def _text(spec: AxisSpec) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, int):
        return str(spec)
    return format_shape(spec)


def _numbers(parsed: tuple[int, ...] | str, parameter: str) -> tuple[int, ...]:
    if isinstance(parsed, str):  # pragma: no cover - parse_axes without words never returns words
        raise GeometryError(Parameter(parameter, repr(parsed)), " is not understood; use a whole number like 1 or 2x1")
    return parsed


def _groups_message(axis: str, size: int, groups: int) -> tuple[Part, ...]:
    what = "input channels C" if axis == "C" else "kernels F"
    divisors = [g for g in range(1, size + 1) if size % g == 0]
    return (
        Parameter("groups", groups), f" does not divide the {size} {what}; use a ", Parameter("groups"),
        f" that divides both C and F (divisors of {size}: {', '.join(map(str, divisors[:8]))}"
        f"{', ...' if len(divisors) > 8 else ''})",
    )


def _resolve_padding(
    padding: PaddingSpec,
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(before, after) per axis, from a number, per-axis numbers, per-side numbers or a word."""
    ndim = len(spatial)
    sides = _padding_sides(padding)
    if sides is not None:
        pairs = _expand_sides(sides, ndim, _padding_text(padding))
        return tuple(b for b, _ in pairs), tuple(a for _, a in pairs)
    parsed = parse_axes(cast(AxisSpec, padding), "padding", words=("valid", "same"))  # no pairs: see above
    if parsed == "valid":
        return (0,) * ndim, (0,) * ndim
    if parsed == "same":  # TensorFlow's 'SAME': ceil(H / s) outputs, the odd pixel after
        same = [same_padding(h, k, s, d) for h, k, s, d in zip(spatial, kernel, stride, dilation)]
        if all(s == 1 for s in stride):  # where 'same' keeps the size, it is asked to pad both sides alike
            for name, k, d, (before, after) in zip(SPATIAL_AXIS_NAMES[ndim], kernel, dilation, same):
                if before != after:
                    raise GeometryError(
                        Parameter("padding", "same"), f" needs {plural(before + after, 'pixel')} along {name} (kernel {k}, "
                        f"dilation {d}), which cannot be split evenly on both sides; use an odd kernel size or give ",
                        Parameter("padding"), " as numbers, per side like ",
                        Parameter("padding", format_padding(*zip(*same))), " (before,after)",
                    )
        return tuple(b for b, _ in same), tuple(a for _, a in same)
    assert not isinstance(parsed, str)
    values = _expand(parsed, ndim, "padding", _padding_text(padding), 0)
    return values, values


_PER_SIDE = "before,after like 0,1 (every axis) or 0,1x1,2 (axis by axis)"


def _padding_text(spec: PaddingSpec) -> str:
    if isinstance(spec, (str, int)):
        return _text(spec)
    parts = []
    for value in spec:
        parts.append(str(value) if _is_number(value) else ",".join(str(v) for v in cast(Sequence[int], value)))
    return "x".join(parts)


def _padding_sides(spec: PaddingSpec) -> Optional[list[tuple[int, ...]]]:
    """Per-side padding: one or two numbers per axis, from text with a comma ('0,1', '0,1x1,2')
    or a sequence holding pairs ([[0, 1], [1, 2]]); None for any other spec."""
    if isinstance(spec, str):
        if "," not in spec:
            return None
        text = spec.strip()
        axes = re.split(r"\s*[x×X]\s*", text)
        sides = []
        for axis in axes:
            parts = [part.strip() for part in axis.split(",")]
            if any(not part for part in parts):
                raise GeometryError(
                    Parameter("padding", text), f" leaves a side empty; give {_PER_SIDE}, e.g. ", Parameter("padding", "0,1")
                )
            for part in parts:
                if not re.fullmatch(r"[+-]?\d+", part):
                    raise GeometryError(
                        Parameter("padding", text), f": {part!r} is not a whole number; give {_PER_SIDE}, e.g. ",
                        Parameter("padding", "0,1"),
                    )
            sides.append(tuple(int(part) for part in parts))
        return sides
    if isinstance(spec, int):
        return None
    try:
        items = list(spec)
    except TypeError:  # not a sequence: parse_axes names what it is
        return None
    if all(_is_number(v) for v in items):
        return None
    sides = []
    for value in items:
        if _is_number(value):
            sides.append((_as_int(value, "padding", "0,1"),))
            continue
        try:
            sides.append(tuple(_as_int(v, "padding", "0,1") for v in cast(Sequence[int], value)))
        except TypeError:
            raise GeometryError(
                Parameter("padding", repr(spec)), " is not understood; give a number per axis or a "
                "(before, after) pair per axis, like ", Parameter("padding", "0,1x0,1"),
            ) from None
    return sides


def _expand_sides(sides: list[tuple[int, ...]], ndim: int, text: str) -> list[tuple[int, int]]:
    """One (before, after) pair per axis; a single number means both sides."""
    for axis in sides:
        if len(axis) > 2:
            raise GeometryError(Parameter("padding", text), f" has {len(axis)} numbers for one axis; give {_PER_SIDE}")
    if len(sides) == 1:
        sides = sides * ndim
    elif len(sides) != ndim:
        example = "x".join(["0,1"] * ndim)
        raise GeometryError(
            Parameter("padding", text), f" has {len(sides)} axes but the input has {ndim} spatial "
            f"{'axis' if ndim == 1 else 'axes'}; give one or {ndim} like ", Parameter("padding", example),
        )
    pairs = [(axis[0], axis[-1]) for axis in sides]
    for pair in pairs:
        for v in pair:
            if v < 0:
                raise GeometryError(Parameter("padding", text), f" has {v}; each value must be zero or more")
    return pairs


def memory_estimate_bytes(geometry: LayerGeometry) -> int:
    """Rough peak memory of one check, from the sizes alone (nothing is allocated).

    Counts the layer's tensors and gradients (in float64, where the comparison happens), and the
    windowed copies the reference layer makes for its forward pass and for the full correlation
    that gives dX.
    """
    n, c, f = geometry.batch, geometry.channels, geometry.filters
    x = n * math.prod(geometry.in_shape)
    y = n * f * math.prod(geometry.out_spatial)
    w = math.prod(geometry.kernel_shape)
    k = math.prod(geometry.kernel_size)
    padded = math.prod(geometry.padded_spatial)
    forward_windows = n * c * math.prod(geometry.out_spatial) * k
    dx_windows = n * f * padded * k
    elements = 6 * (x + y + w + f) + 2 * max(forward_windows, dx_windows)
    return 8 * elements


def _gib(n_bytes: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= size:
            return f"{n_bytes / size:.1f} {unit}"
    return f"{n_bytes} bytes"
