"""Float32 conv layers that compute with transforms, the way fast libraries do, and layers that
sum in a narrower type than float32: fixtures for checking float32 layers against rounding bounds.

A transform layer rounds differently from the direct sums, yet it is correct: its error is float32
rounding. It is spread over every coordinate (an FFT mixes every input into every frequency), so a
coordinate that sums few or small products can be off by more than its own sums' rounding, and
F(4x4, 3x3)'s transforms, whose entries reach 1/24 and 8, add several times the direct sums' error.
Measured as max |error| / (float32 eps * max |reference|): about 1-2 for the direct sums, the FFT
and F(2x2, 3x3), 10-25 for F(4x4, 3x3). The wrong layers carry fewer bits than float32 and score
about 1400-13000 (float16 sums, TF32 operands) and 10^4-10^5 (bfloat16 sums).

Correct
   DirectConv       the direct sums, a loop over the kernel taps: the transform layers' fallback
   FFTConv          O, dX and dK as products of complex64 spectra (np.fft computes in single
                    precision for float32 input); any rank, stride, padding, dilation and groups
   Winograd23Conv   Winograd F(2x2, 3x3) for O and dX of 2-D 3x3 kernels at stride 1, dilation 1
   Winograd43Conv   Winograd F(4x4, 3x3), interpolation points 0, +-1, +-2 and infinity
Wrong (they return float32, but carry fewer bits)
   Float16Sums      every partial sum rounded to float16: after each tap (O, dX) and each item (dK, db)
   Bfloat16Sums     the same with bfloat16 (8 bits of mantissa)
   TF32Operands     x, w and dy rounded to TF32 (10 bits of mantissa) before float32 products and sums

Every layer is in the keyword calling style, forward(x, w, b, *, stride, padding, dilation,
groups) and backward(dy, x, w, b, *, ...) -> (dx, dw, db), and computes in the dtype it is given:
float32 arrays in, float32 arithmetic throughout, float32 out (float64 works the same way). Plain
NumPy and the standard library, written as user code: nothing here knows about convgrad.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pad(x, padding):
    return np.pad(x, [(0, 0), (0, 0), *((p, p) for p in padding)]) if any(padding) else x


def _crop(xp, padding):
    return xp[(slice(None), slice(None), *(slice(p, n - p) for p, n in zip(padding, xp.shape[2:])))]


def _out_size(spatial, kernel, stride, dilation):
    """Output size of a valid correlation (padding already applied)."""
    return [(h - d * (k - 1) - 1) // s + 1 for h, k, s, d in zip(spatial, kernel, stride, dilation)]


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


def _dilate(w, dilation):
    """Kernels with d-1 zeros between taps: a plain correlation with them is the dilated one."""
    spread = np.zeros((*w.shape[:2], *(d * (k - 1) + 1 for k, d in zip(w.shape[2:], dilation))), w.dtype)
    spread[(slice(None), slice(None), *(slice(None, None, d) for d in dilation))] = w
    return spread


def _rotate_and_swap(w, groups):
    """(F, C/g, *k) -> (C, F/g, *k), rotated 180 degrees: the kernels dX is correlated with."""
    per_group = _kernels(np.flip(w, axis=_spatial(w)), groups)
    return per_group.swapaxes(1, 2).reshape(-1, w.shape[0] // groups, *w.shape[2:])


def _round_mantissa(a, dropped):
    """`a` rounded to nearest even in float32 with its lowest `dropped` mantissa bits cleared:
    16 gives bfloat16, 13 gives TF32."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    half = np.uint32((1 << (dropped - 1)) - 1) + ((bits >> dropped) & np.uint32(1))
    kept = (bits + half) & np.uint32((0xFFFFFFFF << dropped) & 0xFFFFFFFF)
    return kept.view(np.float32).astype(a.dtype, copy=False)


