"""Coloured central differences: every coordinate of one colour is perturbed in the same forward call.

For a coordinate q of colour c, no other coordinate of c moves an output that q moves, so

    dE/dq = sum_{o in R(q)} dy_o * (y+_o - y-_o) / (t+_q - t-_q)

recovers q's own derivative exactly as a one-at-a-time difference would (colouring.py says why the
colours are disjoint). The colouring assumes the implementation is local, like a conv; that is
verified after every perturbation of x: outputs that no perturbed coordinate reaches must not move.
If they do, `NonLocalOutputs` is raised and the caller checks that tensor one coordinate at a time.

dX perturbations go through the batch axis: the + and - inputs of several colours are stacked
into one batch, so many colours cost one forward call, with a bounded number of bytes per call.
dK and db cannot be batched (the implementation takes one w and one b per call): each colour costs
two calls. Their receptive fields cover every output, so there is nothing outside to watch.
"""

from __future__ import annotations

import math

import numpy as np

from convgrad.geometry import GradientName, LayerGeometry
from convgrad.numerics.colouring import InputColouring, input_colouring
from convgrad.numerics.gradient import TENSOR_INDEX, Forward, Inputs, NumericalGradient, Progress

__all__ = ["NonLocalOutputs", "StackedBatchDiffers", "coloured_gradient", "coloured_forward_calls", "BATCH_BYTES"]

# The stacked inputs and outputs of one batched forward call stay below this (at least one colour).
BATCH_BYTES = 8 * 2**20


class NonLocalOutputs(Exception):
    """A perturbation moved outputs outside the receptive fields of the perturbed coordinates."""


class StackedBatchDiffers(Exception):
    """The layer computes an unperturbed copy of x differently inside a stacked batch."""


