"""Coloured differences: every coordinate of one colour is perturbed in the same forward call.

For a coordinate q of colour c, no other coordinate of c moves an output that q moves, so

    dE/dq = sum_{o in R(q)} dy_o * (y+_o - y-_o) / (t+_q - t-_q)

recovers q's own derivative exactly as a one-at-a-time difference would (colouring.py says why the
colours are disjoint). The colouring assumes the implementation is local, like a conv; that is
verified after every perturbation of x: outputs that no perturbed coordinate reaches must not move.
If they do, `NonLocalOutputs` is raised and the caller checks that tensor one coordinate at a time.

Differences are central (y+ and y- per colour), or one-sided when the caller passes a `base`
output y(t): then y- is the base for every colour and t- the unperturbed tensor (linearity.py
says when that is exact), one call per colour instead of two.

dX perturbations go through the batch axis: the + and - inputs of several colours are stacked
into one batch, so many colours cost one forward call, with a bounded number of bytes per call.
dK and db cannot be batched (the implementation takes one w and one b per call): each colour costs
two calls. Their receptive fields cover every output, so there is nothing outside to watch.

Every colour (and kernel slot) writes coordinates of its own, so the calls can be shared out over
worker processes in contiguous runs and the results put together bit for bit as one process
would have made them (`_shared_out`; the workers themselves are harness/workers.py).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from convgrad.geometry import GradientName, LayerGeometry
from convgrad.numerics.colouring import InputColouring, input_colouring
from convgrad.numerics.gradient import TENSOR_INDEX, Evidence, Forward, Inputs, NumericalGradient, Progress, Workers

__all__ = ["NonLocalOutputs", "StackedBatchDiffers", "coloured_gradient", "coloured_forward_calls", "BATCH_BYTES",
           "SPLIT_WORTH_S"]

# The stacked inputs and outputs of one batched forward call stay below this (at least one colour).
# Small enough to stay in cache: torch's float64 conv of 8x32x32 images costs about 60 us an image
# in batches of up to 16 and 450 us an image in batches of 34 (one thread); the reference's im2col
# costs more per image past a few MiB too. Larger calls save per-call overhead, which is far less.
BATCH_BYTES = 2**19
# A tensor's calls are shared out over workers when, timed by its first call, the rest would take
# longer than this: forking and merging cost a few tens of milliseconds.
SPLIT_WORTH_S = 0.5


class NonLocalOutputs(Exception):
    """A perturbation moved outputs outside the receptive fields of the perturbed coordinates;
    `evidence`: the perturbed inputs and what the layer returned for them."""

    def __init__(self, message: str, evidence: Optional[Evidence] = None) -> None:
        super().__init__(message)
        self.evidence = evidence

    def __reduce__(self) -> tuple[Any, ...]:  # rebuilt whole from a worker process (harness/workers.py)
        return type(self), (str(self), self.evidence)


class StackedBatchDiffers(Exception):
    """The layer computes an unperturbed copy of x differently inside a stacked batch; `evidence`:
    the copy's output, which is x's output as a convolution computes it whatever the batch."""

    def __init__(self, message: str, evidence: Evidence) -> None:
        super().__init__(message)
        self.evidence = evidence

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.evidence)


def _colours_per_call(geometry: LayerGeometry, colours: int, one_sided: bool = False) -> int:
    item = math.prod(geometry.x_shape) + math.prod(geometry.y_shape)
    sides = 1 if one_sided else 2  # its + (and - ) inputs, and outputs
    per_colour = sides * item * np.dtype(geometry.dtype).itemsize
    return max(1, min(colours, BATCH_BYTES // per_colour))


def coloured_forward_calls(geometry: LayerGeometry, gradient: GradientName, one_sided: bool = False) -> int:
    """Forward calls the coloured method makes for one tensor (independent of H, W, D and N
    as long as one call holds every colour of dX); one-sided, without the shared base call."""
    sides = 1 if one_sided else 2
    if gradient == "dX":
        colours = len(input_colouring(geometry).used())
        per_call = _colours_per_call(geometry, colours, one_sided)
        stacks = per_call > 1 or not one_sided  # else every call holds one colour at the layer's own batch size
        return math.ceil(colours / per_call) + stacks  # + x alone, to compare the stacked copy with
    if gradient == "dK":
        return sides * math.prod(geometry.kernel_shape[1:])
    return sides


def coloured_gradient(
    forward: Forward,
    inputs: Inputs,
    gradient: GradientName,
    dy: np.ndarray,
    step: float,
    geometry: LayerGeometry,
    progress: Progress | None = None,
    *,
    batched: bool = True,
    base: np.ndarray | None = None,
    workers: Workers | None = None,
    made_elsewhere: Callable[[int], None] = lambda calls: None,
) -> NumericalGradient:
    """Every coordinate of dX, dK or db from coloured differences (see the module docstring).

    With `batched=False` every dX call keeps the layer's own batch size (for implementations that
    cannot take other batch sizes): two calls per colour instead of a few calls in all. With
    `workers`, the calls are shared out over them when that saves time (`_shared_out`);
    `made_elsewhere` is told the forward calls the workers made.
    """
    weights = dy.astype(np.float64)
    if gradient == "dX":
        values, calls = _input_gradient(
            forward, inputs, weights, step, geometry, progress, batched, base, workers, made_elsewhere
        )
    else:
        values, calls = _parameter_gradient(
            forward, inputs, gradient, weights, step, progress, base, workers, made_elsewhere
        )
    return NumericalGradient(
        values=values,
        step=step,
        method="coloured, one-sided" if base is not None else "coloured",
        checked=values.size,
        forward_calls=calls,
    )


def _stepped(tensor: np.ndarray, step: float, one_sided: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t+, t-, t+ - t-): every coordinate moved by the step in the tensor's dtype (one-sided: t-
    is t), and the steps as stored, in float64. A coordinate is moved by the same step whichever
    colour (or slot) holds it, so these are made once per tensor."""
    plus = tensor + tensor.dtype.type(step)
    minus = tensor if one_sided else tensor - tensor.dtype.type(step)
    return plus, minus, plus.astype(np.float64) - minus.astype(np.float64)


