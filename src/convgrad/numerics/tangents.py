"""The directions `--jvp` moves x, w and b along: the colours of the coloured differences.

A colour of x holds coordinates no two of which reach the same output (colouring.py), so the
forward-mode derivative along a tangent t nonzero on the colour alone holds at each output the one
Jacobian entry of the coordinate of the colour that reaches it, times that coordinate's t: over
every colour, every nonzero entry of the Jacobian, each once. t is random, of either sign and
between 0.5 and 1.5 in size, not all ones: a rule that squares, clamps or takes the sign of its
tangent would agree with the right one on ones. Colours are stacked along the batch axis, as the differences stack them
(x repeated, each item moved along one colour). A kernel slot (c', u) of every kernel moves output
channel f through kernel f alone, so one direction per slot covers dK's Jacobian; one direction
moving every bias covers db's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from convgrad.geometry import LayerGeometry
from convgrad.numerics.colouring import input_colouring

__all__ = ["Direction", "tangent_directions", "tangent_calls", "TANGENT_BYTES", "LARGEST_TANGENT"]

TANGENT_BYTES = 2**20  # primal, tangent and output items of one stacked call stay below this


@dataclass(frozen=True)
class Direction:
    """One forward-mode call: the primal x (repeated for stacked colours) and a tangent per tensor."""

    moved: str  # "x", "w" or "b"
    x: np.ndarray  # the primal x of the call (x itself, or x stacked `items` times)
    tangents: tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]
    what: tuple[str, ...]  # per item of the batch of n: which colour or slot moved it ("colour 3", "slot 0,1,2")


LARGEST_TANGENT = 1.5  # the Jacobian's scale is its largest entry times this


def tangent_directions(geometry: LayerGeometry, x: np.ndarray, w: np.ndarray, b: np.ndarray, *,
                       with_bias: bool, seed: int) -> Iterator[Direction]:
    """Every direction, in order: x's colours stacked, then w's slots, then b (when the layer has one)."""
    rng = np.random.default_rng((seed, 3))
    yield from _input_directions(geometry, x, _values(rng, x))
    values = _values(rng, w)
    for slot in np.ndindex(*w.shape[1:]):
        tangent = np.zeros_like(w)
        where = (slice(None), *slot)
        tangent[where] = values[where]
        yield Direction("w", x, (None, tangent, None), ("slot " + ",".join(map(str, slot)),))
    if with_bias:
        yield Direction("b", x, (None, None, _values(rng, b)), ("every bias",))


def _values(rng: np.random.Generator, like: np.ndarray) -> np.ndarray:
    """Random tangent values of `like`'s shape and dtype, of either sign, 0.5 to 1.5 in size."""
    sizes = rng.uniform(0.5, LARGEST_TANGENT, like.shape)
    return (sizes * rng.choice((-1.0, 1.0), like.shape)).astype(like.dtype)


def tangent_calls(geometry: LayerGeometry, x: np.ndarray, w: np.ndarray, *, with_bias: bool) -> int:
    """How many forward-mode calls `tangent_directions` makes: for progress, and the cost."""
    colours = len(input_colouring(geometry).used())
    return math.ceil(colours / _colours_per_call(geometry, x, colours)) + math.prod(w.shape[1:]) + with_bias


def _colours_per_call(geometry: LayerGeometry, x: np.ndarray, colours: int) -> int:
    """Stacked items a call holds: primal, tangent and output of each under TANGENT_BYTES, at least one."""
    item = x.nbytes * 2 + math.prod(geometry.y_shape) * x.itemsize
    return max(1, min(colours, TANGENT_BYTES // item))


def _input_directions(geometry: LayerGeometry, x: np.ndarray, values: np.ndarray) -> Iterator[Direction]:
    colouring = input_colouring(geometry)
    used = colouring.used()
    per_call = _colours_per_call(geometry, x, len(used))
    for first in range(0, len(used), per_call):
        colours = used[first : first + per_call]
        k = len(colours)
        tangent = np.zeros((k, *x.shape), dtype=x.dtype)
        for item_tangent, colour in zip(tangent, colours):
            for channel, spatial in colouring.parts(colour):
                np.copyto(item_tangent[:, channel :: colouring.depth], values[:, channel :: colouring.depth], where=spatial)
        stacked = np.broadcast_to(x, (k, *x.shape)).reshape(k * x.shape[0], *x.shape[1:])
        yield Direction("x", np.ascontiguousarray(stacked), (tangent.reshape(stacked.shape), None, None),
                        tuple(f"colour {c}" for c in colours))
