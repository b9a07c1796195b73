"""db's classic mistakes: dO summed over the wrong axes, or the right axes of the wrong values.

The gradient of the bias is dO summed over the batch and every output position, one value per
kernel (shape F). A layer that sums over other axes returns another shape, and the shape tells
which axes it kept: `shape_readings` names them by the layer's own sizes (with a batch of 5, 5x1x1x1
is one value per image, the 1s kept by keepdims=True). Sizes can coincide (N == F, H' == W'): then
every reading that fits is returned, and none is picked. When the shape comes out right all the
same (N == F, and db summed over the kernels instead of the batch), only the values tell:
`value_mistakes` computes each candidate from dO, for diagnosis.py to match against the values
the layer returned.

An average over the right axes is the right db times a constant: diagnosis.py names that factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from convgrad.geometry import LayerGeometry, format_shape

__all__ = ["Reading", "shape_readings", "shape_message", "value_mistakes", "right_bias_gradient", "SHORT", "KINDS"]

_AXIS_WORDS = {"L": "length", "D": "depth", "H": "height", "W": "width"}

# The axes a wrong db kept, as blocks of dO's axes -> (kind, what it is, the mistake in a few words).
_KEPT: dict[frozenset[str], tuple[str, str, str]] = {
    frozenset({"batch", "kernels"}): (
        "db_per_image_and_kernel",
        "dO summed over the output positions but not over the batch, one value per image and kernel",
        "db was not summed over the batch",
    ),
    frozenset({"kernels", "positions"}): (
        "db_per_kernel_and_position",
        "dO summed over the batch (or one image's dO) but not over the output positions, one value per kernel "
        "and position",
        "db was not summed over the output positions",
    ),
    frozenset({"batch", "kernels", "positions"}): (
        "db_not_summed", "dO itself, not summed over any axis", "db is dO, not summed",
    ),
    frozenset({"batch"}): (
        "db_per_image",
        "dO summed over the kernels and the output positions instead of the batch and the positions, "
        "one value per image",
        "db was summed over the kernels instead of the batch",
    ),
    frozenset({"batch", "positions"}): (
        "db_per_image_and_position",
        "dO summed over the kernels only, one value per image and output position",
        "db was summed over the kernels only",
    ),
    frozenset({"positions"}): (
        "db_per_position",
        "dO summed over the batch and the kernels but not over the output positions, one value per position",
        "db was summed over the batch and the kernels, not the output positions",
    ),
    frozenset(): (
        "db_total", "dO summed over every axis, one number for all the kernels", "db was summed over every axis",
    ),
    frozenset({"kernels"}): (
        "db_shape", "the right sums, one per kernel, in another shape", "db has the right values in another shape",
    ),
}

# The mistakes found by value (the shape is right), in a few words, after "looks like".
SHORT = {
    "db_per_image": _KEPT[frozenset({"batch"})][2],
    "db_per_image_mean": "db was averaged over the kernels instead of summed over the batch",
    "db_channels_last_axes": "db was summed over the axes of channels-last dO",
    "db_first_image": "db holds the first image's dO only",
    "db_last_image": "db holds the last image's dO only (= instead of += in a loop)",
    "db_last_position": "db holds the last output position's dO only (= instead of += in a loop)",
    "db_absolute": "db sums |dO| instead of dO",
}

KINDS = frozenset({*SHORT, *(kind for kind, _, _ in _KEPT.values()), "db_channels_last_axes", "db_wrong_axes"})


@dataclass(frozen=True)
class _Axis:
    symbol: str  # "N", "F", "H'"
    size: int
    block: str  # "batch", "kernels" or "positions"
    words: str  # "the batch size N"


@dataclass(frozen=True)
class Reading:
    """One way a wrongly shaped db comes from dO: the axes it kept, and what that sum is."""

    kind: str
    kept: str  # its axes by name: "N x F"; "one number" when it kept none
    sizes: str  # "5 is the batch size N, 4 the number of kernels F"
    what: str
    code: str  # "dO.sum(axis=(2, 3))"
    short: str


def _axes(geometry: LayerGeometry) -> list[_Axis]:
    """dO's axes, N x F x spatial, with what each one is."""
    n, f, *out = geometry.y_shape
    axes = [_Axis("N", n, "batch", "the batch size N"), _Axis("F", f, "kernels", "the number of kernels F")]
    for name, size in zip(geometry.axis_names, out):
        axes.append(_Axis(f"{name}'", size, "positions", f"the output {_AXIS_WORDS[name]} {name}'"))
    return axes


def _axis_text(axes: Sequence[int]) -> str:
    """An axis argument as written in code: 1, or (0, 2, 3)."""
    return str(axes[0]) if len(axes) == 1 else str(tuple(axes))


def _layout_text(axes: Sequence[_Axis]) -> str:
    return " x ".join(a.symbol for a in axes)