def _verify_same_as_alone(
    y_copy: np.ndarray, y_alone: np.ndarray, stacked: int, geometry: LayerGeometry, inputs: Inputs
) -> None:
    scale = max(float(np.max(np.abs(y_copy), initial=0.0)), float(np.max(np.abs(y_alone), initial=0.0)))
    if np.max(np.abs(y_copy - y_alone), initial=0.0) > _unmoved_bound(scale, geometry):
        raise StackedBatchDiffers(
            f"the output of x changed when x was one of {stacked} items in a batch (batch "
            f"{geometry.batch} asked for)",
            Evidence(
                f"the output of x as one of {stacked} items in a batch", "a conv layer's output for one item "
                "must not depend on the other items of its batch", inputs, np.array(y_copy), without_reference=True,
            ),
        )


def _unmoved_bound(scale: Any, geometry: LayerGeometry) -> Any:
    """How far an output may move from rounding alone: eps per term of its sum, times the scale
    (the largest magnitude of the outputs compared; a number, or an array of them)."""
    return _rounding_per_unit_scale(geometry) * scale


@functools.lru_cache(maxsize=32)
def _rounding_per_unit_scale(geometry: LayerGeometry) -> float:
    """2 eps per term of an output's sum (asked for after every call, so worked out once)."""
    terms = geometry.kernel_shape[1] * math.prod(geometry.kernel_size) + 1
    return 2.0 * terms * float(np.finfo(np.dtype(geometry.dtype)).eps)


@dataclass(frozen=True)
class _StackedCall:
    """One forward call of the dX differences: its colours, batch size and whether an unperturbed
    copy of x rides along."""

    colours: list[int]
    size: int  # the perturbed items' batch size (k colours, one or two sides, times N)
    with_copy: bool


def _stacked_calls(used: list[int], per_call: int, n: int, one_sided: bool, batched: bool) -> list[_StackedCall]:
    """The calls in order. An unperturbed copy of x rides along in the first call of every batch
    size: a layer whose result depends on the batch size (another code path, batch statistics)
    would otherwise be checked at a batch size nobody asked for. A call of one colour, one-sided,
    holds just the layer's own batch size: nothing to compare."""
    calls, sizes = [], set()
    for first in range(0, len(used), per_call):
        colours = used[first : first + per_call]
        size = (len(colours) if one_sided else 2 * len(colours)) * n
        with_copy = batched and size != n and size not in sizes
        sizes.add(size)
        calls.append(_StackedCall(colours, size, with_copy))
    return calls


