"""A restricted conv layer in the style of a third-party library: padding given as a word, 'valid'
or 'same', and no dilation or groups: fixtures for the checker's declared limits.

   SameOrValidConv           correct: im2col; 'same' dX as shifted copies of the columns' gradient
   SameOrValidNonSquareBug   'same' dX shifts along the flat H*W axis by rows of H, not W: wrong for H != W
   SameOrValidSquarePads     'same' pads both axes by the kernel height's (kh - 1) // 2: wrong for kh != kw

The layers are in the keyword calling style without the keywords they do not take:
forward(x, w, b, *, stride, padding) and backward(dy, x, w, b, *, stride, padding) -> (dx, dw, db).
They are 2-D only (spatial_dims) and declare their padding words (CONVGRAD), so a checker runs
only the cases with padding 0 ('valid', any stride) or with 'same' padding (stride 1, odd
kernels, (k - 1) // 2 on each side) and no dilation or groups. Plain NumPy, written as user code:
nothing here knows about convgrad.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _pair(value):
    return tuple(int(v) for v in value) if isinstance(value, (tuple, list)) else (int(value), int(value))


def _columns(xp, kernel, stride):
    """(N, C*kh*kw, Ho, Wo): the windows of the padded input, rows in (C, kh, kw) order."""
    view = sliding_window_view(xp, kernel, axis=(2, 3))[:, :, :: stride[0], :: stride[1]]
    n, c, ho, wo, kh, kw = view.shape
    return view.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho, wo)


class SameOrValidConv:
    """Correct. O and dK from im2col columns; dX from the columns' gradient: with 'valid' padding
    each tap adds its rows back onto the positions it read (col2im), with 'same' padding, where the
    output grid is the input grid, each tap's rows are the flat H*W image shifted by the tap's
    offset from the kernel's centre, di * W + dj, with the positions that would leave the image
    masked out first."""

    spatial_dims = (2,)
    CONVGRAD = {"padding_modes": ["valid", "same"]}

    @staticmethod
    def supports(geometry):
        """'same' is written for stride 1 and odd kernels only: elsewhere it pads unevenly."""
        padded = any(geometry.padding_totals)
        return not padded or (all(s == 1 for s in geometry.stride) and all(k % 2 for k in geometry.kernel_size))

    @staticmethod
    def paddings(padding, kernel, stride):
        if padding == "valid":
            return (0, 0)
        if padding != "same" or stride != (1, 1) or not all(k % 2 for k in kernel):
            raise ValueError(f"padding must be 'valid', or 'same' with stride 1 and odd kernels, not {padding!r}")
        return tuple((k - 1) // 2 for k in kernel)

    def forward(self, x, w, b, *, stride, padding):
        stride = _pair(stride)
        ph, pw = self.paddings(padding, w.shape[2:], stride)
        cols = _columns(np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))), w.shape[2:], stride)
        return np.einsum("nkhw,fk->nfhw", cols, w.reshape(w.shape[0], -1)) + b.reshape(1, -1, 1, 1).astype(x.dtype)

    def backward(self, dy, x, w, b, *, stride, padding):
        stride = _pair(stride)
        pads = self.paddings(padding, w.shape[2:], stride)
        cols = _columns(np.pad(x, ((0, 0), (0, 0), *((p, p) for p in pads))), w.shape[2:], stride)
        dw = np.einsum("nfhw,nkhw->fk", dy, cols).reshape(w.shape)
        dcols = np.einsum("nfhw,fk->nkhw", dy, w.reshape(w.shape[0], -1))
        if padding == "same":
            dx = self.same_input_gradient(dcols, x.shape, w.shape[2:], pads)
        else:
            dx = self.valid_input_gradient(dcols, x.shape, w.shape[2:], stride)
        return dx, dw, dy.sum(axis=(0, 2, 3))

    @staticmethod
    def valid_input_gradient(dcols, shape, kernel, stride):
        n, c, h, wd = shape
        ho, wo = dcols.shape[2:]
        taps = dcols.reshape(n, c, *kernel, ho, wo)
        (sh, sw), dx = stride, np.zeros(shape, dcols.dtype)
        for u, v in np.ndindex(*kernel):
            dx[:, :, u : u + sh * (ho - 1) + 1 : sh, v : v + sw * (wo - 1) + 1 : sw] += taps[:, :, u, v]
        return dx

    def same_input_gradient(self, dcols, shape, kernel, pads):
        n, c, h, wd = shape
        taps = dcols.reshape(n, c, *kernel, h * wd)
        i, j = np.divmod(np.arange(h * wd), wd)
        dx = np.zeros((n, c, h * wd), dcols.dtype)
        for u, v in np.ndindex(*kernel):
            di, dj = u - pads[0], v - pads[1]
            inside = (0 <= i + di) & (i + di < h) & (0 <= j + dj) & (j + dj < wd)
            dx += np.roll(taps[:, :, u, v] * inside, self.flat_shift(di, dj, h, wd), axis=-1)
        return dx.reshape(shape)

    @staticmethod
    def flat_shift(di, dj, h, wd):
        """How far a shift of (di, dj) moves a position along the flat H*W axis: rows are W long."""
        return di * wd + dj


class SameOrValidNonSquareBug(SameOrValidConv):
    """'same' dX shifts by whole rows of H instead of W (written for square images): right when
    H == W, and for kernels one row tall; otherwise the shifted copies land on the wrong positions.
    O, dK, db and 'valid' dX are right."""

    @staticmethod
    def flat_shift(di, dj, h, wd):
        return di * h + dj


class SameOrValidSquarePads(SameOrValidConv):
    """'same' padding worked out from the kernel's height for both axes (written for square
    kernels): right for square kernels, wrong (an output of the wrong width) for 3x1 and 1x3 ones."""

    @staticmethod
    def paddings(padding, kernel, stride):
        pads = SameOrValidConv.paddings(padding, kernel, stride)
        return (pads[0], pads[0])
