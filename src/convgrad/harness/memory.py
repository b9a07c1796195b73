"""Fresh copies of an input in a chosen memory layout: same shape and values, other strides.

A layer that builds views from the shape alone (as_strided, reshape of a view, a C pointer)
assumes C order; the call protocol hands it inputs that are not, and compares the results.
Negative strides are not among them: torch.from_numpy refuses them outright, so a correct layer
wrapping torch would fail loudly on an input no real pipeline hands it, and a loud refusal is not
the silent wrong gradient this is looking for.
"""

from __future__ import annotations

from typing import Callable, Literal, Mapping

import numpy as np

__all__ = ["MemoryLayout", "fresh_copy", "NON_CONTIGUOUS", "describe_layouts"]

MemoryLayout = Literal["C order", "channels last", "transposed view", "Fortran order", "step slice", "channel slice"]
Copier = Callable[[np.ndarray], np.ndarray]


def _transposed_view(a: np.ndarray) -> np.ndarray:
    """The last two axes swapped in memory, swapped back in the view."""
    if a.ndim < 2:
        return _step_slice(a)
    return np.array(np.swapaxes(a, -1, -2), order="C").swapaxes(-1, -2)


def _channels_last(a: np.ndarray) -> np.ndarray:
    """Axis 1 (channels) stored last, as torch's channels_last and NHWC code keep activations."""
    if a.ndim < 3:
        return _step_slice(a)
    return np.moveaxis(np.array(np.moveaxis(a, 1, -1), order="C"), -1, 1)


def _step_slice(a: np.ndarray) -> np.ndarray:
    """Every other element of a buffer twice as long along the last axis."""
    if a.ndim == 0:
        return a.copy()
    buffer = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), dtype=a.dtype)
    buffer[..., ::2] = a
    return buffer[..., ::2]


def _channel_slice(a: np.ndarray) -> np.ndarray:
    """Channels 2.. of an array with 3 more channels, as a concatenation's output is sliced: each
    item and channel is contiguous, but items lie further apart than one item's size."""
    if a.ndim < 3:
        return _step_slice(a)
    wide = np.zeros((a.shape[0], a.shape[1] + 3, *a.shape[2:]), dtype=a.dtype)
    wide[:, 2 : 2 + a.shape[1]] = a
    return wide[:, 2 : 2 + a.shape[1]]


def _c_order(a: np.ndarray) -> np.ndarray:
    return np.array(a, order="C")


def _fortran_order(a: np.ndarray) -> np.ndarray:
    return np.array(a, order="F")


# Each builds a new array: np.ascontiguousarray and its kin return their argument (or a view of it)
# when it already qualifies, as a (4, 3, 3, 1) kernel does for the transposed view.
_COPIERS: dict[MemoryLayout, Copier] = {
    "C order": _c_order,
    "channels last": _channels_last,
    "transposed view": _transposed_view,
    "Fortran order": _fortran_order,
    "step slice": _step_slice,
    "channel slice": _channel_slice,
}

# The layouts of the protocol's non-contiguous calls: activations channels last (the most common
# layout after C order) then in Fortran order, kernels the other way round; then what a network
# hands a layer: x and dy in different layouts (a gradient back through a reshape is in C order
# whatever x is), channel slices of a wider array (a concatenation's output), and step slices
# (a strided shortcut written as x[:, :, ::2, ::2]).
NON_CONTIGUOUS: tuple[dict[str, MemoryLayout], ...] = (
    {"x": "channels last", "w": "Fortran order", "b": "step slice", "dy": "channels last"},
    {"x": "Fortran order", "w": "transposed view", "b": "step slice", "dy": "transposed view"},
    {"x": "channels last", "dy": "channel slice"},
    {"x": "channel slice", "dy": "channels last"},
    {"x": "step slice", "dy": "step slice"},
)


def fresh_copy(a: np.ndarray, layout: MemoryLayout = "C order") -> np.ndarray:
    """A new array equal to `a` in `layout`; never a view of `a`, whatever its shape."""
    return _COPIERS[layout](a)


def describe_layouts(layouts: Mapping[str, MemoryLayout]) -> str:
    """'x as a transposed view, w in Fortran order, ...'."""
    words = {"transposed view": "as a transposed view", "Fortran order": "in Fortran order",
             "step slice": "as a step slice", "C order": "in C order", "channels last": "channels last",
             "channel slice": "as a channel slice of a wider array"}
    return ", ".join(f"{name} {words[layout]}" for name, layout in layouts.items())
