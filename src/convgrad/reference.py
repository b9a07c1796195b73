"""The reference conv layer (1-D, 2-D, 3-D): forward, and a backward written from the formulas.

Shapes: x (N, C, *S), w (F, C/g, *k), b (F,), y (N, F, *O); stride, padding and dilation are
one int per spatial axis, padding on both sides of it; padding may also be a (before, after) pair
per axis (TensorFlow's 'SAME' at a stride pads one more after). Every step is vectorised: windows are strided views
of the (padded) input and each group is one matrix product, so there are no loops over pixels.

The backward pass follows docs/MATH.md:
    db = sum of dO over batch and space
    dK = valid correlation of the padded X with dO (dO spread out by the stride)
    dX = full correlation of dO with the kernels rotated 180 degrees and their kernel and channel
         axes swapped (equivalently, a full convolution with the kernels as they are):
         zero-insert dO by the stride, pad it by the dilated kernel extent - 1, correlate with the
         rotated, swapped kernels (dilated), then crop the padding off.
The functions of those dX steps are here, and `convgrad explain` computes dX by them; the
reference's own `input_gradient` makes the same sums tap by tap, without the correlation's im2col
(tests/test_reference.py holds the two equal).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from convgrad.geometry import as_padding_pairs

__all__ = [
    "forward",
    "forward_by_channel",
    "backward",
    "correlate",
    "pad",
    "crop",
    "zero_insert",
    "rotate_and_swap",
    "dilate",
    "weight_gradient",
    "input_gradient",
    "bias_gradient",
]

Ints = Sequence[int]
Padding = Sequence[int] | Sequence[Sequence[int]]  # an int per axis (both sides), or (before, after) per axis


def _spatial_axes(ndim: int) -> tuple[int, ...]:
    return tuple(range(2, 2 + ndim))


def pad(x: np.ndarray, padding: Padding) -> np.ndarray:
    """Zero-pad every spatial axis by padding[i] on both sides, or by (before, after) = padding[i]."""
    pairs = as_padding_pairs(padding)
    if not any(b or a for b, a in pairs):
        return x
    # By hand rather than np.pad: a check pads thousands of small arrays, and np.pad's own
    # bookkeeping cost more than the copy.
    padded = np.zeros((*x.shape[:2], *(n + b + a for n, (b, a) in zip(x.shape[2:], pairs))), dtype=x.dtype)
    padded[(slice(None), slice(None), *(slice(b, b + n) for (b, _), n in zip(pairs, x.shape[2:])))] = x
    return padded


def crop(x: np.ndarray, padding: Padding) -> np.ndarray:
    """Remove what `pad` added: padding[i] from both ends of every spatial axis, or (before, after)."""
    pairs = as_padding_pairs(padding)
    return x[(slice(None), slice(None), *(slice(b, n - a) for (b, a), n in zip(pairs, x.shape[2:])))]


def windows(x: np.ndarray, kernel: Ints, stride: Ints, dilation: Ints) -> np.ndarray:
    """A strided view (N, C, *O, *k): window o, tap u is x[n, c, s*o + d*u]."""
    spatial = _spatial_axes(len(kernel))
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    view = sliding_window_view(x, extent, axis=spatial)
    picks = (
        slice(None),
        slice(None),
        *(slice(None, None, s) for s in stride),
        *(slice(None, None, d) for d in dilation),
    )
    return view[picks]


def correlate(
    x: np.ndarray, w: np.ndarray, *, stride: Ints, dilation: Ints, groups: int
) -> np.ndarray:
    """Valid cross-correlation, no padding or bias: y[n,f,o] = sum_{c in group(f), u} x[n,c,s*o+d*u] w[f,c,u]."""
    ndim = x.ndim - 2
    n, c = x.shape[:2]
    f, depth = w.shape[:2]
    kernel = w.shape[2:]
    win = windows(x, kernel, stride, dilation)
    out = win.shape[2 : 2 + ndim]
    # im2col with channels and taps first, (C, *k, N, *O), filled one tap at a time: each copy then
    # moves whole rows of x, which is far faster than transposing the 2*ndim+2-axis window view.
    cols = np.empty((c, *kernel, n, *out), dtype=np.result_type(x, w))
    for tap in np.ndindex(*kernel):
        cols[(slice(None), *tap)] = win[(Ellipsis, *tap)].swapaxes(0, 1)  # (C, N, *O)
    taps = depth * math.prod(kernel)
    y = np.matmul(w.reshape(groups, f // groups, taps), cols.reshape(groups, taps, n * math.prod(out)))
    return np.ascontiguousarray(y.reshape(f, n, *out).swapaxes(0, 1))  # one product per group


def forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    *,
    stride: Ints,
    padding: Padding,
    dilation: Ints,
    groups: int,
) -> np.ndarray:
    """O[n,f,o] = b[f] + sum_{c in group(f)} sum_u Xp[n,c, s*o + d*u] * K[f,c',u]."""
    y = correlate(pad(x, padding), w, stride=stride, dilation=dilation, groups=groups)
    bias = b.reshape(1, -1, *([1] * (x.ndim - 2)))
    if np.result_type(y, bias) != y.dtype:
        return y + bias
    y += bias  # y is a new array of the result's dtype: no second output-sized array
    return y


def forward_by_channel(
    x: np.ndarray,
    w: np.ndarray,
    *,
    stride: Ints,
    padding: Padding,
    dilation: Ints,
    groups: int,
) -> np.ndarray:
    """O without bias, one channel of each group at a time: sum over c' of conv(x[:, c'::C/g],
    K[:, c':c'+1]) with `groups` groups of one channel, leaving out the c' where x or K is all zero.
    A tangent that moves a few channels (a colour, a kernel slot) costs those channels alone."""
    depth = w.shape[1]
    zeros = np.zeros(w.shape[0])
    y: np.ndarray | None = None
    for channel in range(depth):
        part_x, part_w = x[:, channel::depth], w[:, channel : channel + 1]
        if y is not None and not (part_x.any() and part_w.any()):
            continue  # the first channel always runs: the output's shape comes from it
        more = forward(part_x, part_w, zeros, stride=stride, padding=padding, dilation=dilation, groups=groups)
        y = more if y is None else y + more
    assert y is not None
    return y


def bias_gradient(dy: np.ndarray) -> np.ndarray:
    """db[f] = sum_{n,o} dO[n,f,o]."""
    return dy.sum(axis=(0, *_spatial_axes(dy.ndim - 2)))


def weight_gradient(
    dy: np.ndarray,
    x: np.ndarray,
    kernel: Ints,
    *,
    stride: Ints,
    padding: Padding,
    dilation: Ints,
    groups: int,
) -> np.ndarray:
    """dK[f,c,u] = sum_{n,o} dO[n,f,o] * Xp[n,c, s*o + d*u]: a valid correlation of Xp with dO."""
    ndim = x.ndim - 2
    n, c = x.shape[:2]
    f = dy.shape[1]
    depth = c // groups
    win = windows(pad(x, padding), kernel, stride, dilation)
    out = dy.shape[2:]
    win = win.reshape(n, groups, depth, *out, *kernel)
    dy_groups = dy.reshape(n, groups, f // groups, *out)
    over_batch_and_space = [0, *range(2, 2 + ndim)]
    parts = [
        np.tensordot(dy_groups[:, g], win[:, g], axes=(over_batch_and_space, over_batch_and_space))
        for g in range(groups)
    ]  # each (F/g, C/g, *k)
    return np.concatenate(parts, axis=0)


def zero_insert(dy: np.ndarray, stride: Ints, size: Ints) -> np.ndarray:
    """Spread dO out by the stride: s-1 zeros between neighbours, zeros at the end up to `size`.

    `size` is the padded input extent minus the dilated kernel extent plus 1, so positions that
    no window reached (the remainder of the floor in the output size) get zeros too.
    """
    if all(s == 1 for s in stride) and tuple(size) == dy.shape[2:]:
        return dy
    spread = np.zeros((*dy.shape[:2], *size), dtype=dy.dtype)
    spread[(slice(None), slice(None), *(slice(None, None, s) for s in stride))] = dy
    return spread


def rotate_and_swap(w: np.ndarray, groups: int) -> np.ndarray:
    """Rotate every kernel 180 degrees and swap its kernel and channel axes, per group.

    (F, C/g, *k) -> (C, F/g, *k): F kernels of depth C/g become C kernels of depth F/g.
    For the seed layer, 5 kernels 3x3x3 become 3 kernels 5x3x3.
    """
    f, depth = w.shape[:2]
    kernel = w.shape[2:]
    spatial = _spatial_axes(len(kernel))
    rotated = np.flip(w, axis=spatial)
    per_group = rotated.reshape(groups, f // groups, depth, *kernel)
    swapped = np.swapaxes(per_group, 1, 2)  # (g, C/g, F/g, *k)
    return np.ascontiguousarray(swapped.reshape(groups * depth, f // groups, *kernel))


def dilate(w: np.ndarray, dilation: Ints) -> np.ndarray:
    """Spread every kernel's taps `dilation` apart (d-1 zeros between neighbours), so a plain
    correlation with the result equals a dilated correlation with `w`."""
    if all(d == 1 for d in dilation):
        return w
    kernel = w.shape[2:]
    spread = np.zeros((*w.shape[:2], *(d * (k - 1) + 1 for k, d in zip(kernel, dilation))), dtype=w.dtype)
    spread[(slice(None), slice(None), *(slice(None, None, d) for d in dilation))] = w
    return spread


def input_gradient(
    dy: np.ndarray,
    w: np.ndarray,
    in_spatial: Ints,
    *,
    stride: Ints,
    padding: Padding,
    dilation: Ints,
    groups: int,
) -> np.ndarray:
    """dX, tap by tap: the transposed convolution of dO with the kernels.

    Output o reads the padded input at s*o + d*u through tap u, so tap u sends K[:, :, u]^T dO[o]
    back to that position: one matrix product per tap, added into a strided view of dXp, then the
    padding cropped. The same sums as the full correlation of dO with the rotated, swapped kernels
    (the steps `convgrad explain` shows, and tests/test_reference.py holds the two equal), without
    that correlation's im2col: for a stem (3 input channels, 7x7 taps, stride 2) it held 49 x 64
    rows of the whole padded image to make 3 rows of dX.
    """
    n, filters = dy.shape[:2]
    out = dy.shape[2:]
    depth = w.shape[1]
    kernel = w.shape[2:]
    pairs = as_padding_pairs(padding)
    padded = [h + b + a for h, (b, a) in zip(in_spatial, pairs)]
    dxp = np.zeros((n, groups * depth, *padded), dtype=np.result_type(dy, w))
    per_group = filters // groups
    dy_groups = dy.reshape(n, groups, per_group, math.prod(out))
    w_groups = w.reshape(groups, per_group, depth, *kernel)
    for tap in np.ndindex(*kernel):
        # (g, depth, F/g) @ (n, g, F/g, O) -> (n, g, depth, O): every input channel's share of this tap
        share = np.matmul(np.swapaxes(w_groups[(Ellipsis, *tap)], 1, 2), dy_groups)
        reads = (slice(None), slice(None), *(slice(d * u, d * u + s * (o - 1) + 1, s)
                                              for d, u, s, o in zip(dilation, tap, stride, out)))
        dxp[reads] += share.reshape(n, groups * depth, *out)
    return np.ascontiguousarray(crop(dxp, pairs))


def backward(
    dy: np.ndarray,
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    *,
    stride: Ints,
    padding: Padding,
    dilation: Ints,
    groups: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dX, dK, db) for upstream gradient dy = dE/dO."""
    dx = input_gradient(dy, w, x.shape[2:], stride=stride, padding=padding, dilation=dilation, groups=groups)
    dw = weight_gradient(dy, x, w.shape[2:], stride=stride, padding=padding, dilation=dilation, groups=groups)
    db = bias_gradient(dy)
    return dx, dw, db
