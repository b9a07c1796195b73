"""Colour classes for coloured finite differences: coordinates of one colour never share an output.

Input position i of one spatial axis is read by output o through tap u when s*o + d*u = i + p.
Two input positions conflict when one output window reads both, and then they differ by d*j with
0 < |j| < k. Colouring position i by ((i + p) // d) mod k therefore never gives two conflicting
positions the same colour, and k colours per axis is also the least possible: the k taps of one
window conflict pairwise. So dX needs (C/groups) * prod(k) colours whatever the stride, dilation,
size or batch (a colouring by distance alone would need prod(d*(k-1) + 1)). Smaller periods are
tried first, and every colouring is verified exactly against the layer's own windows before use.
One axis gets a longer period than it needs (the shortest that works: k+1 at stride 1, more with
a stride), so every colour leaves outputs that nothing perturbed
reads: those are what the locality check watches.

Colours across channels: every filter of a group reads every channel of the group, so channels of
one group need different colours, while channels of different groups (and different batch items)
never share an output. dK: kernel element (f, c', u) only moves output channel f, so one colour
holds element (c', u) of every kernel. db: one colour holds every bias.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from convgrad.geometry import LayerGeometry, output_size

__all__ = ["AxisColouring", "InputColouring", "axis_colouring", "input_colouring", "axis_windows"]


def axis_windows(size: int, kernel: int, stride: int, padding: int, dilation: int) -> np.ndarray:
    """(outputs, k) input positions each output window reads along one axis; -1 where it reads padding."""
    out = output_size(size, kernel, stride, padding, dilation)
    positions = stride * np.arange(out)[:, None] + dilation * np.arange(kernel)[None, :] - padding
    return np.where((positions >= 0) & (positions < size), positions, -1)


def _is_proper(colours: np.ndarray, windows: np.ndarray) -> bool:
    """True when no window reads two positions of the same colour (the exact conflict check)."""
    for row in windows:
        read = colours[row[row >= 0]]
        if len(np.unique(read)) != len(read):
            return False
    return True


@dataclass(frozen=True)
class AxisColouring:
    """The colour of every input position along one axis, and the outputs each colour reaches."""

    colours: np.ndarray  # (size,) int colour of each input position
    count: int
    windows: np.ndarray  # (outputs, k), see axis_windows

    def positions(self, colour: int) -> np.ndarray:
        """(size,) bool: the input positions of this colour."""
        return self.colours == colour

    def reached(self, colour: int) -> np.ndarray:
        """(outputs,) bool: the outputs whose window reads a position of this colour."""
        read = np.where(self.windows >= 0, self.colours[np.maximum(self.windows, 0)], -1)
        return np.any(read == colour, axis=1)


def axis_colouring(
    size: int, kernel: int, stride: int, padding: int, dilation: int, *, leave_gaps: bool = False
) -> AxisColouring | None:
    """The colouring with the fewest colours among ((i + p) // d) mod P, verified exactly.

    With `leave_gaps`, the fewest colours such that every colour also leaves some outputs unread,
    so that a perturbation has outputs to watch; None when the axis is too short for that.
    """
    windows = axis_windows(size, kernel, stride, padding, dilation)
    phase = (np.arange(size) + padding) // dilation
    for period in range(1, max(kernel, int(phase[-1]) + 1) + 1):
        colouring = AxisColouring(colours=phase % period, count=period, windows=windows)
        if not _is_proper(colouring.colours, windows):
            continue
        if not leave_gaps:
            return colouring
        if all(not colouring.reached(c).all() for c in range(period) if colouring.positions(c).any()):
            return colouring
    if leave_gaps:
        return None
    raise AssertionError("((i + p) // d) mod k is always a proper colouring")  # pragma: no cover


@dataclass(frozen=True)
class InputColouring:
    """Colours of the input x: (channel within its group, one colour per spatial axis)."""

    depth: int  # channels per group
    axes: tuple[AxisColouring, ...]

    @property
    def count(self) -> int:
        return self.depth * math.prod(a.count for a in self.axes)

    @functools.cached_property
    def _used(self) -> tuple[int, ...]:
        return tuple(c for c in range(self.count) if self.spatial_mask(c).any())

    def used(self) -> list[int]:
        """The colours that hold at least one position (tiny axes may leave some empty)."""
        return list(self._used)

    def split(self, colour: int) -> tuple[int, tuple[int, ...]]:
        """Colour number -> (channel within group, colour per axis)."""
        channel, rest = divmod(colour, math.prod(a.count for a in self.axes))
        return channel, tuple(int(i) for i in np.unravel_index(rest, [a.count for a in self.axes]))

    def spatial_mask(self, colour: int) -> np.ndarray:
        """(*spatial) bool: the positions of this colour (in its channels of every group)."""
        _, per_axis = self.split(colour)
        return _outer([a.positions(c) for a, c in zip(self.axes, per_axis)])

    def reached(self, colour: int) -> np.ndarray:
        """(*out) bool: outputs read by some position of this colour (in every filter of its groups)."""
        _, per_axis = self.split(colour)
        return _outer([a.reached(c) for a, c in zip(self.axes, per_axis)])

    def mask(self, colour: int, channels: int) -> np.ndarray:
        """(C, *spatial) bool: the coordinates of x of this colour, for one batch item."""
        channel, _ = self.split(colour)
        in_colour = (np.arange(channels) % self.depth) == channel
        return in_colour.reshape(-1, *([1] * len(self.axes))) & self.spatial_mask(colour)[None]


def _outer(masks: list[np.ndarray]) -> np.ndarray:
    result = masks[0]
    for m in masks[1:]:
        result = result[..., None] & m
    return result


@functools.lru_cache(maxsize=32)  # asked for several times per tensor; a geometry is hashable
def input_colouring(geometry: LayerGeometry) -> InputColouring:
    """The colouring of x for this layer: (C/groups) * prod(k) colours, more on one axis (the
    shortest period there that leaves every colour some unread outputs).

    The extra colours on one axis leave outputs that no perturbed coordinate reads, so that every
    perturbation can be verified to be local (with exactly k colours per axis every output reads
    one perturbed coordinate). Axes too short for that are left as they are.
    """
    settings = list(
        zip(geometry.spatial, geometry.kernel_size, geometry.stride, geometry.padding, geometry.dilation)
    )
    axes = [axis_colouring(*axis) for axis in settings]
    for a in reversed(range(len(axes))):
        gapped = axis_colouring(*settings[a], leave_gaps=True)
        if gapped is not None:
            axes[a] = gapped
            break
    return InputColouring(depth=geometry.channels // geometry.groups, axes=tuple(axes))  # type: ignore[arg-type]
