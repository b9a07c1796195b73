"""Colour classes for coloured finite differences: coordinates of one colour never share an output.

Input position i of one spatial axis is read by output o through tap u when s*o + d*u = i + p.
Two input positions conflict when one output window reads both, and then they differ by d*j with
0 < |j| < k. Colouring position i by ((i + p) // d) mod k therefore never gives two conflicting
positions the same colour, and k colours per axis is also the least possible: the k taps of one
window conflict pairwise. So dX needs (C/groups) * prod(k) colours whatever the stride, dilation,
size or batch (a colouring by distance alone would need prod(d*(k-1) + 1)). Smaller periods are
tried first, and every colouring is verified exactly against the layer's own windows before use.
A colour with k colours per axis reaches every output, which would leave the locality check
nothing to watch. So each such colour gives up one coordinate, its hole: the outputs that read the
hole read nothing else of the colour (the colouring is proper), so they stay unread and are
watched. The holes, spread apart, are perturbed in a few extra colours of their own, packed so
that no two share an output and each leaves outputs unread as well. The ResNet-50 3x3 layer has
64 x 9 colours and 2 extra ones, where a longer period on one axis would need 64 x 12.

Colours across channels: every filter of a group reads every channel of the group, so channels of
one group need different colours, while channels of different groups (and different batch items)
never share an output. dK: kernel element (f, c', u) only moves output channel f, so one colour
holds element (c', u) of every kernel. db: one colour holds every bias.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from convgrad.geometry import LayerGeometry, output_size

__all__ = ["AxisColouring", "InputColouring", "WatchedOutputs", "axis_colouring", "input_colouring", "axis_windows"]

Position = tuple[int, ...]  # a spatial position of x, one index per axis


def axis_windows(
    size: int, kernel: int, stride: int, padding: int, dilation: int, padding_after: Optional[int] = None
) -> np.ndarray:
    """(outputs, k) input positions each output window reads along one axis; -1 where it reads
    padding (`padding` before the input, `padding_after` after it, the same unless given)."""
    out = output_size(size, kernel, stride, padding, dilation, padding_after)
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

    @functools.cached_property
    def readers(self) -> np.ndarray:
        """(size, outputs) bool: which outputs read each input position."""
        reads = np.zeros((len(self.colours), len(self.windows)), dtype=bool)
        outputs, _ = np.nonzero(self.windows >= 0)
        reads[self.windows[self.windows >= 0], outputs] = True
        return reads

    @functools.cached_property
    def conflicts(self) -> np.ndarray:
        """(size, size) bool: the positions some window reads together with each position."""
        readers = self.readers.astype(np.int64)
        return (readers @ readers.T) > 0


def axis_colouring(
    size: int, kernel: int, stride: int, padding: int, dilation: int, padding_after: Optional[int] = None
) -> AxisColouring:
    """The colouring with the fewest colours among ((i + p) // d) mod P, verified exactly."""
    windows = axis_windows(size, kernel, stride, padding, dilation, padding_after)
    phase = (np.arange(size) + padding) // dilation
    for period in range(1, max(kernel, int(phase[-1]) + 1) + 1):
        colouring = AxisColouring(colours=phase % period, count=period, windows=windows)
        if _is_proper(colouring.colours, windows):
            return colouring
    raise AssertionError("((i + p) // d) mod k is always a proper colouring")  # pragma: no cover


@dataclass(frozen=True)
class InputColouring:
    """Colours of the input x.

    Colours 0 .. depth * prod(axis counts) - 1: (channel within its group, one colour per spatial
    axis), less the colour's hole if it has one. Then one colour per entry of `extras`: holes,
    each a (channel within its group, position) pair.
    """

    depth: int  # channels per group
    axes: tuple[AxisColouring, ...]
    holes: dict[int, Position]  # colour -> the position it leaves unperturbed
    extras: tuple[tuple[tuple[int, Position], ...], ...]

    @property
    def spatial_count(self) -> int:
        return math.prod(a.count for a in self.axes)

    @property
    def count(self) -> int:
        return self.depth * self.spatial_count + len(self.extras)

    @functools.cached_property
    def _used(self) -> tuple[int, ...]:
        return tuple(c for c in range(self.count) if self._spatial_mask(c).any())

    def used(self) -> list[int]:
        """The colours that hold at least one position (tiny axes may leave some empty)."""
        return list(self._used)

    def _split(self, colour: int) -> tuple[int, tuple[int, ...]]:
        """A colour of the grid -> (channel within group, colour per axis)."""
        channel, rest = divmod(colour, self.spatial_count)
        return channel, tuple(int(i) for i in np.unravel_index(rest, [a.count for a in self.axes]))

    def _spatial_mask(self, colour: int) -> np.ndarray:
        """(*spatial) bool: the positions of a colour of the grid, its hole left out."""
        _, per_axis = self._split(colour)
        mask = _outer([a.positions(c) for a, c in zip(self.axes, per_axis)])
        if colour in self.holes:
            mask[self.holes[colour]] = False
        return mask

    def reached(self, colour: int) -> np.ndarray:
        """(*out) bool: outputs read by some position of this colour (in every filter of its groups)."""
        return self._reached[colour] if colour in self._reached else self._reach_of(colour)

    @functools.cached_property
    def _reached(self) -> dict[int, np.ndarray]:  # asked for after every stacked call
        return {colour: self._reach_of(colour) for colour in self._used}

    def _reach_of(self, colour: int) -> np.ndarray:
        if colour >= self.depth * self.spatial_count:
            reach = np.zeros(tuple(len(a.windows) for a in self.axes), dtype=bool)
            for _, position in self.extras[colour - self.depth * self.spatial_count]:
                reach |= _reach(self.axes, position)
            return reach
        _, per_axis = self._split(colour)
        reach = _outer([a.reached(c) for a, c in zip(self.axes, per_axis)])
        if colour in self.holes:  # what reads the hole reads nothing else of the colour
            reach &= ~_reach(self.axes, self.holes[colour])
        return reach

    def parts(self, colour: int) -> list[tuple[int, np.ndarray]]:
        """(channel within its group, (*spatial) bool positions) pairs: the colour's coordinates
        are those positions in that channel of every group, for every batch item (read-only)."""
        if colour not in self._parts:  # asked for before every stacked call: made once per colour
            made = self._parts_of(colour)
            for _, spatial in made:
                spatial.flags.writeable = False  # shared by every caller from now on
            self._parts[colour] = made
        return list(self._parts[colour])

    @functools.cached_property
    def _parts(self) -> dict[int, list[tuple[int, np.ndarray]]]:
        return {}

    def _parts_of(self, colour: int) -> list[tuple[int, np.ndarray]]:
        if colour < self.depth * self.spatial_count:
            return [(self._split(colour)[0], self._spatial_mask(colour))]
        by_channel: dict[int, np.ndarray] = {}
        for channel, position in self.extras[colour - self.depth * self.spatial_count]:
            spatial = by_channel.setdefault(channel, np.zeros(tuple(len(a.colours) for a in self.axes), dtype=bool))
            spatial[position] = True
        return list(by_channel.items())

    def watched(self, colours: tuple[int, ...]) -> "WatchedOutputs":
        """What the locality check reads after a stacked call of these colours (made once)."""
        if colours not in self._watched:
            self._watched[colours] = WatchedOutputs.of([~self.reached(c) for c in colours])
        return self._watched[colours]

    @functools.cached_property
    def _watched(self) -> dict[tuple[int, ...], "WatchedOutputs"]:
        return {}

    def mask(self, colour: int, channels: int) -> np.ndarray:
        """(C, *spatial) bool: the coordinates of x of this colour, for one batch item."""
        mask = np.zeros((channels, *(len(a.colours) for a in self.axes)), dtype=bool)
        for channel, spatial in self.parts(colour):
            mask[channel :: self.depth] = spatial
        return mask


@dataclass(frozen=True)
class WatchedOutputs:
    """The outputs outside the reach of each of k colours, as flat gather indices, so that one
    fancy index reads all of them from a (k, N * F, outputs) array: entry j is output `outputs[j]`
    of colour `colours[j]`, and colour `watching[i]`'s entries start at `starts[i]`. Colours that
    reach every output have none and are left out of `watching`."""

    watching: np.ndarray  # (w,) positions among the k colours with outputs to watch
    starts: np.ndarray  # (w,) where each of them begins in `colours` and `outputs`
    colours: np.ndarray  # (entries,) position among the k colours
    outputs: np.ndarray  # (entries,) flat output position

    @classmethod
    def of(cls, outside: list[np.ndarray]) -> "WatchedOutputs":
        flat = [np.flatnonzero(o) for o in outside]
        watching = [i for i, f in enumerate(flat) if f.size]
        sizes = [flat[i].size for i in watching]
        starts = list(itertools.accumulate(sizes, initial=0))[:-1]
        outputs = np.concatenate([flat[i] for i in watching]) if watching else np.zeros(0, dtype=np.intp)
        return cls(
            np.array(watching, dtype=np.intp), np.array(starts, dtype=np.intp),
            np.repeat(np.array(watching, dtype=np.intp), sizes), outputs,
        )


def _outer(masks: list[np.ndarray]) -> np.ndarray:
    result = masks[0]
    for m in masks[1:]:
        result = result[..., None] & m
    return result


@functools.lru_cache(maxsize=32)  # asked for several times per tensor; a geometry is hashable
def input_colouring(geometry: LayerGeometry) -> InputColouring:
    """The colouring of x for this layer: (C/groups) * prod(k) colours, each reaching every output
    given a hole, and the few extra colours that hold the holes (see the module docstring)."""
    axes = tuple(
        axis_colouring(*axis)
        for axis in zip(geometry.spatial, geometry.kernel_size, geometry.stride, geometry.padding, geometry.dilation,
                        geometry.padding_end)
    )
    grid = InputColouring(depth=geometry.channels // geometry.groups, axes=axes, holes={}, extras=())
    holes: dict[int, Position] = {}
    extras: list[_Extra] = []
    for colour in grid.used():
        if not grid.reached(colour).all():
            continue  # outputs to watch already
        channel = grid._split(colour)[0]
        candidates = grid._spatial_mask(colour) & _read(axes)
        for extra in extras:
            position = extra.place(channel, candidates)
            if position is not None:
                break
        else:
            extras.append(_Extra(axes))
            position = extras[-1].place(channel, candidates)
        if position is not None:  # None: only if a single position reaches every output
            holes[colour] = position
    return InputColouring(
        depth=grid.depth, axes=axes, holes=holes, extras=tuple(tuple(e.members) for e in extras if e.members)
    )


def _reach(axes: tuple[AxisColouring, ...], position: Position) -> np.ndarray:
    """(*out) bool: the outputs that read one position."""
    return _outer([a.readers[i] for a, i in zip(axes, position)])


def _read(axes: tuple[AxisColouring, ...]) -> np.ndarray:
    """(*spatial) bool: the positions some output reads."""
    return _outer([np.asarray(a.readers.any(axis=1)) for a in axes])


class _Extra:
    """An extra colour being filled with holes: none shares an output with another, and some
    outputs stay unread."""

    def __init__(self, axes: tuple[AxisColouring, ...]) -> None:
        self.axes = axes
        self.members: list[tuple[int, Position]] = []
        self.reached = np.zeros(tuple(len(a.windows) for a in axes), dtype=bool)
        self.blocked = np.zeros(tuple(len(a.colours) for a in axes), dtype=bool)  # would share an output

    def place(self, channel: int, candidates: np.ndarray) -> Position | None:
        """The first candidate this colour can take (then taken), or None."""
        for flat in np.flatnonzero(candidates & ~self.blocked):
            position = tuple(int(i) for i in np.unravel_index(flat, candidates.shape))
            reached = self.reached | _reach(self.axes, position)
            if reached.all():
                continue
            self.reached = reached
            self.blocked |= _outer([a.conflicts[i] for a, i in zip(self.axes, position)])
            self.members.append((channel, position))
            return position
        return None