def _input_gradient(
    forward: Forward,
    inputs: Inputs,
    weights: np.ndarray,
    step: float,
    geometry: LayerGeometry,
    progress: Progress | None,
    batched: bool,
    base: np.ndarray | None,
    workers: Workers | None,
    made_elsewhere: Callable[[int], None],
) -> tuple[np.ndarray, int]:
    x, w, b = inputs
    one_sided = base is not None
    colouring = input_colouring(geometry)
    used = colouring.used()
    per_call = _colours_per_call(geometry, len(used), one_sided) if batched else 1
    plus, minus, steps = _stepped(x, step, one_sided)
    base_scale = float(np.max(np.abs(base), initial=0.0)) if base is not None else None
    n = x.shape[0]
    plan = _stacked_calls(used, per_call, n, one_sided, batched)
    # x's output at the layer's own batch size, to compare stacked copies with: a call of its own
    # even when a base exists, made right after the first stacked call (the first call of the
    # plan, always made in this process), so a layer that keeps state keyed on the batch size is
    # back at x's own batch size for whatever comes next.
    alone: list[np.ndarray] = []

    def run(numbers: range, progress: Progress | None) -> tuple[np.ndarray, int]:
        """The plan's calls `numbers`: the sums over each of their coordinates' outputs of
        dy * (y+ - y-) (zero elsewhere), and the forward calls made."""
        sums = np.zeros(x.shape, dtype=np.float64)
        calls = 0
        # Stacked copies of x, one buffer per batch size: a call perturbs its colours' coordinates
        # and puts them back afterwards, a few channels' worth, instead of copying all of x again
        # (the guard hands the layer a copy of its own, so the buffer is never the layer's to change).
        buffers: dict[int, np.ndarray] = {}
        moved_buffers: dict[int, np.ndarray] = {}
        for number in numbers:
            planned = plan[number]
            colours, size = planned.colours, planned.size
            parts = [colouring.parts(c) for c in colours]
            k = len(colours)
            total = size + n * planned.with_copy
            if total not in buffers:
                buffers[total] = np.empty((total, *x.shape[1:]), dtype=x.dtype)
                np.copyto(buffers[total].reshape(-1, *x.shape), x)
            stacked = buffers[total]
            items = stacked.reshape(-1, *x.shape)
            _place(items[:k], plus, parts, colouring.depth)
            if not one_sided:
                _place(items[k : 2 * k], minus, parts, colouring.depth)
            if batched:
                y = forward(stacked, w, b)
                made = 1
                if planned.with_copy:
                    if not alone:
                        alone.append(forward(x, w, b))
                        made += 1
                    _verify_same_as_alone(y[size:], alone[0], size + n, geometry, inputs)
                    y = y[:size]
            else:  # one colour: its + (and -) input in calls of the layer's own batch size
                y = np.concatenate([forward(stacked[i * n : (i + 1) * n], w, b) for i in range(size // n)], axis=0)
                made = size // n
            restore = parts if one_sided else parts + parts
            _place(items[: len(restore)], x, restore, colouring.depth)  # the buffer holds x again
            calls += made
            if progress is not None:
                progress(made)
            y_plus = y[: k * n].reshape(k, n, *y.shape[1:])
            y_minus = base[None] if base is not None else y[k * n :].reshape(y_plus.shape)
            if k not in moved_buffers:
                moved_buffers[k] = np.empty(y_plus.shape, dtype=np.float64)
            moved = np.subtract(y_plus, y_minus, out=moved_buffers[k])
            try:
                _verify_local(moved, y_minus, base_scale, colouring, colours, geometry)
            except NonLocalOutputs as nonlocal_outputs:
                moved_x = np.repeat(x[None], k, axis=0)
                _place(moved_x, plus, parts, colouring.depth)
                raise NonLocalOutputs(str(nonlocal_outputs), Evidence(
                    "the output for x with some coordinates moved by the step", "the layer is not the convolution "
                    "at inputs next to x", (moved_x.reshape(k * n, *x.shape[1:]), w, b),
                    y_plus.reshape(k * n, *y.shape[1:]),
                )) from None
            moved *= weights
            reached = _sum_over_receptive_fields(moved.reshape(k * n, *y.shape[1:]), geometry)
            for i, colour_parts in enumerate(parts):
                depth = colouring.depth
                for channel, spatial in colour_parts:  # channel `channel` of group g takes group g's sums
                    np.copyto(sums[:, channel::depth], reached[i * n : (i + 1) * n], where=spatial)
        return sums, calls

    def merge(sums: np.ndarray, part: np.ndarray, numbers: range) -> None:
        for number in numbers:
            colours = plan[number].colours
            _place([sums] * len(colours), part, [colouring.parts(c) for c in colours], colouring.depth)

    def calls_of(number: int) -> int:  # past the first call, which alone may add x's own call
        return 1 if batched else plan[number].size // n

    sums, calls = _shared_out(run, len(plan), merge, calls_of, progress, workers, made_elsewhere)
    return sums / steps, calls


def _shared_out(
    run: Callable[[range, Progress | None], tuple[np.ndarray, int]],
    units: int,
    merge: Callable[[np.ndarray, np.ndarray, range], None],
    calls_of: Callable[[int], int],
    progress: Progress | None,
    workers: Workers | None,
    made_elsewhere: Callable[[int], None],
) -> tuple[np.ndarray, int]:
    """`run` over units 0..units-1 (calls of the plan, or kernel slots). With workers: the first
    here, timed; the rest here too, or, when they would take longer than `SPLIT_WORTH_S`, in
    contiguous shares, one per worker, merged in order. Each unit writes coordinates of its own,
    so the result is the same bit for bit however the units are shared."""
    count = 1 if workers is None else min(workers.count, units - 1)
    if workers is None or count < 2:
        return run(range(units), progress)
    start = time.perf_counter()
    sums, calls = run(range(1), progress)
    rest = range(1, units)
    if (time.perf_counter() - start) * len(rest) < SPLIT_WORTH_S:
        more, made = run(rest, progress)
        merge(sums, more, rest)
        return sums, calls + made
    bounds = [rest.start + len(rest) * i // count for i in range(count + 1)]
    shares = [range(low, high) for low, high in zip(bounds, bounds[1:])]
    before = [0]
    for share in shares[:-1]:
        before.append(before[-1] + sum(calls_of(number) for number in share))
    results = workers.run([functools.partial(run, share) for share in shares], progress, made_elsewhere, before)
    for share, (part, made) in zip(shares, results):
        merge(sums, part, share)
        calls += made
    return sums, calls


def _place(
    items: np.ndarray | Sequence[np.ndarray], perturbed: np.ndarray, parts: list[list[tuple[int, np.ndarray]]], depth: int
) -> None:
    """Item i of `items` (copies of x, or one array k times) takes colour i's coordinates from `perturbed`."""
    for item, colour_parts in zip(items, parts):
        for channel, spatial in colour_parts:
            np.copyto(item[:, channel::depth], perturbed[:, channel::depth], where=spatial)


def _verify_local(
    moved: np.ndarray,
    y_minus: np.ndarray,
    base_scale: float | None,
    colouring: InputColouring,
    colours: list[int],
    geometry: LayerGeometry,
) -> None:
    """(k, N, F, *out) outputs of k colours moved from y- (the base, or k outputs): none may move
    outside its colour's reach by more than rounding of the outputs' scale."""
    watched = colouring.watched(tuple(colours))
    if not watched.watching.size:
        return
    k = moved.shape[0]
    # Every colour's watched outputs in one gather, then the largest change per colour.
    gathered = moved.reshape(k, -1, math.prod(moved.shape[3:]))[watched.colours, :, watched.outputs]
    changes = np.maximum.reduceat(np.abs(gathered).max(axis=1), watched.starts)
    scales = (
        base_scale if base_scale is not None
        else np.abs(y_minus.reshape(k, -1)).max(axis=1, initial=0.0)[watched.watching]
    )
    # y+ = y- + moved: the largest output of either is within `change` of y-'s largest
    if np.any(changes > _unmoved_bound(scales + changes, geometry)):
        raise NonLocalOutputs(
            "outputs outside the perturbed receptive fields changed (non-local implementation); "
            "checked one coordinate at a time"
        )


def _sum_over_receptive_fields(moved: np.ndarray, geometry: LayerGeometry) -> np.ndarray:
    """(N, groups, *spatial): for every input position, the sum of `moved` over the outputs it
    reaches in every filter of a group (the same for each channel of the group).

    That is every output o and tap u with s*o + d*u = i + p: the transpose of the forward pass's
    windowing with all-ones kernels. The outputs are spread out by the stride into a zero-padded
    array, and each tap adds one shifted window of it to every position at once, taps in order,
    so each position's sum is taken in the same order as scattering tap by tap would.
    """
    n, f = moved.shape[:2]
    groups = geometry.groups
    per_group = moved.reshape(n, groups, f // groups, *moved.shape[2:]).sum(axis=2)
    plan = _tap_windows(geometry)
    spread = np.zeros((n, groups, *plan.spread_shape), dtype=np.float64)
    spread[plan.outputs] = per_group
    total = np.zeros((n, groups, *geometry.spatial), dtype=np.float64)
    for window in plan.taps:  # a tap that reaches no output here adds exact zeros
        total += spread[window]
    return total


@dataclass(frozen=True)
class _TapWindows:
    """Where the per-group outputs sit in the spread array, and the window of it each tap adds."""

    spread_shape: tuple[int, ...]  # spatial extent of the spread array
    outputs: tuple[slice, ...]  # (N, groups, *out) positions of the outputs in it
    taps: tuple[tuple[slice, ...], ...]  # per tap, the (N, groups, *spatial) window it adds


@functools.lru_cache(maxsize=32)  # asked for after every stacked call; a geometry is hashable
def _tap_windows(geometry: LayerGeometry) -> _TapWindows:
    """Output o lands at margin + s*o, margin = d*(k-1) (the furthest tap); tap u adds it to input
    position i = s*o + d*u - p, so position i reads margin + i + p - d*u."""
    axes = list(zip(geometry.spatial, geometry.kernel_size, geometry.stride, geometry.padding, geometry.dilation,
                    geometry.out_spatial))
    margins = [d * (k - 1) for _, k, _, _, d, _ in axes]
    shape = tuple(
        max(m + s * (o - 1) + 1, m + p + h) for m, (h, _, s, p, _, o) in zip(margins, axes)
    )
    outputs = (slice(None), slice(None), *(slice(m, m + s * (o - 1) + 1, s) for m, (_, _, s, _, _, o) in zip(margins, axes)))
    taps = tuple(
        (
            slice(None),
            slice(None),
            *(slice(m + p - d * u, m + p - d * u + h) for u, m, (h, _, _, p, d, _) in zip(tap, margins, axes)),
        )
        for tap in np.ndindex(*geometry.kernel_size)
    )
    return _TapWindows(shape, outputs, taps)


def _parameter_gradient(
    forward: Forward,
    inputs: Inputs,
    gradient: GradientName,
    weights: np.ndarray,
    step: float,
    progress: Progress | None,
    base: np.ndarray | None,
    workers: Workers | None,
    made_elsewhere: Callable[[int], None],
) -> tuple[np.ndarray, int]:
    """dK: element (c', u) of every kernel at once; db: every bias at once. Kernel f (bias f)
    moves output channel f only, so each is recovered from its own output channel."""
    which = TENSOR_INDEX[gradient]
    tensor = inputs[which]
    one_sided = base is not None
    plus, minus, steps = _stepped(tensor, step, one_sided)
    filters = weights.shape[1]
    slots = list(np.ndindex(*tensor.shape[1:]))

    def run(numbers: range, progress: Progress | None) -> tuple[np.ndarray, int]:
        sums = np.zeros(tensor.shape, dtype=np.float64)
        calls = 0
        # One working copy for every slot, perturbed and put back around its calls (as dense.py
        # does): the forward reads it during the call only, so no copy of the tensor per call.
        args = list(inputs)
        args[which] = working = tensor.copy()
        moved: np.ndarray | None = None  # y+ - y-, one buffer for every slot (outputs are the same shape)
        for number in numbers:
            where = (slice(None), *slots[number])
            working[where] = plus[where]
            y_plus = forward(*args)
            if base is None:
                working[where] = minus[where]
                y_minus = forward(*args)
            else:
                y_minus = base
            working[where] = tensor[where]
            moved = y_plus - y_minus if moved is None else np.subtract(y_plus, y_minus, out=moved)
            made = 1 if one_sided else 2
            calls += made
            if progress is not None:
                progress(made)
            # sum over batch and space of dy * moved, per output channel
            moved *= weights
            sums[where] = moved.reshape(moved.shape[0], filters, -1).sum(axis=(0, 2))
        return sums, calls

    def merge(sums: np.ndarray, part: np.ndarray, numbers: range) -> None:
        for number in numbers:
            where = (slice(None), *slots[number])
            sums[where] = part[where]

    sums, calls = _shared_out(run, len(slots), merge, lambda slot: 1 if one_sided else 2, progress, workers,
                              made_elsewhere)
    return sums / steps, calls
