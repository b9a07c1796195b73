"""dX under the names libraries give it: the transposed convolution of dO with the same kernels.

Only what a layer's geometry fixes: torch's conv_transpose takes one padding per axis, so a layer
padded differently before and after has no such call.
"""

from __future__ import annotations

from typing import Optional

from convgrad.geometry import LayerGeometry

__all__ = ["transpose_arguments", "transpose_call"]


def _value(values: tuple[int, ...]) -> int | tuple[int, ...]:
    return values[0] if len(set(values)) == 1 else values


def transpose_arguments(g: LayerGeometry, trailing_zeros: tuple[int, ...]) -> Optional[dict[str, int | tuple[int, ...]]]:
    """The keywords of torch.nn.functional.conv_transpose{1,2,3}d(dO, K, ...) that give dX, those
    that differ from torch's defaults only; None when the padding differs before and after.
    `trailing_zeros` are the positions of X no window reached (torch's output_padding)."""
    if g.uneven_padding:
        return None
    arguments = {
        "stride": _value(g.stride), "padding": _value(g.padding), "output_padding": _value(trailing_zeros),
        "groups": g.groups, "dilation": _value(g.dilation),
    }
    defaults = {"stride": 1, "padding": 0, "output_padding": 0, "groups": 1, "dilation": 1}
    return {name: value for name, value in arguments.items() if value != defaults[name]}


def transpose_call(g: LayerGeometry, trailing_zeros: tuple[int, ...]) -> Optional[str]:
    """'conv_transpose2d(dO, K, stride=2, padding=1)', or None (see transpose_arguments)."""
    arguments = transpose_arguments(g, trailing_zeros)
    if arguments is None:
        return None
    shown = "".join(f", {name}={value}" for name, value in arguments.items())
    return f"conv_transpose{g.ndim}d(dO, K{shown})"
