"""Every layer of the zoo: one correct conv layer written by hand, and the classic mistakes made in it.

`TapLoopConv` is a correct layer written independently of convgrad's reference: a loop over the
kernel taps, each tap one vectorised slice (forward: gather; backward: scatter). `TextbookConv`
computes dX the way the textbook says, as a full convolution of dO with the kernels rotated 180
degrees and swapped. Every wrong layer is a subclass that changes the one or two lines where the
mistake is made, and `OneCoordinateOff` puts a single wrong number into a correct gradient.

The files next to this one (kernels_not_rotated.py, ...) each export one of these layers for
`convgrad check --impl FILE.py`; any class here also loads as `--impl tests/zoo/layers.py:NAME`.
This file imports nothing but NumPy, so the command line can load it from any folder.
"""

from __future__ import annotations

import numpy as np


def _window(tap, out, stride, dilation):
    """Positions of the padded input that kernel tap `tap` reads for every output position."""
    return tuple(slice(d * u, d * u + s * (o - 1) + 1, s) for u, o, s, d in zip(tap, out, stride, dilation))


def _flat(a):
    return a.reshape(*a.shape[:2], -1)


def _spatial_axes(a):
    return tuple(range(2, a.ndim))


class TapLoopConv:
    """A correct conv layer: for each kernel tap, gather (forward) or scatter (backward)."""

    name = "tap-loop"

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        n, c = x.shape[:2]
        f, depth = w.shape[:2]
        per_group = f // groups
        xp = self.padded(x, padding)
        out = self.out_size(x.shape[2:], w.shape[2:], stride, padding, dilation)
        y = np.zeros((n, f, *out))
        for tap in np.ndindex(*w.shape[2:]):
            patch = xp[(slice(None), slice(None), *_window(tap, out, stride, dilation))]
            for g in range(groups):
                fs, cs = slice(g * per_group, (g + 1) * per_group), slice(g * depth, (g + 1) * depth)
                y[:, fs] += np.einsum("nc...,fc->nf...", patch[:, cs], w[(fs, slice(None), *tap)])
        return y + b.reshape(1, -1, *([1] * (x.ndim - 2)))

    def padded(self, x, padding):
        return np.pad(x, [(0, 0), (0, 0), *((p, p) for p in padding)])

    @staticmethod
    def out_size(spatial, kernel, stride, padding, dilation):
        return [(h + 2 * p - d * (k - 1) - 1) // s + 1 for h, k, s, p, d in zip(spatial, kernel, stride, padding, dilation)]

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        dx = self.input_gradient(dy, x, w, **settings)
        dw = self.weight_gradient(dy, x, w, **settings)
        db = self.bias_gradient(dy, w)
        return dx, dw, db

    def groups_of(self, f, groups):
        """The kernels of each group: the first F/g belong to group 0, and so on."""
        per_group = f // groups
        return [slice(g * per_group, (g + 1) * per_group) for g in range(groups)]

    def kernels_for_dx(self, f, groups, depth):
        """The kernels each group's dX channels are computed from."""
        return self.groups_of(f, groups)

    def input_gradient(self, dy, x, w, *, stride, padding, dilation, groups):
        dxp = self.padded_input_gradient(dy, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
        return self.crop(dxp, x.shape[2:], padding)

    def padded_input_gradient(self, dy, x, w, *, stride, padding, dilation, groups):
        """dX of the padded input: every tap scatters w * dO back onto the positions it read."""
        depth = w.shape[1]
        out = dy.shape[2:]
        padded = [h + 2 * p for h, p in zip(x.shape[2:], padding)]
        dxp = np.zeros((*x.shape[:2], *padded))
        for tap in np.ndindex(*w.shape[2:]):
            where = (slice(None), slice(None), *self.scatter_window(tap, out, stride, dilation))
            for g, fs in enumerate(self.kernels_for_dx(w.shape[0], groups, depth)):
                cs = slice(g * depth, (g + 1) * depth)
                dxp[where][:, cs] += np.einsum("nf...,fc->nc...", dy[:, fs], w[(fs, slice(None), *tap)])
        return dxp

    def scatter_window(self, tap, out, stride, dilation):
        return _window(tap, out, stride, dilation)

    def crop(self, dxp, spatial, padding):
        return dxp[(slice(None), slice(None), *(slice(p, p + h) for p, h in zip(padding, spatial)))]

    def weight_gradient(self, dy, x, w, *, stride, padding, dilation, groups):
        depth = w.shape[1]
        out = dy.shape[2:]
        xp = self.padded_for_weight_gradient(x, padding)
        dw = np.zeros(w.shape)
        for tap in np.ndindex(*w.shape[2:]):
            patch = xp[(slice(None), slice(None), *self.gather_window(tap, out, stride, dilation))]
            for g, fs in enumerate(self.groups_of(w.shape[0], groups)):
                cs = slice(g * depth, (g + 1) * depth)
                dw[(fs, slice(None), *tap)] = np.einsum("nfp,ncp->fc", _flat(dy[:, fs]), _flat(patch[:, cs]))
        return dw

    def gather_window(self, tap, out, stride, dilation):
        return _window(tap, out, stride, dilation)

    def padded_for_weight_gradient(self, x, padding):
        return np.pad(x, [(0, 0), (0, 0), *((p, p) for p in padding)])

    def bias_gradient(self, dy, w):
        return dy.sum(axis=(0, *_spatial_axes(dy)))


class TextbookConv(TapLoopConv):
    """dX as the textbook's full convolution: zero-insert dO, pad it by the dilated kernel - 1,
    correlate with the kernels rotated 180 degrees and swapped, crop the padding."""

    name = "textbook"

    def prepare_kernels(self, w, groups):
        f, depth = w.shape[:2]
        rotated = np.flip(w, axis=_spatial_axes(w))
        per_group = rotated.reshape(groups, f // groups, depth, *w.shape[2:])
        return per_group.swapaxes(1, 2).reshape(groups * depth, f // groups, *w.shape[2:])

    def input_gradient(self, dy, x, w, *, stride, padding, dilation, groups):
        kernel = w.shape[2:]
        reach = [d * (k - 1) for k, d in zip(kernel, dilation)]
        padded = [h + 2 * p for h, p in zip(x.shape[2:], padding)]
        spread = np.zeros((*dy.shape[:2], *(hp - r for hp, r in zip(padded, reach))))
        spread[(slice(None), slice(None), *(slice(None, None, s) for s in stride))] = dy
        full = np.pad(spread, [(0, 0), (0, 0), *((r, r) for r in reach)])
        dxp = self.full_convolution(full, w, dilation, groups)
        return self.crop(dxp, x.shape[2:], padding)

    def full_convolution(self, full, w, dilation, groups):
        """Valid correlation of the padded dO with the rotated, swapped kernels."""
        return self.correlate(full, self.prepare_kernels(w, groups), dilation, groups)

    @staticmethod
    def correlate(full, kernels, dilation, groups):
        ones = [1] * (kernels.ndim - 2)
        return TapLoopConv().forward(
            full, kernels, np.zeros(kernels.shape[0]), stride=ones, padding=[0] * len(ones), dilation=dilation, groups=groups
        )


CORRECT = (TapLoopConv, TextbookConv)  # Im2colConv too: defined below with its wrong orders


# --- dX -----------------------------------------------------------------------------------


class KernelsNotRotated(TextbookConv):
    def prepare_kernels(self, w, groups):
        f, depth = w.shape[:2]
        per_group = w.reshape(groups, f // groups, depth, *w.shape[2:])  # forgot np.flip
        return per_group.swapaxes(1, 2).reshape(groups * depth, f // groups, *w.shape[2:])


class KernelsNotSwapped(TextbookConv):
    """With C != F the shapes do not fit (dX gets the wrong depth, or backward raises); with C == F
    it gives the wrong dX."""

    def prepare_kernels(self, w, groups):
        return np.flip(w, axis=_spatial_axes(w))  # F x C/g used as if it were C x F/g


class KernelsReshapedNotSwapped(TextbookConv):
    def prepare_kernels(self, w, groups):
        f, depth = w.shape[:2]
        rotated = np.flip(w, axis=_spatial_axes(w))
        return rotated.reshape(groups * depth, f // groups, *w.shape[2:])  # reshape is not a transpose


class DxDepthF(TextbookConv):
    """Convolves each dO channel with its own rotated kernel, summed over the kernel's depth, so dX
    gets depth F (one channel per kernel) instead of depth C."""

    def full_convolution(self, full, w, dilation, groups):
        rotated = np.flip(w, axis=_spatial_axes(w))
        return self.correlate(full, rotated.sum(axis=1, keepdims=True), dilation, groups=w.shape[0])


class PaddingCropOffByOne(TapLoopConv):
    """Crops the padding off dX one pixel early (from pad - 1 instead of pad; right where there is
    no padding)."""

    shift = -1

    def crop(self, dxp, spatial, padding):
        starts = [max(p + self.shift, 0) for p in padding]
        return dxp[(slice(None), slice(None), *(slice(s, s + h) for s, h in zip(starts, spatial)))]


class PaddingCroppedTooFar(PaddingCropOffByOne):
    """Crops the padding off dX one pixel too far (from pad + 1): without padding, dX comes back
    one pixel short."""

    shift = 1


class StrideIgnoredInDx(TapLoopConv):
    """dX scatters output position i back onto window i instead of s*i."""

    def scatter_window(self, tap, out, stride, dilation):
        return tuple(slice(d * u, d * u + o) for u, o, d in zip(tap, out, dilation))


class DilationIgnored(TapLoopConv):
    """Both gradients read and write tap u at s*i + u, as if there were no dilation."""

    def scatter_window(self, tap, out, stride, dilation):
        return _window(tap, out, stride, [1] * len(tap))

    def gather_window(self, tap, out, stride, dilation):
        return _window(tap, out, stride, [1] * len(tap))


class GroupsInterleaved(TapLoopConv):
    """Backward takes kernel f to be in group f % g (forward is right: f // (F/g))."""

    def groups_of(self, f, groups):
        return [slice(g, None, groups) for g in range(groups)]


class GroupsMixedInDx(TapLoopConv):
    """In dX, group g takes its kernels from g * C/g instead of g * F/g, so groups borrow each
    other's kernels whenever C != F (dK is right)."""

    def kernels_for_dx(self, f, groups, depth):
        return [slice(g * depth, g * depth + f // groups) for g in range(groups)]


class DxEdgesForgotten(TextbookConv):
    """Computes dX only where every kernel tap lands inside dO and leaves the edges at zero."""

    def input_gradient(self, dy, x, w, *, stride, padding, dilation, groups):
        dx = super().input_gradient(dy, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
        reach = [d * (k - 1) for k, d in zip(w.shape[2:], dilation)]
        interior = tuple(slice(r, h - r) for r, h in zip(reach, x.shape[2:]))
        edges_zero = np.zeros_like(dx)
        edges_zero[(slice(None), slice(None), *interior)] = dx[(slice(None), slice(None), *interior)]
        return edges_zero


class DxAveragedOverWindows(TapLoopConv):
    """Overlapping window contributions to dX are averaged instead of summed; pixels that no window
    reaches (stride larger than the kernel) become 0 / 0 = NaN."""

    def input_gradient(self, dy, x, w, *, stride, padding, dilation, groups):
        dxp = self.padded_input_gradient(dy, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
        windows_per_pixel = np.zeros(dxp.shape[2:])
        for tap in np.ndindex(*w.shape[2:]):
            windows_per_pixel[self.scatter_window(tap, dy.shape[2:], stride, dilation)] += 1
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.crop(dxp / windows_per_pixel, x.shape[2:], padding)


# --- dK and db ----------------------------------------------------------------------------


class StrideIgnoredInDk(TapLoopConv):
    """dK correlates dO with the input windows at i instead of s*i."""

    def gather_window(self, tap, out, stride, dilation):
        return tuple(slice(d * u, d * u + o) for u, o, d in zip(tap, out, dilation))


class BiasAveragedOverBatch(TapLoopConv):
    """db as the mean over the batch, as if E were averaged over the samples (dK is right)."""

    def bias_gradient(self, dy, w):
        return dy.mean(axis=0).sum(axis=tuple(range(1, dy.ndim - 1)))


class BatchAveraged(BiasAveragedOverBatch):
    """dK and db as the mean over the batch, as if E were averaged over the samples."""

    def weight_gradient(self, dy, x, w, **settings):
        return super().weight_gradient(dy, x, w, **settings) / dy.shape[0]


class BiasFromFirstImage(TapLoopConv):
    """db sums dO over the spatial axes of the first image only, not over the batch."""

    def bias_gradient(self, dy, w):
        return dy[0].sum(axis=tuple(range(1, dy.ndim - 1)))


class BiasOncePerKernelElement(TapLoopConv):
    """Accumulates db inside the loop over kernel taps."""

    def bias_gradient(self, dy, w):
        db = np.zeros(dy.shape[1])
        for _ in np.ndindex(*w.shape[2:]):
            db += dy.sum(axis=(0, *_spatial_axes(dy)))
        return db


# --- the whole backward pass --------------------------------------------------------------


class ClipsDyInPlace(TapLoopConv):
    """Backward clips the upstream gradient in place, changing the caller's array."""

    clip = 1.0

    def backward(self, dy, x, w, b, **settings):
        np.clip(dy, -self.clip, self.clip, out=dy)
        return super().backward(dy, x, w, b, **settings)


# --- O ------------------------------------------------------------------------------------


class TrueConvolution(TapLoopConv):
    """A true convolution (kernels flipped) with its own exact gradient: consistent, but not conv."""

    def forward(self, x, w, b, **settings):
        return super().forward(x, np.flip(w, axis=_spatial_axes(w)), b, **settings)

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = super().backward(dy, x, np.flip(w, axis=_spatial_axes(w)), b, **settings)
        return dx, np.flip(dw, axis=_spatial_axes(w)), db


class ForwardFlipsKernels(TapLoopConv):
    """Forward flips the kernels (a true convolution); backward is right for a cross-correlation."""

    def forward(self, x, w, b, **settings):
        return super().forward(x, np.flip(w, axis=_spatial_axes(w)), b, **settings)


class RaisesWhenStrideDoesNotTile(TapLoopConv):
    """Like many course solutions, forward asserts that the stride tiles the padded input exactly,
    so layers where it does not (a legal setting: the remainder is dropped) crash."""

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        axes = ("depth", "height", "width")[-len(stride):]
        for axis, h, k, s, p, d in zip(axes, x.shape[2:], w.shape[2:], stride, padding, dilation):
            assert (h + 2 * p - d * (k - 1) - 1) % s == 0, f"{axis} does not tile"
        return super().forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)


# --- correct, with state: what forward keeps is what backward uses ---------------------------


class KeepsInputsForBackward(TapLoopConv):
    """Correct: forward keeps x and w for backward, as layer objects do; every forward replaces them."""

    def forward(self, x, w, b, **settings):
        self.x, self.w = x.copy(), w.copy()
        return super().forward(x, w, b, **settings)

    def backward(self, dy, x, w, b, **settings):
        return super().backward(dy, self.x, self.w, b, **settings)


# --- wrong only after the first call: state kept between calls, returned buffers -------------
# Each passes one call on fresh C-ordered inputs; the call protocol's later calls catch it.


class AccumulatesKernelGradient(TapLoopConv):
    """dK += ... into a buffer created once and never zeroed, like a .grad attribute."""

    def __init__(self):
        self.dw = None

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = super().backward(dy, x, w, b, **settings)
        if self.dw is None:
            self.dw = np.zeros_like(dw)
        self.dw += dw
        return dx, self.dw.copy(), db


class CachesPaddedInput(TapLoopConv):
    """Keeps the padded input, refreshed only when the input's shape changes."""

    def __init__(self):
        self.shape, self.cache = None, None

    def padded(self, x, padding):
        if x.shape != self.shape:
            self.shape, self.cache = x.shape, super().padded(x, padding)
        return self.cache


class ReturnsWorkspace(TapLoopConv):
    """Writes the output into a workspace it keeps, and returns the workspace itself."""

    def __init__(self):
        self.out = None

    def forward(self, x, w, b, **settings):
        y = super().forward(x, w, b, **settings)
        if self.out is None or self.out.shape != y.shape:
            self.out = np.empty_like(y)
        self.out[...] = y
        return self.out


# --- wrong for inputs that are not in C order --------------------------------------------------


class WindowsFromShape(TapLoopConv):
    """2-D forward by as_strided windows whose strides are computed from the shape, as if x were
    C-ordered; np.pad makes a C-ordered copy, so only unpadded, non-contiguous inputs go wrong."""

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        if x.ndim != 4 or any(d != 1 for d in dilation) or groups != 1:
            return super().forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        xp = self.padded(x, padding) if any(padding) else x
        n, c, h, wd = xp.shape
        kh, kw = w.shape[2:]
        (sh, sw), item = stride, xp.itemsize
        oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
        rows, cols = wd * item, item  # C order assumed
        windows = np.lib.stride_tricks.as_strided(
            xp, shape=(n, c, oh, ow, kh, kw),
            strides=(c * h * rows, h * rows, rows * sh, cols * sw, rows, cols),
        )
        return np.einsum("ncijuv,fcuv->nfij", windows, w) + b.reshape(1, -1, 1, 1)


class RavelsInOrderA(TapLoopConv):
    """Flattens x with order='A' ("whatever order it is in") and reshapes it back in C order:
    right for C-ordered x, scrambled when x arrives in Fortran order."""

    def forward(self, x, w, b, **settings):
        return super().forward(np.ravel(x, order="A").reshape(x.shape), w, b, **settings)


class ChannelsLastFastPath(TapLoopConv):
    """Takes an NHWC fast path when x's channels are its fastest axis (x.strides[1] == itemsize),
    and that path reads the kernel's last axis back to front."""

    def forward(self, x, w, b, **settings):
        if x.ndim > 2 and x.shape[1] > 1 and x.strides[1] == x.itemsize:
            w = w[..., ::-1]
        return super().forward(x, w, b, **settings)


# --- correct, to rounding: no exact zeros ------------------------------------------------------


class RoundingNoise(TapLoopConv):
    """Correct, but its gradients carry rounding noise everywhere, as an FFT or Winograd conv's do:
    about 1e-15 of a product term, even where the true gradient is exactly zero."""

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = super().backward(dy, x, w, b, **settings)
        rng = np.random.default_rng(dx.size)
        term = float(np.abs(dy).max(initial=0.0))
        dx = dx + 1e-15 * term * float(np.abs(w).max(initial=0.0)) * rng.standard_normal(dx.shape)
        dw = dw + 1e-15 * term * float(np.abs(x).max(initial=0.0)) * rng.standard_normal(dw.shape)
        return dx, dw, db


# --- settings that are wrong only together --------------------------------------------------


class GroupsStackedWithoutTranspose(TapLoopConv):
    """Groups computed one by one and joined with stack + reshape, without moving the group axis
    behind the batch axis: right for batch 1 or groups 1, wrong when they meet."""

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        if groups == 1:
            return super().forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=1)
        n, c, f = x.shape[0], x.shape[1] // groups, w.shape[0] // groups
        parts = [
            super(GroupsStackedWithoutTranspose, self).forward(
                x[:, g * c:(g + 1) * c], w[g * f:(g + 1) * f], b[g * f:(g + 1) * f],
                stride=stride, padding=padding, dilation=dilation, groups=1,
            )
            for g in range(groups)
        ]
        stacked = np.stack(parts)  # (groups, N, F/g, *out): needs moveaxis(0, 1) before the reshape
        return stacked.reshape(n, groups * f, *stacked.shape[3:])


class PaddingWithBatchShifted(TapLoopConv):
    """Crops dX out of the padded buffer with offsets from the unpadded layout, which moves each
    batch item's gradient onto the next: right for padding 0 or batch 1, wrong when they meet."""

    def input_gradient(self, dy, x, w, *, stride, padding, dilation, groups):
        dx = super().input_gradient(dy, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
        return np.roll(dx, 1, axis=0) if any(padding) else dx


class DepthwiseMultiplierMixed(TapLoopConv):
    """Depthwise (groups = C) dX that pairs kernel f with channel f % C instead of f // (F/C):
    right when F = C, wrong with a channel multiplier (F = 2C)."""

    def kernels_for_dx(self, f, groups, depth):
        if groups * depth != groups or f == groups:  # not depthwise, or no multiplier
            return super().kernels_for_dx(f, groups, depth)
        return [list(range(g, f, groups)) for g in range(groups)]


class FirstDilationForEveryAxis(TapLoopConv):
    """Takes dilation[0] for every axis, forward and backward alike (a layer written for square
    dilations): right whenever the dilations are equal."""

    def forward(self, x, w, b, *, dilation, **settings):
        return super().forward(x, w, b, dilation=tuple(dilation[:1]) * len(dilation), **settings)

    def backward(self, dy, x, w, b, *, dilation, **settings):
        return super().backward(dy, x, w, b, dilation=tuple(dilation[:1]) * len(dilation), **settings)


class ChunkedBatch(TapLoopConv):
    """dK summed over the batch in chunks of 4 with the chunk count rounded down: batches of 5 or
    more lose their last items."""

    def weight_gradient(self, dy, x, w, **settings):
        chunks = max(1, x.shape[0] // 4)
        return sum(super(ChunkedBatch, self).weight_gradient(dy[4 * i:4 * i + 4], x[4 * i:4 * i + 4], w, **settings)
                   for i in range(chunks))


# --- interfaces that do not match ------------------------------------------------------------


class BackwardWithoutDilation(TapLoopConv):
    """forward takes dilation; backward does not, and computes the undilated gradient."""

    def backward(self, dy, x, w, b, *, stride, padding, groups):
        ones = (1,) * (x.ndim - 2)
        return super().backward(dy, x, w, b, stride=stride, padding=padding, dilation=ones, groups=groups)


# --- float32: correct in the layer's own precision, and layers that keep fewer bits -----------


def _windows(xp, kernel, out, stride, dilation, writeable=False):
    """(N, C, *out, *kernel): the padded input each output position reads, as a strided view."""
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    view = np.lib.stride_tricks.sliding_window_view(xp, extent, axis=tuple(range(2, xp.ndim)), writeable=writeable)
    steps = (slice(None), slice(None), *(slice(None, s * (o - 1) + 1, s) for s, o in zip(stride, out)))
    return view[steps][(Ellipsis, *(slice(None, None, d) for d in dilation))]


def round_mantissa(a, bits):
    """float32 values rounded to nearest with `bits` stored mantissa bits (TF32: 10)."""
    drop = 23 - bits
    raw = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    kept = np.uint32((0xFFFFFFFF >> drop) << drop)
    return ((raw + np.uint32(1 << (drop - 1))) & kept).view(np.float32)


class Float32TapLoop(TapLoopConv):
    """Correct, computed in the inputs' own precision (every sum kept in an array of x's dtype):
    one tap at a time. Its subclasses sum all taps at once (einsum, im2col with matmul), or keep
    fewer bits somewhere (the float16 and TF32 layers below)."""

    name = "float32 loop of taps"

    def operands(self, *arrays):
        """What is multiplied: the arrays as given (TF32 rounds them)."""
        return arrays

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        x, w = self.operands(x, w)
        out = self.out_size(x.shape[2:], w.shape[2:], stride, padding, dilation)
        cols = _windows(self.padded(x, padding), w.shape[2:], out, stride, dilation)
        y = np.zeros((x.shape[0], w.shape[0], *out), dtype=x.dtype)
        for fs, cs in self.group_slices(w, groups):
            y[:, fs] = self.output_sum(cols[:, cs], w[fs]).astype(x.dtype)
        return y + b.astype(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))

    @staticmethod
    def group_slices(w, groups):
        depth, per_group = w.shape[1], w.shape[0] // groups
        return [(slice(g * per_group, (g + 1) * per_group), slice(g * depth, (g + 1) * depth)) for g in range(groups)]

    def output_sum(self, cols, w):
        y = np.zeros((cols.shape[0], w.shape[0], *cols.shape[2:cols.ndim - w.ndim + 2]), dtype=cols.dtype)
        for tap in np.ndindex(*w.shape[2:]):
            y += np.einsum("nc...,fc->nf...", cols[(Ellipsis, *tap)], w[(slice(None), slice(None), *tap)])
        return y

    def weight_sum(self, dy, cols):
        kernel = cols.shape[dy.ndim:]
        dw = np.zeros((dy.shape[1], cols.shape[1], *kernel), dtype=cols.dtype)
        for tap in np.ndindex(*kernel):
            dw[(Ellipsis, *tap)] = np.einsum("nfp,ncp->fc", _flat(dy), _flat(cols[(Ellipsis, *tap)]))
        return dw

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        dy, x, w = self.operands(dy, x, w)
        out, kernel = dy.shape[2:], w.shape[2:]
        cols = _windows(self.padded(x, padding), kernel, out, stride, dilation)
        dxp = self.input_buffer(self.padded(x, padding))
        dcols = _windows(dxp, kernel, out, stride, dilation, writeable=True)  # one tap's view never overlaps
        dw = np.zeros(w.shape, dtype=x.dtype)
        for fs, cs in self.group_slices(w, groups):
            dw[fs] = self.weight_sum(dy[:, fs], cols[:, cs])
            for tap in np.ndindex(*kernel):
                spread = np.einsum("nf...,fc->nc...", dy[:, fs], w[(fs, slice(None), *tap)])
                dcols[(slice(None), cs, Ellipsis, *tap)] += spread.astype(dxp.dtype)
        dx = self.crop(dxp, x.shape[2:], padding).astype(x.dtype)
        return dx, dw, dy.sum(axis=(0, *_spatial_axes(dy)), dtype=dy.dtype)

    def input_buffer(self, xp):
        """Where dX of the padded input is summed, one tap after another."""
        return np.zeros(xp.shape, dtype=xp.dtype)


class Float32Einsum(Float32TapLoop):
    """Correct in float32: O and dK as one einsum over every tap."""

    name = "float32 einsum"

    @staticmethod
    def _letters(ndim):
        return "".join("xyz"[:ndim]), "".join("ijk"[:ndim])

    def output_sum(self, cols, w):
        out, taps = self._letters(w.ndim - 2)
        return np.einsum(f"nc{out}{taps},fc{taps}->nf{out}", cols, w)

    def weight_sum(self, dy, cols):
        out, taps = self._letters(dy.ndim - 2)
        return np.einsum(f"nf{out},nc{out}{taps}->fc{taps}", dy, cols)


class Float32Im2col(Float32TapLoop):
    """Correct in float32: the windows as the rows of a matrix, O and dK by matmul (BLAS)."""

    name = "float32 im2col"

    def output_sum(self, cols, w):
        spatial = w.ndim - 2
        n, out = cols.shape[0], cols.shape[2:2 + spatial]
        rows = np.moveaxis(cols, 1, 1 + spatial).reshape(n * int(np.prod(out)), -1)  # (N*out, C*taps)
        y = rows @ w.reshape(w.shape[0], -1).T
        return np.moveaxis(y.reshape(n, *out, w.shape[0]), -1, 1)

    def weight_sum(self, dy, cols):
        spatial = dy.ndim - 2
        kernel = cols.shape[2 + spatial:]
        rows = np.moveaxis(cols, 1, 1 + spatial).reshape(dy[:, 0].size, -1)
        grads = np.moveaxis(dy, 1, -1).reshape(-1, dy.shape[1])
        return (grads.T @ rows).reshape(dy.shape[1], cols.shape[1], *kernel)


def _half(dtype):
    """The mixed-precision layers below take shortcuts for float32 only, as GPU libraries do."""
    return np.float16 if dtype == np.float32 else dtype


class KernelGradientInFloat16(Float32TapLoop):
    """float32 dK summed in a float16 buffer, one image and one output row at a time."""

    def weight_sum(self, dy, cols):
        half = _half(cols.dtype)
        dw = np.zeros((dy.shape[1], cols.shape[1], *cols.shape[dy.ndim:]), dtype=half)
        for n in range(dy.shape[0]):
            for row in range(dy.shape[2]):
                dw += super().weight_sum(dy[n:n + 1, :, row:row + 1], cols[n:n + 1, :, row:row + 1]).astype(half)
        return dw.astype(cols.dtype)


class InputGradientInFloat16(Float32TapLoop):
    """float32 dX summed in a float16 buffer, one tap after another."""

    def input_buffer(self, xp):
        return np.zeros(xp.shape, dtype=_half(xp.dtype))


class TF32Products(Float32Im2col):
    """float32 operands rounded to TF32 (10 mantissa bits) before every product, sums in float32:
    what a GPU convolution does with TF32 math enabled."""

    def operands(self, *arrays):
        return tuple(round_mantissa(a, 10) if a.dtype == np.float32 else a for a in arrays)


class ForwardThroughFloat16(Float32Im2col):
    """The float32 forward pass computed in float16 (inputs, sums and result), returned as float32."""

    def forward(self, x, w, b, **settings):
        half = (a.astype(_half(x.dtype)) for a in (x, w, b))
        return super().forward(*half, **settings).astype(x.dtype)


FLOAT32_CORRECT = (Float32TapLoop, Float32Einsum, Float32Im2col)
# Each layer that keeps fewer bits in float32: the row that must fail, and words of its likely cause.
FLOAT32_FEWER_BITS = {
    KernelGradientInFloat16: ("dK vs float64 reference", "float16 accumulation"),
    InputGradientInFloat16: ("dX vs float64 reference", "float16 accumulation"),
    TF32Products: ("dK vs float64 reference", "TF32 products"),
    ForwardThroughFloat16: ("O", "goes through float16"),
}
# --- im2col: kernels and patches flattened in different orders ------------------------------


class Im2colConv(TapLoopConv):
    """A correct im2col layer: per group, one matrix product of the flattened kernels
    w.reshape(F/g, -1), elements in (C, kh, kw) order, with the input patches (im2col columns)
    listed in the same order."""

    channels_last = False  # the patches list each window tap by tap, channels innermost: (kh, kw, C)

    def patches(self, x, kernel, out, stride, padding, dilation):
        """(N, C, *kernel, *out): the input element each kernel tap reads at each output position."""
        xp = self.padded(x, padding)
        taps = [xp[(slice(None), slice(None), *_window(tap, out, stride, dilation))] for tap in np.ndindex(*kernel)]
        return np.stack(taps, axis=2).reshape(*x.shape[:2], *kernel, *out)

    def columns(self, patches, ndim):
        """(N, rows, positions), the rows in (C, k...) order or, channels last, (k..., C)."""
        if self.channels_last:
            patches = np.moveaxis(patches, 1, 1 + ndim)
        n = patches.shape[0]
        rows = int(np.prod(patches.shape[1 : 2 + ndim]))
        return patches.reshape(n, rows, -1)

    def uncolumns(self, columns, shape, ndim):
        """The inverse of `columns`: (N, C, *kernel, *out) of `shape`."""
        if not self.channels_last:
            return columns.reshape(shape)
        moved = (shape[0], *shape[2 : 2 + ndim], shape[1], *shape[2 + ndim :])
        return np.moveaxis(columns.reshape(moved), 1 + ndim, 1)

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        ndim = x.ndim - 2
        out = self.out_size(x.shape[2:], w.shape[2:], stride, padding, dilation)
        patches = self.patches(x, w.shape[2:], out, stride, padding, dilation)
        depth = w.shape[1]
        y = np.zeros((x.shape[0], w.shape[0], int(np.prod(out))))
        for g, fs in enumerate(self.groups_of(w.shape[0], groups)):
            cols = self.columns(patches[:, g * depth : (g + 1) * depth], ndim)
            y[:, fs] = np.einsum("fk,nkp->nfp", w[fs].reshape(w[fs].shape[0], -1), cols)
        return y.reshape(*y.shape[:2], *out) + b.reshape(1, -1, *([1] * ndim))

    def input_gradient(self, dy, x, w, *, stride, padding, dilation, groups):
        ndim, depth, out = x.ndim - 2, w.shape[1], dy.shape[2:]
        dpatches = np.zeros((*x.shape[:2], *w.shape[2:], *out))
        for g, fs in enumerate(self.groups_of(w.shape[0], groups)):
            cs = slice(g * depth, (g + 1) * depth)
            dcols = np.einsum("fk,nfp->nkp", w[fs].reshape(w[fs].shape[0], -1), _flat(dy[:, fs]))
            dpatches[:, cs] = self.uncolumns(dcols, dpatches[:, cs].shape, ndim)
        dxp = np.zeros((*x.shape[:2], *(h + 2 * p for h, p in zip(x.shape[2:], padding))))
        for tap in np.ndindex(*w.shape[2:]):
            dxp[(slice(None), slice(None), *_window(tap, out, stride, dilation))] += dpatches[(slice(None), slice(None), *tap)]
        return self.crop(dxp, x.shape[2:], padding)

    def weight_gradient(self, dy, x, w, *, stride, padding, dilation, groups):
        ndim, depth, out = x.ndim - 2, w.shape[1], dy.shape[2:]
        patches = self.patches(x, w.shape[2:], out, stride, padding, dilation)
        dw = np.zeros(w.shape)
        for g, fs in enumerate(self.groups_of(w.shape[0], groups)):
            cols = self.columns(patches[:, g * depth : (g + 1) * depth], ndim)
            dw[fs] = np.einsum("nfp,nkp->fk", _flat(dy[:, fs]), cols).reshape(dw[fs].shape)
        return dw


class Im2colKernelOrder(Im2colConv):
    """The patches list each window channels innermost, (kh, kw, C), while the kernels are
    flattened as laid out, (C, kh, kw): O is the convolution of permuted kernels. The backward is
    the exact gradient of that forward, so dX, dK and db match its finite differences."""

    channels_last = True


class Im2colKernelOrderInDk(TapLoopConv):
    """A correct forward and dX, but dK computed from patches in (kh, kw, C) order and reshaped
    as if it were laid out (C, kh, kw)."""

    def weight_gradient(self, dy, x, w, **settings):
        return Im2colKernelOrder().weight_gradient(dy, x, w, **settings)


# --- the bias inside the window sum --------------------------------------------------------


def _window_size(w):
    return int(np.prod(w.shape[1:]))


class BiasInsideWindowSum(TapLoopConv):
    """The course loop's classic: out[n, f, i, j] = np.sum(x_window * w[f] + b[f]) adds the bias
    to every element of the window (C/g * kh * kw times). The backward is right for the convolution."""

    def forward(self, x, w, b, **settings):
        return super().forward(x, w, _window_size(w) * b, **settings)


class BiasGradientPerWindowElement(TapLoopConv):
    """A correct forward, but db accumulated inside the loop over the window's elements."""

    def bias_gradient(self, dy, w):
        return _window_size(w) * super().bias_gradient(dy, w)


class ForgetsBiasAndRotation(KernelsNotRotated):
    """Two mistakes: the forward leaves out the bias, and dX uses kernels that were not rotated."""

    def forward(self, x, w, b, **settings):
        return super().forward(x, w, np.zeros_like(b), **settings)


# --- one wrong number ---------------------------------------------------------------------


class OneCoordinateOff:
    """A correct layer (`base`, by default TapLoopConv) with one coordinate of one gradient off by
    `relative` of that gradient's scale, its largest magnitude.

    `gradient` is "dX", "dK" or "db"; `index` a tuple, or an int counted over the flattened
    gradient. A gradient can be exactly zero everywhere (a layer that never reads its input, e.g.
    a dilated kernel whose taps all land in the padding): then the scale is 1, since any nonzero
    value is wrong.
    """

    name = "one coordinate off"

    def __init__(self, gradient, index, relative, base=None):
        self.gradient, self.index, self.relative = gradient, index, relative
        self.base = TapLoopConv() if base is None else base

    def forward(self, x, w, b, **settings):
        return self.base.forward(x, w, b, **settings)

    def backward(self, dy, x, w, b, **settings):
        gradients = list(self.base.backward(dy, x, w, b, **settings))
        which = ("dX", "dK", "db").index(self.gradient)
        wrong = gradients[which].copy()
        scale = float(np.max(np.abs(wrong), initial=0.0)) or 1.0
        position = np.unravel_index(self.index, wrong.shape) if isinstance(self.index, int) else self.index
        wrong[position] += self.relative * scale
        gradients[which] = wrong
        return tuple(gradients)


# Each wrong layer whose mistake convgrad names, and for each tensor it gets wrong the diagnoses
# that name the mistake: whenever that tensor fails a case, one of them must be given.
EXPECTED = {
    KernelsNotRotated: {"dX": {"kernels_not_rotated"}},
    # With C != F the unswapped kernels give dX the depth F; with C == F the numbers are wrong.
    KernelsNotSwapped: {"dX": {"kernels_not_swapped", "dx_depth_f"}},
    KernelsReshapedNotSwapped: {"dX": {"kernels_reshaped_not_swapped", "kernels_not_swapped"}},
    DxDepthF: {"dX": {"dx_depth_f"}},
    PaddingCropOffByOne: {"dX": {"padding_crop_shifted"}},
    StrideIgnoredInDx: {"dX": {"stride_ignored"}},
    StrideIgnoredInDk: {"dK": {"stride_ignored"}},
    DilationIgnored: {"dX": {"dilation_ignored"}, "dK": {"dilation_ignored"}},
    GroupsInterleaved: {"dX": {"groups_mixed"}, "dK": {"groups_mixed"}},
    BatchAveraged: {"dK": {"constant_factor"}, "db": {"constant_factor"}},
    BiasAveragedOverBatch: {"db": {"constant_factor"}},
    BiasOncePerKernelElement: {"db": {"constant_factor"}},
    BiasFromFirstImage: {"db": {"db_first_image"}},
    TrueConvolution: {"O": {"forward_flips_kernels"}},
    ForwardFlipsKernels: {"O": {"forward_flips_kernels"}},
    Im2colKernelOrder: {"O": {"kernel_element_order"}},
    Im2colKernelOrderInDk: {"dK": {"kernel_element_order"}},
    # db fails only because the forward is wrong: said on O, as for the whole backward.
    BiasInsideWindowSum: {"O": {"bias_per_window_element"}},
    # With depthwise kernels the window is the kernel: then it is named as that count.
    BiasGradientPerWindowElement: {"db": {"bias_per_window_element", "constant_factor"}},
    # Both mistakes are named; db fails only because the forward is wrong.
    ForgetsBiasAndRotation: {"O": {"forward_without_bias"}, "dX": {"kernels_not_rotated"}, "db": {"gradient_of_convolution"}},
}


# --- a forward that is not affine (one-sided differences must not trust it) -----------------


class QuadraticInKernels(TapLoopConv):
    """Forward adds a small quadratic term in w, c * conv(x, w * w); backward omits it."""

    c = 1e-3

    def forward(self, x, w, b, **settings):
        return super().forward(x, w, b, **settings) + self.c * super().forward(x, w * w, np.zeros_like(b), **settings)


class QuadraticInKernelsExact(QuadraticInKernels):
    """The same forward with its exact gradient: consistent, only not a conv layer (O fails).

    Linear in x and b, quadratic in w: one-sided differences of dK would be off by c * h * dK.
    """

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = super().backward(dy, x, w, b, **settings)
        dx_of_square = super().backward(dy, x, w * w, b, **settings)[0]
        return dx + self.c * dx_of_square, dw * (1 + 2 * self.c * w), db


class SaturatesLargeInputs(TapLoopConv):
    """Forward clips x to [-4.5, 4.5]: exact for inputs of the usual size, wrong for large ones."""

    limit = 4.5

    def forward(self, x, w, b, **settings):
        return super().forward(np.clip(x, -self.limit, self.limit), w, b, **settings)


class WeightStandardised(TapLoopConv):
    """Correct, and not linear in w: each kernel is standardised (zero mean, unit variance) before
    the convolution, and dK goes back through the standardisation. Only the gradients can be
    checked (its O is not the plain convolution's): run it with forward_check=False."""

    name = "weight-standardised"
    EPS = 1e-5

    def standardised(self, w):
        axes = tuple(range(1, w.ndim))
        centred = w - w.mean(axis=axes, keepdims=True)
        spread = np.sqrt((centred**2).mean(axis=axes, keepdims=True) + self.EPS)
        return centred / spread, spread

    def forward(self, x, w, b, **settings):
        return super().forward(x, self.standardised(w)[0], b, **settings)

    def backward(self, dy, x, w, b, **settings):
        ws, spread = self.standardised(w)
        dx, dws, db = super().backward(dy, x, ws, b, **settings)
        axes = tuple(range(1, w.ndim))
        dw = (dws - dws.mean(axis=axes, keepdims=True) - ws * (dws * ws).mean(axis=axes, keepdims=True)) / spread
        return dx, dw, db