class DirectConv:
    """Correct: the direct sums, one vectorised product per kernel tap, in the input's dtype.

    `accumulate` is where partial sums meet (after each tap, each batch item): the narrow-sum
    layers below change only that."""

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        y = self.correlate(_pad(x, padding), w, stride, dilation, groups)
        return y + b.reshape(1, -1, *[1] * (x.ndim - 2)).astype(y.dtype, copy=False)

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        dx = self.input_gradient(dy, x, w, stride, padding, dilation, groups)
        dw = self.weight_gradient(dy, _pad(x, padding), w, stride, dilation, groups)
        return dx, dw, self.bias_gradient(dy)

    def accumulate(self, total, term):
        return total + term

    def correlate(self, xp, w, stride, dilation, groups):
        n, f = xp.shape[0], w.shape[0]
        out = _out_size(xp.shape[2:], w.shape[2:], stride, dilation)
        xg, wg = _grouped(xp, groups), _kernels(w, groups)
        y = np.zeros((n, groups, f // groups, *out), xp.dtype)
        for tap in np.ndindex(*w.shape[2:]):
            patch = xg[(slice(None),) * 3 + _window(tap, out, stride, dilation)]
            y = self.accumulate(y, np.einsum("ngc...,gfc->ngf...", patch, wg[(slice(None),) * 3 + tap]))
        return y.reshape(n, f, *out)

    def input_gradient(self, dy, x, w, stride, padding, dilation, groups):
        """Every tap adds w * dO back onto the padded-input positions it read."""
        padded = [h + 2 * p for h, p in zip(x.shape[2:], padding)]
        dxp = np.zeros((x.shape[0], groups, x.shape[1] // groups, *padded), dy.dtype)
        dyg, wg = _grouped(dy, groups), _kernels(w, groups)
        for tap in np.ndindex(*w.shape[2:]):
            where = (slice(None),) * 3 + _window(tap, dy.shape[2:], stride, dilation)
            term = np.einsum("ngf...,gfc->ngc...", dyg, wg[(slice(None),) * 3 + tap])
            dxp[where] = self.accumulate(dxp[where], term)
        return _crop(dxp.reshape(x.shape[0], x.shape[1], *padded), padding)

    def weight_gradient(self, dy, xp, w, stride, dilation, groups):
        """Each batch item's dK from the direct sums, then the items added up."""
        n = dy.shape[0]
        dyg, xg = _grouped(dy, groups).reshape(n, groups, -1, dy[0, 0].size), _grouped(xp, groups)
        items = np.zeros((n, *_kernels(w, groups).shape), dy.dtype)
        for tap in np.ndindex(*w.shape[2:]):
            patch = xg[(slice(None),) * 3 + _window(tap, dy.shape[2:], stride, dilation)]
            items[(Ellipsis, *tap)] = np.einsum("ngfp,ngcp->ngfc", dyg, patch.reshape(*patch.shape[:3], -1))
        return self.over_items(items).reshape(w.shape)

    def bias_gradient(self, dy):
        return self.over_items(dy.reshape(*dy.shape[:2], -1).sum(axis=-1))

    def over_items(self, items):
        total = np.zeros(items.shape[1:], items.dtype)
        for item in items:
            total = self.accumulate(total, item)
        return total


# --- correct: transforms -------------------------------------------------------------------


class FFTConv(DirectConv):
    """O, dX and dK as products of spectra, the FFT of the padded input's size on every axis.

    For float32 the spectra are complex64 (np.fft transforms float32 in single precision), and
    every product and channel sum is complex64 too. Stride: the stride-1 result, subsampled (O),
    or dO spread out with zeros (dX, dK); dilation: kernels spread out with zeros. The circular
    products never wrap into the part that is kept: the FFT size is the padded input's, and
    every result needed lies within it."""

    def correlate(self, xp, w, stride, dilation, groups):
        size = xp.shape[2:]
        kernels = _dilate(w, dilation)
        spectrum = np.einsum("ngc...,gfc...->ngf...", _grouped(self.spectrum(xp, size), groups),
                             _kernels(np.conj(self.spectrum(kernels, size)), groups))  # conj: correlation
        full = self.signal(spectrum.reshape(xp.shape[0], w.shape[0], *spectrum.shape[3:]), size, xp.dtype)
        kept = (slice(0, h - e + 1, s) for h, e, s in zip(size, kernels.shape[2:], stride))
        return full[(slice(None), slice(None), *kept)]

    def input_gradient(self, dy, x, w, stride, padding, dilation, groups):
        """dX of the padded input is the full convolution of the spread-out dO with the kernels."""
        size = [h + 2 * p for h, p in zip(x.shape[2:], padding)]
        kernels = _dilate(w, dilation)
        spread = self.spread(dy, size, kernels.shape[2:], stride)
        spectrum = np.einsum("ngf...,gfc...->ngc...", _grouped(self.spectrum(spread, size), groups),
                             _kernels(self.spectrum(kernels, size), groups))
        dxp = self.signal(spectrum.reshape(x.shape[0], x.shape[1], *spectrum.shape[3:]), size, dy.dtype)
        return _crop(dxp, padding)

    def weight_gradient(self, dy, xp, w, stride, dilation, groups):
        """dK is the correlation of the padded input with the spread-out dO, read at the dilated taps."""
        size = xp.shape[2:]
        extent = [d * (k - 1) + 1 for k, d in zip(w.shape[2:], dilation)]
        spread = self.spread(dy, size, extent, stride)
        spectrum = np.einsum("ngf...,ngc...->gfc...", _grouped(np.conj(self.spectrum(spread, size)), groups),
                             _grouped(self.spectrum(xp, size), groups))
        full = self.signal(spectrum.reshape(w.shape[0], w.shape[1], *spectrum.shape[3:]), size, dy.dtype)
        taps = (slice(0, e, d) for e, d in zip(extent, dilation))
        return np.ascontiguousarray(full[(slice(None), slice(None), *taps)])

    def bias_gradient(self, dy):
        return dy.sum(axis=(0, *_spatial(dy)))

    @staticmethod
    def spread(dy, size, extent, stride):
        """dO with s-1 zeros between neighbours, as long as the stride-1 output would be."""
        spread = np.zeros((*dy.shape[:2], *(h - e + 1 for h, e in zip(size, extent))), dy.dtype)
        spread[(slice(None), slice(None), *(slice(None, None, s) for s in stride))] = dy
        return spread

    @staticmethod
    def spectrum(a, size):
        return np.fft.rfftn(a, s=size, axes=_spatial(a))  # complex64 for float32 input

    @staticmethod
    def signal(spectrum, size, dtype):
        return np.fft.irfftn(spectrum, s=size, axes=_spatial(spectrum)).astype(dtype, copy=False)


class Winograd23Conv(DirectConv):
    """Winograd F(2x2, 3x3) (Lavin & Gray 2015) for 2-D 3x3 kernels at stride 1, dilation 1; any
    padding and groups. Every other geometry falls back to the direct sums, as libraries do.

    O: the padded input is cut into overlapping (m+2)x(m+2) tiles, one per m x m output tile,
    zero-padded at the far edges so whole tiles cover the output (the overhang is cropped).
    Each tile is transformed (B^T d B), so is each kernel (G g G^T); the channel sum is an
    elementwise product summed over channels, and A^T M A gives the m x m outputs. dX of the padded
    input is itself a stride-1 3x3 correlation, of dO padded by 2 with the kernels rotated 180
    degrees and their in/out channels swapped, so it runs through the same routine. dK is the direct
    sums. The matrices are rounded to the input's dtype, as a float32 kernel holds them."""

    tile = 2
    AT = [[1, 1, 1, 0], [0, 1, -1, -1]]
    G = [[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]]
    BT = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]

    @staticmethod
    def takes(w, stride, dilation):
        return w.shape[2:] == (3, 3) and tuple(stride) == (1, 1) and tuple(dilation) == (1, 1)

    def correlate(self, xp, w, stride, dilation, groups):
        if not self.takes(w, stride, dilation):
            return super().correlate(xp, w, stride, dilation, groups)
        return self.winograd(xp, w, groups)

    def input_gradient(self, dy, x, w, stride, padding, dilation, groups):
        if not self.takes(w, stride, dilation):
            return super().input_gradient(dy, x, w, stride, padding, dilation, groups)
        full = np.pad(dy, [(0, 0), (0, 0), (2, 2), (2, 2)])
        return _crop(self.winograd(full, _rotate_and_swap(w, groups), groups), padding)

    def winograd(self, xp, w, groups):
        """Valid stride-1 correlation of xp (N, C, H, W) with 3x3 kernels w (F, C/g, 3, 3)."""
        m, a = self.tile, self.tile + 2
        AT, G, BT = (np.array(matrix, dtype=xp.dtype) for matrix in (self.AT, self.G, self.BT))
        n, c, h, wd = xp.shape
        ho, wo = h - 2, wd - 2
        th, tw = -(-ho // m), -(-wo // m)
        whole = np.pad(xp, [(0, 0), (0, 0), (0, th * m + 2 - h), (0, tw * m + 2 - wd)])
        tiles = sliding_window_view(whole, (a, a), axis=(2, 3))[:, :, ::m, ::m]  # (N, C, th, tw, a, a)
        V = _grouped(BT @ tiles @ BT.T, groups)  # (N, g, C/g, th, tw, a, a)
        U = _kernels(G @ w @ G.T, groups)  # (g, F/g, C/g, a, a)
        M = np.einsum("ngctsij,gfcij->ngftsij", V, U)
        Y = (AT @ M @ AT.T).reshape(n, -1, th, tw, m, m)
        return Y.transpose(0, 1, 2, 4, 3, 5).reshape(n, -1, th * m, tw * m)[:, :, :ho, :wo]


class Winograd43Conv(Winograd23Conv):
    """Winograd F(4x4, 3x3), interpolation points 0, +-1, +-2 and infinity (Lavin & Gray 2015):
    2.25 times fewer multiplications than F(2x2, 3x3)'s 1.78 over the direct sums, and a few times
    its rounding error (the transforms' entries reach 1/24 and 8)."""

    tile = 4
    AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
    G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
    BT = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
          [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]


# --- wrong: fewer bits than float32 ----------------------------------------------------------


class Float16Sums(DirectConv):
    """Sums in float16, as a half-precision kernel that accumulates in half does: every partial
    sum (after each tap in O and dX, after each batch item in dK and db) is rounded to float16's
    11 bits. The products are float32; the results come back as float32."""

    def accumulate(self, total, term):
        return (total + term).astype(np.float16).astype(total.dtype)


class Bfloat16Sums(DirectConv):
    """Float16Sums with bfloat16 partial sums (8 bits, float32's range): rounded to nearest even
    on float32's top 16 bits, which is all bfloat16 keeps."""

    def accumulate(self, total, term):
        return _round_mantissa(total + term, 16)


class TF32Operands(DirectConv):
    """x, w and dy rounded to TF32 (10 explicit mantissa bits, nearest even) before the products,
    as tensor cores do with float32 matrices by default; products and sums are float32 after that.
    db needs no products and is summed from dy as given."""

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        return super().forward(_round_mantissa(x, 13), _round_mantissa(w, 13), b,
                               stride=stride, padding=padding, dilation=dilation, groups=groups)

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        dx, dw, _ = super().backward(_round_mantissa(dy, 13), _round_mantissa(x, 13), _round_mantissa(w, 13), b,
                                     stride=stride, padding=padding, dilation=dilation, groups=groups)
        return dx, dw, self.bias_gradient(dy)
