"""Wrong layers that pass one fresh call: state kept between calls, memory layout, returned
buffers, settings that are wrong only together, and interfaces that do not match.

Each is correct on the first call with fresh C-ordered inputs and a small batch; each is written
the way such code is written in real layers, around convgrad's reference functions.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from convgrad import reference


class Correct:
    """The reference layer; the classes below change one thing each."""

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        return reference.forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        return reference.backward(dy, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)


# --- state kept between calls --------------------------------------------------------------


class AccumulatesKernelGradient(Correct):
    """dW += ... into a buffer that is created once and never zeroed (like a .grad attribute)."""

    def __init__(self):
        self.dw = None

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = super().backward(dy, x, w, b, **settings)
        if self.dw is None:
            self.dw = np.zeros_like(dw)
        self.dw += dw
        return dx, self.dw.copy(), db


class CachesPaddedInput(Correct):
    """Keeps the padded input and refreshes it only when the input's shape changes."""

    def __init__(self):
        self.shape, self.padded = None, None

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        if x.shape != self.shape:
            self.shape, self.padded = x.shape, reference.pad(x, padding)
        y = reference.correlate(self.padded, w, stride=stride, dilation=dilation, groups=groups)
        return y + b.reshape(1, -1, *([1] * (x.ndim - 2)))


class ReturnsWorkspace(Correct):
    """Writes the output into a workspace buffer it keeps, and returns the buffer itself."""

    def __init__(self):
        self.out = None

    def forward(self, x, w, b, **settings):
        y = super().forward(x, w, b, **settings)
        if self.out is None or self.out.shape != y.shape:
            self.out = np.empty_like(y)
        self.out[...] = y
        return self.out


# --- memory layout -------------------------------------------------------------------------


class WindowsFromShape(Correct):
    """Builds the forward's windows with as_strided, from strides computed as if x were C-ordered."""

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        if x.ndim != 4 or any(d != 1 for d in dilation) or groups != 1:
            return super().forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        xp = reference.pad(x, padding) if any(padding) else x
        n, c, h, wd = xp.shape
        kh, kw = w.shape[2:]
        sh, sw = stride
        oh, ow = (h - kh) // sh + 1, (wd - kw) // sw + 1
        item = xp.itemsize
        c_strides = (c * h * wd * item, h * wd * item, wd * item, item)  # assumes C order
        windows = as_strided(
            xp, shape=(n, c, oh, ow, kh, kw),
            strides=(*c_strides[:2], c_strides[2] * sh, c_strides[3] * sw, c_strides[2], c_strides[3]),
        )
        y = np.einsum("ncijuv,fcuv->nfij", windows, w)
        return y + b.reshape(1, -1, 1, 1)


# --- settings that are wrong only together ------------------------------------------------


class GroupsStackedWithoutTranspose(Correct):
    """Groups done one by one and put back together with stack + reshape, without the transpose
    that keeps batch items apart: right for batch 1, wrong when groups > 1 meets batch > 1."""

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        if groups == 1:
            return super().forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        n, c = x.shape[:2]
        f = w.shape[0]
        parts = [
            reference.forward(x[:, g * c // groups:(g + 1) * c // groups], w[g * f // groups:(g + 1) * f // groups],
                              b[g * f // groups:(g + 1) * f // groups], stride=stride, padding=padding,
                              dilation=dilation, groups=1)
            for g in range(groups)
        ]
        stacked = np.stack(parts)  # (groups, N, F/g, *out)
        return stacked.reshape(n, f, *stacked.shape[3:])  # should be moveaxis(0, 1) first


class PaddedBatchOffset(Correct):
    """Computes dX into a padded buffer but crops it with offsets taken from the unpadded batch
    layout: right for batch 1 or padding 0, wrong when padding meets batch > 1."""

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        dx, dw, db = super().backward(dy, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        if any(padding) and x.shape[0] > 1:
            dx = np.roll(dx, 1, axis=0)  # item n gets item n-1's gradient
        return dx, dw, db


class DepthwiseMultiplierMixed(Correct):
    """Depthwise with a channel multiplier: kernel f is taken to read channel f % C instead of
    f // multiplier. Right when F == C, wrong for F = 2C."""

    def _order(self, c, f, groups):
        if groups != c or f == c:
            return None
        m = f // c
        return np.array([(j % c) * m + j // c for j in range(f)])

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        dx, dw, db = super().backward(dy, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        order = self._order(x.shape[1], w.shape[0], groups)
        if order is not None:
            dx = reference.input_gradient(dy[:, order], w[order], x.shape[2:], stride=stride, padding=padding,
                                          dilation=dilation, groups=groups)
        return dx, dw, db


class FirstDilationForEveryAxis(Correct):
    """Uses dilation[0] on every axis in the backward: right when the dilations are equal."""

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        same = tuple(dilation[:1]) * len(dilation)
        dx = reference.input_gradient(dy, w, x.shape[2:], stride=stride, padding=padding, dilation=same, groups=groups)
        dw = reference.weight_gradient(dy, x, w.shape[2:], stride=stride, padding=padding, dilation=dilation, groups=groups)
        return dx, dw, reference.bias_gradient(dy)


class ChunkedBatch(Correct):
    """dK summed over the batch in chunks of 4, with the chunk count rounded down: the last items
    of a batch of 5 or more are dropped."""

    def backward(self, dy, x, w, b, **settings):
        dx, _, db = super().backward(dy, x, w, b, **settings)
        n = x.shape[0]
        chunks = max(1, n // 4)
        dw = sum(reference.weight_gradient(dy[4 * i:4 * i + 4], x[4 * i:4 * i + 4], w.shape[2:], **settings)
                 for i in range(chunks))
        return dx, dw, db


# --- interfaces ----------------------------------------------------------------------------


class BackwardWithoutDilation:
    """forward takes dilation; backward does not, and silently computes the undilated gradient."""

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        return reference.forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    def backward(self, dy, x, w, b, *, stride, padding, groups):
        ones = (1,) * (x.ndim - 2)
        return reference.backward(dy, x, w, b, stride=stride, padding=padding, dilation=ones, groups=groups)