def _colours_per_call(geometry: LayerGeometry, colours: int) -> int:
    item = math.prod(geometry.x_shape) + math.prod(geometry.y_shape)
    per_colour = 2 * item * np.dtype(geometry.dtype).itemsize  # its + and - inputs, and outputs
    return max(1, min(colours, BATCH_BYTES // per_colour))


def coloured_forward_calls(geometry: LayerGeometry, gradient: GradientName) -> int:
    """Forward calls the coloured method makes for one tensor (independent of H, W, D and N
    as long as one call holds every colour of dX)."""
    if gradient == "dX":
        colours = len(input_colouring(geometry).used())
        return math.ceil(colours / _colours_per_call(geometry, colours)) + 1  # + x alone
    if gradient == "dK":
        return 2 * math.prod(geometry.kernel_shape[1:])
    return 2


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
) -> NumericalGradient:
    """Every coordinate of dX, dK or db from coloured central differences (see the module docstring).

    With `batched=False` every dX call keeps the layer's own batch size (for implementations that
    cannot take other batch sizes): two calls per colour instead of a few calls in all.
    """
    weights = dy.astype(np.float64)
    if gradient == "dX":
        values, calls = _input_gradient(forward, inputs, weights, step, geometry, progress, batched)
    else:
        values, calls = _parameter_gradient(forward, inputs, gradient, weights, step, geometry, progress)
    return NumericalGradient(
        values=values, step=step, method="coloured", checked=values.size, forward_calls=calls
    )


def _perturbed(tensor: np.ndarray, mask: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """(t+, t-) in the tensor's dtype: the step is added where mask is True."""
    plus = tensor.copy()
    minus = tensor.copy()
    plus[mask] += tensor.dtype.type(step)
    minus[mask] -= tensor.dtype.type(step)
    return plus, minus


def _verify_same_as_alone(
    y_copy: np.ndarray, y_alone: np.ndarray, stacked: int, geometry: LayerGeometry
) -> None:
    if np.max(np.abs(y_copy - y_alone), initial=0.0) > _unmoved_bound(y_copy, y_alone, geometry):
        raise StackedBatchDiffers(
            f"the output of x changed when x was one of {stacked} items in a batch (batch "
            f"{geometry.batch} asked for)"
        )


def _unmoved_bound(y_plus: np.ndarray, y_minus: np.ndarray, geometry: LayerGeometry) -> float:
    """How far an output may move from rounding alone: eps per term of its sum, times its scale."""
    terms = geometry.kernel_shape[1] * math.prod(geometry.kernel_size) + 1
    scale = max(float(np.max(np.abs(y_plus), initial=0.0)), float(np.max(np.abs(y_minus), initial=0.0)))
    return 2.0 * terms * float(np.finfo(np.dtype(geometry.dtype)).eps) * scale


def _input_gradient(
    forward: Forward,
    inputs: Inputs,
    weights: np.ndarray,
    step: float,
    geometry: LayerGeometry,
    progress: Progress | None,
    batched: bool = True,
) -> tuple[np.ndarray, int]:
    x, w, b = inputs
    colouring = input_colouring(geometry)
    used = colouring.used()
    per_call = _colours_per_call(geometry, len(used)) if batched else 1
    values = np.zeros(x.shape, dtype=np.float64)
    calls = 0
    n = x.shape[0]
    y_alone = None  # x's output at the layer's own batch size, to compare stacked copies with
    checked_sizes: set[int] = set()
    for first in range(0, len(used), per_call):
        colours = used[first : first + per_call]
        masks = [np.broadcast_to(colouring.mask(c, geometry.channels), x.shape) for c in colours]
        pairs = [_perturbed(x, m, step) for m in masks]
        if batched:
            # An unperturbed copy of x rides along in the first call of every batch size: a layer
            # whose result depends on the batch size (another code path, batch statistics) would
            # otherwise be checked at a batch size nobody asked for.
            stacked = [p for p, _ in pairs] + [m for _, m in pairs]
            size = len(stacked) * n
            with_copy = size not in checked_sizes
            y = forward(np.concatenate(stacked + [x] * with_copy, axis=0), w, b)
            made = 1
            if with_copy:
                checked_sizes.add(size)
                if y_alone is None:
                    y_alone = forward(x, w, b)
                    made += 1
                _verify_same_as_alone(y[size:], y_alone, size + n, geometry)
                y = y[:size]
        else:  # one colour: its + and - inputs in two calls of the layer's own batch size
            y = np.concatenate([forward(pairs[0][0], w, b), forward(pairs[0][1], w, b)], axis=0)
            made = 2
        calls += made
        if progress is not None:
            progress(made)
        n = x.shape[0]
        half = len(colours) * n
        for i, (colour, mask, (plus, minus)) in enumerate(zip(colours, masks, pairs)):
            y_plus, y_minus = y[i * n : (i + 1) * n], y[half + i * n : half + (i + 1) * n]
            _verify_local(y_plus, y_minus, colouring, colour, geometry)
            moved = weights * (y_plus - y_minus)
            sums = _sum_over_receptive_fields(moved, geometry)
            denominator = plus[mask].astype(np.float64) - minus[mask].astype(np.float64)
            values[mask] = sums[mask] / denominator
    return values, calls


def _verify_local(
    y_plus: np.ndarray, y_minus: np.ndarray, colouring: InputColouring, colour: int, geometry: LayerGeometry
) -> None:
    outside = ~colouring.reached(colour)
    if not outside.any():
        return
    change = np.abs(y_plus - y_minus)[(slice(None), slice(None), outside)]
    if change.size and float(change.max()) > _unmoved_bound(y_plus, y_minus, geometry):
        raise NonLocalOutputs(
            "outputs outside the perturbed receptive fields changed (non-local implementation); "
            "checked one coordinate at a time"
        )


def _sum_over_receptive_fields(moved: np.ndarray, geometry: LayerGeometry) -> np.ndarray:
    """(N, C, *spatial): for every input coordinate, the sum of `moved` over the outputs it reaches.

    That is every filter of its group, at every output o and tap u with s*o + d*u = i + p: the
    transpose of the forward pass's windowing with all-ones kernels.
    """
    n, f = moved.shape[:2]
    groups = geometry.groups
    per_group = moved.reshape(n, groups, f // groups, *moved.shape[2:]).sum(axis=2)
    total = np.zeros((n, groups, *geometry.padded_spatial), dtype=np.float64)
    out = geometry.out_spatial
    for tap in np.ndindex(*geometry.kernel_size):
        reads = tuple(
            slice(d * u, d * u + s * (o - 1) + 1, s)
            for u, s, d, o in zip(tap, geometry.stride, geometry.dilation, out)
        )
        total[(slice(None), slice(None), *reads)] += per_group
    cropped = total[(slice(None), slice(None), *(slice(p, p + h) for p, h in zip(geometry.padding, geometry.spatial)))]
    depth = geometry.channels // groups
    return np.repeat(cropped, depth, axis=1)  # channel c belongs to group c // depth


def _parameter_gradient(
    forward: Forward,
    inputs: Inputs,
    gradient: GradientName,
    weights: np.ndarray,
    step: float,
    geometry: LayerGeometry,
    progress: Progress | None,
) -> tuple[np.ndarray, int]:
    """dK: element (c', u) of every kernel at once; db: every bias at once. Kernel f (bias f)
    moves output channel f only, so each is recovered from its own output channel."""
    which = TENSOR_INDEX[gradient]
    tensor = inputs[which]
    values = np.zeros(tensor.shape, dtype=np.float64)
    slots = np.ndindex(*tensor.shape[1:])
    calls = 0
    for slot in slots:
        mask = np.zeros(tensor.shape, dtype=bool)
        mask[(slice(None), *slot)] = True
        plus, minus = _perturbed(tensor, mask, step)
        args_plus, args_minus = list(inputs), list(inputs)
        args_plus[which], args_minus[which] = plus, minus
        moved = weights * (forward(*args_plus) - forward(*args_minus))
        calls += 2
        if progress is not None:
            progress(2)
        per_channel = moved.sum(axis=(0, *range(2, moved.ndim)))  # (F,)
        denominator = plus[mask].astype(np.float64) - minus[mask].astype(np.float64)
        values[mask] = per_channel / denominator
    return values, calls