def right_bias_gradient(geometry: LayerGeometry) -> str:
    """The sentence that says what db is, with the code."""
    axes = _axes(geometry)
    summed = tuple(i for i, a in enumerate(axes) if a.block != "kernels")
    return (
        f"db sums dO over the batch and every output position, one value per kernel: "
        f"db = dO.sum(axis={_axis_text(summed)}) for dO laid out {_layout_text(axes)}."
    )


# --- By shape -------------------------------------------------------------------------------


def _orders(axes: list[_Axis]) -> list[tuple[list[_Axis], str]]:
    """dO's axes in the orders a layer may have them: channels first, and channels last."""
    last = [axes[0], *axes[2:], axes[1]]
    return [(axes, ""), (last, " on channels-last dO")]


def _fits(order: list[_Axis], kept: frozenset[str], shape: tuple[int, ...]) -> bool:
    """Whether dO (axes in `order`) summed over every block not in `kept` has `shape`: with every
    axis kept as 1 (keepdims=True), or, whatever axes of size 1 it has, the sizes of the rest."""
    if len(shape) == len(order):
        return shape == tuple(a.size if a.block in kept else 1 for a in order)
    return tuple(s for s in shape if s != 1) == tuple(a.size for a in order if a.block in kept and a.size != 1)


def _ones_text(shape: tuple[int, ...], rank: int) -> str:
    ones = shape.count(1)
    if not ones:
        return ""
    if len(shape) == rank:  # every axis still there: the summed ones kept as 1
        return "the 1s are the summed axes, kept by keepdims=True" if ones > 1 else \
            "the 1 is a summed axis, kept by keepdims=True"
    return "the 1s are axes of size 1" if ones > 1 else "the 1 is an axis of size 1"


def _code(order: list[_Axis], kept: frozenset[str], shape: tuple[int, ...]) -> str:
    summed = tuple(i for i, a in enumerate(order) if a.block not in kept)
    if not summed:
        return "dO itself"
    axis = "" if len(summed) == len(order) else f"axis={_axis_text(summed)}"
    if len(shape) == len(order) and shape.count(1):
        return f"dO.sum({axis + ', ' if axis else ''}keepdims=True)"
    code = f"dO.sum({axis})"
    return f"{code} in shape {format_shape(shape)}" if shape.count(1) else code


def shape_readings(geometry: LayerGeometry, shape: Sequence[int]) -> list[Reading]:
    """Every way of summing dO over whole blocks of axes (the batch, the kernels, all the output
    positions) that gives `shape` (keepdims or not), and summing over the axes of channels-last dO
    on channels-first dO; none when the shape is the bias's own."""
    shape = tuple(int(s) for s in shape)
    if shape == tuple(geometry.b_shape):
        return []
    axes = _axes(geometry)
    present = {a.block for a in axes if a.size > 1}
    readings: list[Reading] = []
    seen: set[frozenset[str]] = set()
    for kept_blocks, (kind, what, short) in _KEPT.items():
        kept = kept_blocks & present
        if kept in seen:
            continue  # a block of size 1 makes two readings one
        for order, where in _orders(axes):
            if _fits(order, kept, shape):
                seen.add(kept)
                if kept == frozenset({"kernels"} & present):
                    kind, what, short = _KEPT[frozenset({"kernels"})]
                readings.append(_reading(kind, what + where, short, order, kept, shape))
                break
    readings.extend(_channels_last_reading(geometry, axes, shape))
    return readings


def _reading(
    kind: str, what: str, short: str, order: list[_Axis], kept: frozenset[str], shape: tuple[int, ...]
) -> Reading:
    named = [a for a in order if a.block in kept and a.size != 1]
    sizes = [f"{a.size} is {a.words}" if i == 0 else f"{a.size} {a.words}" for i, a in enumerate(named)]
    ones = _ones_text(shape, len(order))
    text = ", ".join(sizes) + (f"; {ones}" if ones and sizes else ones)
    kept_text = _layout_text(named) or "one number"
    shown = f"shape {kept_text}" if named else kept_text
    return Reading(kind, kept_text, text, what, _code(order, kept, shape), f"{short} ({shown})")


def _channels_last_reading(geometry: LayerGeometry, axes: list[_Axis], shape: tuple[int, ...]) -> list[Reading]:
    """dO summed over (0, 1, 2), the batch and positions of channels-last dO, on channels-first dO:
    the last spatial axis is kept."""
    last = axes[-1]
    if geometry.ndim < 2 or last.size == 1 or tuple(s for s in shape if s != 1) != (last.size,):
        return []
    summed = tuple(range(len(axes) - 1))
    keepdims = len(shape) == len(axes)
    if keepdims and shape[-1] != last.size:
        return []
    code = f"dO.sum(axis={summed}{', keepdims=True' if keepdims else ''})"
    ones = _ones_text(shape, len(axes))
    return [Reading(
        "db_channels_last_axes", last.symbol, f"{last.size} is {last.words}" + (f"; {ones}" if ones else ""),
        f"dO summed over axes {summed}, the batch and the positions of channels-last dO "
        f"({_layout_text([axes[0], *axes[2:], axes[1]])}), on dO laid out {_layout_text(axes)}: it "
        f"sums over the kernels and keeps {last.symbol}",
        code,
        f"{SHORT['db_channels_last_axes']} (shape {last.symbol})",
    )]


