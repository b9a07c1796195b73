"""Conv layers that are right on small cases and wrong only past a size where real kernels change
what they do: fixtures for the checker's large cases.

Fast conv kernels switch strategy with size: they block channels and batches, tile outputs,
switch algorithms for large kernels or big problems, split long reductions across threads or
chunks, index with narrow integers. Each layer below takes one such step past a threshold, with a
mistake made in it, and is right up to the threshold: a subclass of a correct layer that adds the
step, the mistake in one or two of its lines. The thresholds of ChannelBlocks16, BatchChunks8,
FFTLargeKernels, PatchifyPath, Bfloat16SplitK and ThreadBands lie just past the small cases a
check usually runs (C/g <= 16, N <= 8, at most 4096 output positions per item, kernels up to 3x3,
stride up to 3), so only a large case finds them; the others' are sizes or values that some small
cases reach as well.

Correct
   TapLoopConv             one vectorised product per kernel tap (any rank, stride, padding, dilation, groups)
   Im2colConv              im2col columns gathered through a table of flat indices, one GEMM per group
Wrong past a threshold (the threshold, then the tensor that goes wrong)
   ChannelBlocks16         C/g > 16, not a multiple of 16         dX: the last block's channels get others' dX
   BatchChunks8            N > 8                                  dK: only the last chunk of 8 items counts
   WinogradOddOutputs      3x3 at stride 1, output >= 9x9, odd    O: the last row or column repeats the one before
   FFTLargeKernels         a kernel of 5 or more taps on an axis  dX: correlated with the kernels, not convolved
   PatchifyPath            kernel == stride >= 4, no padding      dK: the kernel's two spatial axes swapped
   Float32GemmPastSize     N * positions * C * taps > 100_000     O: float32 precision in a float64 layer
   Bfloat16SplitK          more than 4096 positions per item      dK: sums of 1024 positions rounded to bfloat16
   Int16Indices            C * padded positions > 32768           O, dX, dK: int16 indices wrap around
   ThreadBands             more than 4096 positions per item      dX: rows shared by two bands get one band's share
   ClipsWeightGradient     |dK| > 100                             dK: clipped to [-100, 100]
   StridedOneByOnePadding  1x1 kernel, stride > 1, padding > 0    O: padding applied after subsampling

Every layer is in the keyword calling style, forward(x, w, b, *, stride, padding, dilation,
groups) and backward(dy, x, w, b, *, ...) -> (dx, dw, db), handles 1-D, 2-D and 3-D (the 2-D fast
paths fall back to the plain layer elsewhere) and returns the dtype it is given. Plain NumPy and
the standard library, written as user code: nothing here knows about convgrad.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class _Settings(NamedTuple):
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int


def _pad(x, padding):
    return np.pad(x, [(0, 0), (0, 0), *((p, p) for p in padding)]) if any(padding) else x


def _crop(xp, padding):
    return xp[(slice(None), slice(None), *(slice(p, n - p) for p, n in zip(padding, xp.shape[2:])))]


def _out_size(padded, kernel, stride, dilation):
    return tuple((h - d * (k - 1) - 1) // s + 1 for h, k, s, d in zip(padded, kernel, stride, dilation))


def _window(tap, out, stride, dilation):
    """Positions of the padded input that kernel tap `tap` reads for every output position."""
    return tuple(slice(d * u, d * u + s * (o - 1) + 1, s) for u, o, s, d in zip(tap, out, stride, dilation))


def _grouped(a, groups):
    """(N, C, ...) -> (N, g, C/g, ...)."""
    return a.reshape(a.shape[0], groups, a.shape[1] // groups, *a.shape[2:])


def _kernels(w, groups):
    """(F, C/g, ...) -> (g, F/g, C/g, ...)."""
    return w.reshape(groups, w.shape[0] // groups, *w.shape[1:])


def _spatial(a):
    return tuple(range(2, a.ndim))


def _taps(a, tap):
    """Kernel tap `tap` of grouped kernels (g, F/g, C/g, *k)."""
    return a[(slice(None),) * 3 + tuple(tap)]


def _scatter(dy, w, padded, cfg):
    """dX of the padded input, grouped (N, g, C/g, *padded): every tap adds w * dO back onto the
    positions it read."""
    dxp = np.zeros((dy.shape[0], cfg.groups, w.shape[1], *padded), dy.dtype)
    dyg, wg = _grouped(dy, cfg.groups), _kernels(w, cfg.groups)
    for tap in np.ndindex(*w.shape[2:]):
        where = (slice(None),) * 3 + _window(tap, dy.shape[2:], cfg.stride, cfg.dilation)
        dxp[where] += np.einsum("ngf...,gfc->ngc...", dyg, _taps(wg, tap))
    return dxp


def _bfloat16(a):
    """`a` rounded to bfloat16 (float32's top 16 bits, nearest even), in a's dtype."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    kept = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return kept.view(np.float32).astype(a.dtype, copy=False)


class TapLoopConv:
    """Correct: for each kernel tap, one product over the channels of each group (gather in O and
    dK, scatter in dX). The wrong layers override one of `output`, `padded_input_gradient` and
    `weight_gradient`, which see the padded input and the settings."""

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        cfg = _Settings(tuple(stride), tuple(padding), tuple(dilation), groups)
        y = self.output(_pad(x, cfg.padding), w, cfg)
        return y + b.reshape(1, -1, *[1] * (x.ndim - 2)).astype(y.dtype, copy=False)

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        cfg = _Settings(tuple(stride), tuple(padding), tuple(dilation), groups)
        xp = _pad(x, cfg.padding)
        dx = _crop(self.padded_input_gradient(dy, w, xp.shape[2:], cfg), cfg.padding)
        dw = self.weight_gradient(dy, xp, w, cfg)
        return dx, dw, dy.sum(axis=(0, *_spatial(dy)))

    def output(self, xp, w, cfg):
        out = _out_size(xp.shape[2:], w.shape[2:], cfg.stride, cfg.dilation)
        xg, wg = _grouped(xp, cfg.groups), _kernels(w, cfg.groups)
        y = np.zeros((xp.shape[0], cfg.groups, w.shape[0] // cfg.groups, *out), xp.dtype)
        for tap in np.ndindex(*w.shape[2:]):
            patch = xg[(slice(None),) * 3 + _window(tap, out, cfg.stride, cfg.dilation)]
            y += np.einsum("ngc...,gfc->ngf...", patch, _taps(wg, tap))
        return y.reshape(xp.shape[0], w.shape[0], *out)

    def padded_input_gradient(self, dy, w, padded, cfg):
        return _scatter(dy, w, padded, cfg).reshape(dy.shape[0], -1, *padded)

    def weight_gradient(self, dy, xp, w, cfg):
        n = dy.shape[0]
        dyg = _grouped(dy, cfg.groups).reshape(n, cfg.groups, -1, math.prod(dy.shape[2:]))
        xg = _grouped(xp, cfg.groups)
        dw = np.zeros(_kernels(w, cfg.groups).shape, dy.dtype)
        for tap in np.ndindex(*w.shape[2:]):
            patch = xg[(slice(None),) * 3 + _window(tap, dy.shape[2:], cfg.stride, cfg.dilation)]
            dw[(Ellipsis, *tap)] = np.einsum("ngfp,ngcp->gfc", dyg, patch.reshape(*patch.shape[:3], -1))
        return dw.reshape(w.shape)


class Im2colConv(TapLoopConv):
    """Correct: im2col. The columns are gathered from each item's flattened padded input through a
    table of flat indices (channel, tap, position), one GEMM per group multiplies them with the
    kernels, and dX scatters the columns' gradient back through the same table."""

    index_dtype = np.intp

    def indices(self, channels, padded, kernel, out, cfg):
        """(C, taps, positions): where in one item's flattened (C, *padded) input each column entry is."""
        dtype = self.index_dtype
        steps = np.cumprod([1, *padded[::-1]])[::-1]  # elements per channel, per step on each axis
        table = np.arange(channels, dtype=dtype).reshape(-1, 1, 1) * np.array(steps[0]).astype(dtype)
        taps, positions = np.indices(kernel).reshape(len(kernel), -1), np.indices(out).reshape(len(out), -1)
        for axis, (s, d) in enumerate(zip(cfg.stride, cfg.dilation)):
            coordinate = (d * taps[axis][:, None] + s * positions[axis]).astype(dtype)
            table = table + coordinate * np.array(steps[axis + 1]).astype(dtype)
        return table

    def columns(self, xp, kernel, cfg):
        """(N, g, C/g * taps, positions)."""
        out = _out_size(xp.shape[2:], kernel, cfg.stride, cfg.dilation)
        table = self.indices(xp.shape[1], xp.shape[2:], kernel, out, cfg)
        return xp.reshape(xp.shape[0], -1)[:, table].reshape(xp.shape[0], cfg.groups, -1, math.prod(out))

    def output(self, xp, w, cfg):
        out = _out_size(xp.shape[2:], w.shape[2:], cfg.stride, cfg.dilation)
        y = np.matmul(w.reshape(cfg.groups, w.shape[0] // cfg.groups, -1), self.columns(xp, w.shape[2:], cfg))
        return y.reshape(xp.shape[0], w.shape[0], *out)

    def padded_input_gradient(self, dy, w, padded, cfg):
        n, c = dy.shape[0], w.shape[1] * cfg.groups
        kernels = w.reshape(cfg.groups, w.shape[0] // cfg.groups, -1)
        dcols = np.matmul(kernels.swapaxes(1, 2), dy.reshape(n, cfg.groups, -1, math.prod(dy.shape[2:])))
        table = self.indices(c, padded, w.shape[2:], dy.shape[2:], cfg)
        dxp = np.zeros((n, c * math.prod(padded)), dy.dtype)
        np.add.at(dxp, (slice(None), table), dcols.reshape(n, *table.shape))
        return dxp.reshape(n, c, *padded)

    def weight_gradient(self, dy, xp, w, cfg):
        dyg = dy.reshape(dy.shape[0], cfg.groups, -1, math.prod(dy.shape[2:]))
        return np.einsum("ngfp,ngkp->gfk", dyg, self.columns(xp, w.shape[2:], cfg)).reshape(w.shape)


# --- wrong past a threshold ------------------------------------------------------------------


class ChannelBlocks16(TapLoopConv):
    """dX in blocks of 16 input channels per group, as vector kernels do (16 float32 lanes). A
    partial last block is shifted back to a full block of 16 that overlaps the one before, so it
    needs no masked remainder; its new channels are the block's last ones, but the layer keeps
    the first ones, so they get the dX of the channels 16 before the end. Right while C/g <= 16
    (one block) and whenever C/g is a multiple of 16."""

    def padded_input_gradient(self, dy, w, padded, cfg):
        depth = w.shape[1]
        dxp = np.zeros((dy.shape[0], cfg.groups, depth, *padded), dy.dtype)
        for start in range(0, depth, 16):
            size, shifted = min(16, depth - start), max(0, min(start, depth - 16))
            block = _scatter(dy, w[:, shifted : shifted + 16], padded, cfg)
            dxp[:, :, start : start + size] = block[:, :, :size]  # the new channels are block[:, :, -size:]
        return dxp.reshape(dy.shape[0], -1, *padded)


class BatchChunks8(TapLoopConv):
    """dK over the batch in chunks of 8 items, to bound the workspace; each chunk's dK overwrites
    the total instead of adding to it, so only the last chunk counts once N > 8."""

    def weight_gradient(self, dy, xp, w, cfg):
        dw = np.zeros(w.shape, dy.dtype)
        for start in range(0, dy.shape[0], 8):
            dw = super().weight_gradient(dy[start : start + 8], xp[start : start + 8], w, cfg)  # dw += ...
        return dw


class WinogradOddOutputs(TapLoopConv):
    """O through Winograd F(2x2, 3x3) for 2-D 3x3 kernels at stride 1 and dilation 1, once the
    output is at least 9x9 (smaller outputs keep the direct sums). It computes whole 2x2 output
    tiles only, and an odd output height or width gets its last row or column copied from the one
    before instead of from a tile that overhangs the edge. dX and dK are the direct sums."""

    AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]])
    G = np.array([[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]])
    BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]])

    def output(self, xp, w, cfg):
        out = _out_size(xp.shape[2:], w.shape[2:], cfg.stride, cfg.dilation)
        if w.shape[2:] != (3, 3) or cfg.stride != (1, 1) or cfg.dilation != (1, 1) or min(out) < 9:
            return super().output(xp, w, cfg)
        (ho, wo), (th, tw) = out, (out[0] // 2, out[1] // 2)
        tiles = sliding_window_view(xp[:, :, : 2 * th + 2, : 2 * tw + 2], (4, 4), axis=(2, 3))[:, :, ::2, ::2]
        V = _grouped(self.BT @ tiles @ self.BT.T, cfg.groups)  # (N, g, C/g, th, tw, 4, 4)
        U = _kernels(self.G @ w @ self.G.T, cfg.groups)
        Y = (self.AT @ np.einsum("ngctsij,gfcij->ngftsij", V, U) @ self.AT.T).reshape(xp.shape[0], -1, th, tw, 2, 2)
        y = Y.transpose(0, 1, 2, 4, 3, 5).reshape(xp.shape[0], -1, 2 * th, 2 * tw).astype(xp.dtype, copy=False)
        return np.pad(y, [(0, 0), (0, 0), (0, ho % 2), (0, wo % 2)], mode="edge")  # not from an overhanging tile


class FFTLargeKernels(TapLoopConv):
    """dX through FFTs once a kernel has 5 or more taps on an axis, where they beat the direct
    sums: dX of the padded input is the valid correlation of dO (spread out by the stride and
    padded by the dilated kernel extent - 1) with the kernels rotated 180 degrees and swapped,
    computed as a product of spectra. The rotation is left out, so dX correlates dO with the
    kernels instead of convolving it. Smaller kernels keep the tap loop."""

    def padded_input_gradient(self, dy, w, padded, cfg):
        if max(w.shape[2:]) < 5:
            return super().padded_input_gradient(dy, w, padded, cfg)
        reach = [d * (k - 1) for k, d in zip(w.shape[2:], cfg.dilation)]
        spread = np.zeros((*dy.shape[:2], *(h - r for h, r in zip(padded, reach))), dy.dtype)
        spread[(slice(None), slice(None), *(slice(None, None, s) for s in cfg.stride))] = dy
        full = _pad(spread, reach)
        per_group = _kernels(w, cfg.groups)  # should be _kernels(np.flip(w, axis=_spatial(w)), cfg.groups)
        swapped = per_group.swapaxes(1, 2).reshape(-1, w.shape[0] // cfg.groups, *w.shape[2:])
        kernels = np.zeros((*swapped.shape[:2], *(r + 1 for r in reach)), dy.dtype)
        kernels[(slice(None), slice(None), *(slice(None, None, d) for d in cfg.dilation))] = swapped
        size, axes = full.shape[2:], _spatial(full)
        spectrum = np.einsum("ngf...,gcf...->ngc...", _grouped(np.fft.rfftn(full, axes=axes), cfg.groups),
                             _kernels(np.conj(np.fft.rfftn(kernels, s=size, axes=axes)), cfg.groups))
        correlation = np.fft.irfftn(spectrum.reshape(dy.shape[0], -1, *spectrum.shape[3:]), s=size, axes=axes)
        return correlation[(slice(None), slice(None), *(slice(0, h) for h in padded))].astype(dy.dtype, copy=False)


class PatchifyPath(TapLoopConv):
    """A patch embedding (2-D square kernel == stride >= 4, no padding, no dilation): the windows do
    not overlap, so O and dK are reshapes of the input into patches and one product each. dK's
    product is written with the patch axes in the wrong order, (v, u) for (u, v), which transposes
    every kernel: wrong unless the kernels happen to be symmetric."""

    @staticmethod
    def takes(w, cfg):
        k = w.shape[2:]
        square = len(k) == 2 and k[0] >= 4 and cfg.stride == (k[0],) * 2 == k
        return square and not any(cfg.padding) and cfg.dilation == (1, 1)

    @staticmethod
    def patches(xp, k, groups):
        """(N, g, C/g, Ho, k, Wo, k): the input cut into non-overlapping k x k patches."""
        n, c, h, wd = xp.shape
        return xp[:, :, : h // k * k, : wd // k * k].reshape(n, groups, c // groups, h // k, k, wd // k, k)

    def output(self, xp, w, cfg):
        if not self.takes(w, cfg):
            return super().output(xp, w, cfg)
        y = np.einsum("ngchuwv,gfcuv->ngfhw", self.patches(xp, w.shape[2], cfg.groups), _kernels(w, cfg.groups))
        return y.reshape(xp.shape[0], w.shape[0], *y.shape[3:])

    def weight_gradient(self, dy, xp, w, cfg):
        if not self.takes(w, cfg):
            return super().weight_gradient(dy, xp, w, cfg)
        patches = self.patches(xp, w.shape[2], cfg.groups)
        dw = np.einsum("ngfhw,ngchuwv->gfcvu", _grouped(dy, cfg.groups), patches)  # should be ->gfcuv
        return dw.reshape(w.shape)


class Float32GemmPastSize(Im2colConv):
    """A float64 layer whose forward GEMM drops to float32 once the column matrix (N * positions *
    C * taps entries) passes 100_000, to halve its memory: O then has float32 precision only."""

    def output(self, xp, w, cfg):
        out = _out_size(xp.shape[2:], w.shape[2:], cfg.stride, cfg.dilation)
        if xp.shape[0] * math.prod(out) * xp.shape[1] * math.prod(w.shape[2:]) > 100_000:
            return super().output(xp.astype(np.float32), w.astype(np.float32), cfg).astype(xp.dtype)
        return super().output(xp, w, cfg)


class Bfloat16SplitK(Im2colConv):
    """A float32 layer that splits dK's long reduction over output positions (past 4096 per item)
    into chunks of 1024, as split-K GEMMs do to use more threads, and stores each chunk's partial
    sums in a bfloat16 workspace before adding them up: dK keeps 8 bits, not 24."""

    def weight_gradient(self, dy, xp, w, cfg):
        positions = math.prod(dy.shape[2:])
        if positions <= 4096:
            return super().weight_gradient(dy, xp, w, cfg)
        dyg, cols = dy.reshape(dy.shape[0], cfg.groups, -1, positions), self.columns(xp, w.shape[2:], cfg)
        dw = np.zeros((cfg.groups, w.shape[0] // cfg.groups, cols.shape[2]), dy.dtype)
        for start in range(0, positions, 1024):
            chunk = slice(start, start + 1024)
            dw += _bfloat16(np.einsum("ngfp,ngkp->gfk", dyg[..., chunk], cols[..., chunk]))
        return dw.reshape(w.shape)


class Int16Indices(Im2colConv):
    """The im2col index table in int16 to save memory and bandwidth, as some embedded kernels do:
    right while every index fits, i.e. an item's padded input has at most 32768 elements (C * padded
    positions); past that the int16 arithmetic wraps around silently and the columns read (and dX
    writes) other elements."""

    index_dtype = np.int16


class ThreadBands(TapLoopConv):
    """dX split over 4 threads past 4096 output positions per item: each thread takes a band of
    output rows (the first spatial axis) and scatters it into the input rows its windows read. The
    bands are stored instead of added, so input rows that two bands' windows share (wherever the
    dilated kernel is taller than the stride) keep only the later band's share."""

    def padded_input_gradient(self, dy, w, padded, cfg):
        if math.prod(dy.shape[2:]) <= 4096:
            return super().padded_input_gradient(dy, w, padded, cfg)
        dxp = np.zeros((dy.shape[0], w.shape[1] * cfg.groups, *padded), dy.dtype)
        reach, s = cfg.dilation[0] * (w.shape[2] - 1), cfg.stride[0]
        for band in np.array_split(np.arange(dy.shape[2]), min(4, dy.shape[2])):
            top, bottom = band[0] * s, band[-1] * s + reach + 1  # the padded rows this band reads
            part = _scatter(dy[:, :, band[0] : band[-1] + 1], w, (bottom - top, *padded[1:]), cfg)
            dxp[:, :, top:bottom] = part.reshape(dy.shape[0], -1, *part.shape[3:])  # should be +=
        return dxp


class ClipsWeightGradient(TapLoopConv):
    """Clips dK to [-100, 100] inside the layer, gradient clipping put in the wrong place: right
    while every |dK| <= 100, which small cases keep to."""

    def weight_gradient(self, dy, xp, w, cfg):
        return np.clip(super().weight_gradient(dy, xp, w, cfg), -100, 100)


class StridedOneByOnePadding(TapLoopConv):
    """A 1x1-kernel fast path: pick every s-th input position, then one channel product. It applies
    the padding after subsampling (pad(x[::s])) instead of before (pad(x)[::s]), so with stride > 1
    and padding > 0 the stride walks the unpadded input and reads the wrong positions. The path is
    not taken at stride 1 with padding, where the two orders agree anyway."""

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        if any(k != 1 for k in w.shape[2:]) or (any(padding) and max(stride) == 1):
            return super().forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        out = _out_size([h + 2 * p for h, p in zip(x.shape[2:], padding)], w.shape[2:], stride, dilation)
        picked = _pad(x[(slice(None), slice(None), *(slice(None, None, s) for s in stride))], padding)  # pad first
        picked = picked[(slice(None), slice(None), *(slice(0, o) for o in out))]
        y = np.einsum("ngc...,gfc->ngf...", _grouped(picked, groups), _kernels(w.reshape(w.shape[:2]), groups))
        return y.reshape(x.shape[0], w.shape[0], *out) + b.reshape(1, -1, *[1] * len(out)).astype(y.dtype, copy=False)
