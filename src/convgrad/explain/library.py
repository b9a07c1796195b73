"""dX under the names libraries give it: the transposed convolution of dO with the same kernels.

Only what a layer's geometry fixes, with the crop torch's single padding per axis cannot do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from convgrad.geometry import LayerGeometry

__all__ = ["TransposedCall", "transposed_call", "transpose_call"]


def _value(values: tuple[int, ...]) -> int | tuple[int, ...]:
    return values[0] if len(set(values)) == 1 else values


@dataclass(frozen=True)
class TransposedCall:
    """torch.nn.functional.conv_transpose{n}d(dO, K, **arguments), then `crop_after` positions off
    the end of each spatial axis."""

    arguments: dict[str, int | tuple[int, ...]]  # those that differ from torch's defaults
    crop_after: tuple[int, ...]


def transposed_call(g: LayerGeometry, trailing_zeros: tuple[int, ...]) -> Optional[TransposedCall]:
    """How torch's transposed convolution gives dX; None when it cannot.

    torch crops `padding` off both ends of the full transposed convolution after appending
    `output_padding` positions at the end; dX appends the positions no window reached
    (`trailing_zeros`), then crops the padding before and after. So padding = the padding before,
    and output_padding = trailing − after + before, which torch takes in [0, max(stride,
    dilation)); a negative one (TensorFlow's 'same', one more after) is 0 and a crop at the end."""
    before, after = zip(*g.padding_pairs)
    wanted = tuple(t - a + b for t, b, a in zip(trailing_zeros, before, after))
    if any(op >= max(s, d) for op, s, d in zip(wanted, g.stride, g.dilation)):
        return None
    arguments = {
        "stride": _value(g.stride), "padding": _value(tuple(before)),
        "output_padding": _value(tuple(max(op, 0) for op in wanted)), "groups": g.groups, "dilation": _value(g.dilation),
    }
    defaults = {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "dilation": 1}
    return TransposedCall(
        arguments={name: value for name, value in arguments.items() if value != defaults[name]},
        crop_after=tuple(max(-op, 0) for op in wanted),
    )


def transpose_call(g: LayerGeometry, trailing_zeros: tuple[int, ...]) -> Optional[str]:
    """'conv_transpose2d(dO, K, stride=2, padding=1)', with '[:, :, :, :-1]' when the end needs a
    crop; None (see transposed_call)."""
    call = transposed_call(g, trailing_zeros)
    if call is None:
        return None
    shown = "".join(f", {name}={value}" for name, value in call.arguments.items())
    crop = "" if not any(call.crop_after) else "[:, :, " + ", ".join(f":-{c}" if c else ":" for c in call.crop_after) + "]"
    return f"conv_transpose{g.ndim}d(dO, K{shown}){crop}"