def shape_message(geometry: LayerGeometry, shape: Sequence[int], readings: Sequence[Reading]) -> tuple[str, str, str]:
    """(kind, message, short) for a db of a wrong shape that fits `readings` (at least one)."""
    shown = f"has shape {format_shape(shape)}" if len(shape) else "is a scalar"
    values = f"{geometry.filters} values, one per kernel" if geometry.filters > 1 else "one value"
    head = f"db {shown} where the bias has {values}"
    right = right_bias_gradient(geometry)
    if len(readings) == 1:
        r = readings[0]
        sizes = f": {r.sizes}" if r.sizes else ""
        return r.kind, f"{head}{sizes}. It looks like {r.what} ({r.code}). {right}", r.short
    ways = "; or ".join(
        f"as {r.kept}{f' ({r.sizes})' if r.sizes else ''}, {r.what} ({r.code})" for r in readings
    )
    kept = " or ".join(r.kept for r in readings)
    return (
        "db_wrong_axes",
        f"{head}, and its sizes fit {len(readings)} readings: {ways}. {right}",
        f"db was summed over the wrong axes (shape {kept})",
    )


# --- By value, when the shape is right ----------------------------------------------------

Candidate = tuple[str, Callable[[], np.ndarray], str]  # kind, the values, message


def value_mistakes(geometry: LayerGeometry, dy: np.ndarray) -> Iterator[Candidate]:
    """The classic wrong db's that have the bias's shape, each computed from dO (N x F x ...)."""
    n, f, *out = dy.shape
    spatial = tuple(range(2, dy.ndim))
    per_image = _axis_text(tuple(a - 1 for a in spatial))  # an image's positions, in dO[0]
    right = right_bias_gradient(geometry)
    layout = _layout_text(_axes(geometry))
    if n == f > 1:
        others = tuple(range(1, dy.ndim))
        coincide = f"its shape is right only because the batch size N = {n} equals the number of kernels F"
        yield (
            "db_per_image",
            lambda: dy.sum(axis=others),
            f"db is dO summed over the kernels and the output positions, one value per image "
            f"(dO.sum(axis={_axis_text(others)})), not over the batch and the positions: {coincide}. {right}",
        )
        yield (
            "db_per_image_mean",
            lambda: dy.mean(axis=others),
            f"db is the mean of dO over the kernels and the output positions, one value per image "
            f"(dO.mean(axis={_axis_text(others)})), not the sum over the batch and the positions: {coincide}. {right}",
        )
    if out and out[-1] == f > 1:
        summed = tuple(range(dy.ndim - 1))
        last = f"{geometry.axis_names[-1]}'"
        yield (
            "db_channels_last_axes",
            lambda: dy.sum(axis=summed),
            f"db is dO summed over axes {summed} (dO.sum(axis={summed})), the batch and the positions "
            f"of channels-last dO; on dO laid out {layout} that sums over the kernels and keeps {last}, "
            f"whose size {f} happens to be the number of kernels F. {right}",
        )
    if n > 1:
        yield (
            "db_first_image",
            lambda: dy[0].sum(axis=tuple(a - 1 for a in spatial)),
            f"db is dO of the first image only, summed over its output positions "
            f"(dO[0].sum(axis={per_image})): every image of the batch adds the same "
            f"bias, so db adds up all {n} images. {right}",
        )
        yield (
            "db_last_image",
            lambda: dy[-1].sum(axis=tuple(a - 1 for a in spatial)),
            f"db is dO of the last image only (dO[-1].sum(axis={per_image})), as "
            f"when a loop over the images sets db (db = ...) instead of adding to it (db += ...). {right}",
        )
    if math.prod(out) > 1:
        corner: tuple[int | slice, ...] = (slice(None), slice(None), *(-1,) * len(out))
        yield (
            "db_last_position",
            lambda: dy[corner].sum(axis=0),
            f"db is dO at the last output position only, summed over the batch "
            f"(dO[:, :, {', '.join('-1' for _ in out)}].sum(axis=0)), as when a loop over the output "
            f"positions sets db (db = ...) instead of adding to it (db += ...). {right}",
        )
    yield (
        "db_absolute",
        lambda: np.abs(dy).sum(axis=(0, *spatial)),
        f"db sums |dO| (np.abs(dO).sum(axis={_axis_text((0, *spatial))})): sum dO itself, signs included. {right}",
    )
