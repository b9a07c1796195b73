"""A second set of conv layers right in a unit test and wrong in a network, written independently of
tests/zoo/network.py to probe what the checker had not been written against (plain NumPy, 2-D).

Every WRONG layer is right on a single forward+backward of fresh C-ordered standard-normal tensors
(at the small sizes a unit test uses) and wrong in some ordinary network or training use. CORRECT
layers are tricky on purpose and must pass. LargeBatchChunks, WideChannelBlocked and BigOutputTiled
go wrong only past sizes the standard suite does not draw yet (batch 9, 8 channels, 64 output
positions), and Float32FFT is correct with rounding spread over every coordinate: they are kept
for the sizes and rounding work, and tests/test_network_scenario.py does not use them.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view


# ----------------------------------------------------------------------------------------------
# helpers


def _pair(v):
    if isinstance(v, (tuple, list)):
        return tuple(int(t) for t in v)
    return (int(v), int(v))


def _out(spatial, kernel, s, p, d):
    return tuple((h + 2 * pp - dd * (k - 1) - 1) // ss + 1 for h, k, ss, pp, dd in zip(spatial, kernel, s, p, d))


def _pad(x, p):
    return np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1]))) if any(p) else x


def _windows(x, kernel, s, p, d):
    """(N, C, Ho, Wo, kh, kw) read-only view."""
    kh, kw = kernel
    ho, wo = _out(x.shape[2:], kernel, s, p, d)
    ext = (d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1)
    v = sliding_window_view(_pad(x, p), ext, axis=(2, 3))
    return v[:, :, :: s[0], :: s[1], :: d[0], :: d[1]][:, :, :ho, :wo]


def _fwd(win, w, groups):
    n, c, ho, wo, kh, kw = win.shape
    f = w.shape[0]
    wg = win.reshape(n, groups, c // groups, ho, wo, kh, kw)
    kg = w.reshape(groups, f // groups, c // groups, kh, kw)
    return np.einsum("ngchwij,gfcij->ngfhw", wg, kg, optimize=True).reshape(n, f, ho, wo)


def _dw(dy, win, w_shape, groups):
    n, c, ho, wo, kh, kw = win.shape
    f = w_shape[0]
    wg = win.reshape(n, groups, c // groups, ho, wo, kh, kw)
    dg = dy.reshape(n, groups, f // groups, ho, wo)
    return np.einsum("ngfhw,ngchwij->gfcij", dg, wg, optimize=True).reshape(w_shape)


def _dx(dy, w, x_shape, s, p, d, groups):
    n, c, h, wd = x_shape
    f, cg, kh, kw = w.shape
    ho, wo = dy.shape[2:]
    dxp = np.zeros((n, c, h + 2 * p[0], wd + 2 * p[1]), dtype=np.result_type(dy, w))
    dg = dy.reshape(n, groups, f // groups, ho, wo)
    kg = w.reshape(groups, f // groups, cg, kh, kw)
    for u in range(kh):
        for v in range(kw):
            t = np.einsum("ngfhw,gfc->ngchw", dg, kg[:, :, :, u, v]).reshape(n, c, ho, wo)
            r0, c0 = u * d[0], v * d[1]
            dxp[:, :, r0 : r0 + s[0] * (ho - 1) + 1 : s[0], c0 : c0 + s[1] * (wo - 1) + 1 : s[1]] += t
    return dxp[:, :, p[0] : p[0] + h, p[1] : p[1] + wd]


class _Base:
    """Correct keyword-function conv (2-D, stride/padding/dilation/groups, b may be None)."""

    spatial_dims = (2,)

    def _win(self, x, kernel, s, p, d):
        return _windows(x, kernel, s, p, d)

    def forward(self, x, w, b=None, *, stride, padding, dilation, groups):
        s, p, d = _pair(stride), _pair(padding), _pair(dilation)
        y = _fwd(self._win(x, w.shape[2:], s, p, d), w, groups)
        return y if b is None else y + b.reshape(1, -1, 1, 1)

    def backward(self, dy, x, w, b=None, *, stride, padding, dilation, groups):
        s, p, d = _pair(stride), _pair(padding), _pair(dilation)
        win = self._win(x, w.shape[2:], s, p, d)
        dw = _dw(dy, win, w.shape, groups)
        dx = _dx(dy, w, x.shape, s, p, d, groups)
        db = None if b is None else dy.sum(axis=(0, 2, 3))
        return dx, dw, db


class _Layer:
    """Correct layer object: Conv(in_channels, out_channels, kernel_size, stride=1, padding=0)."""

    spatial_dims = (2,)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.k = _pair(kernel_size)
        self.s, self.p = _pair(stride), _pair(padding)
        rng = np.random.default_rng()
        self.W = rng.standard_normal((out_channels, in_channels, *self.k)) * 0.1
        self.b = np.zeros(out_channels)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def _wmat(self):
        return self.W.reshape(self.W.shape[0], -1)

    def forward(self, x):
        self.x = x
        win = _windows(x, self.W.shape[2:], self.s, self.p, (1, 1))
        self.cols = np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(
            x.shape[0], win.shape[2], win.shape[3], -1
        )  # (N, Ho, Wo, C*kh*kw)
        y = self.cols @ self._wmat().T  # (N, Ho, Wo, F)
        return y.transpose(0, 3, 1, 2) + self.b.reshape(1, -1, 1, 1)

    def _grads(self, dout):
        n, f, ho, wo = dout.shape
        dyf = dout.transpose(0, 2, 3, 1).reshape(-1, f)
        dW = (dyf.T @ self.cols.reshape(-1, self.cols.shape[-1])).reshape(self.W.shape)
        db = dout.sum(axis=(0, 2, 3))
        return dW, db

    def _dx(self, dout, wmat):
        w = wmat.reshape(self.W.shape)
        return _dx(dout, w, self.x.shape, self.s, self.p, (1, 1), 1)

    def backward(self, dout):
        self.dW, self.db = self._grads(dout)
        return self._dx(dout, self._wmat())


# ================================================================================================
# WRONG layers
# ================================================================================================


class IdentityColumnReuse(_Base):
    """WRONG. Keeps the im2col columns of the last input *object* (a strong reference, so the id
    cannot be recycled) and reuses them whenever forward or backward is handed that very object
    again (gradient checkpointing recomputes forward on the same array). A training loop that
    refills one preallocated batch buffer in place (x_buf[:] = next_batch) gets the columns of
    the previous batch: stale O, stale dK."""

    def __init__(self):
        self._x = None
        self._key = None
        self._cols = None

    def _win(self, x, kernel, s, p, d):
        key = (tuple(kernel), s, p, d, x.shape, x.dtype)
        if x is self._x and key == self._key:
            return self._cols
        cols = np.array(_windows(x, kernel, s, p, d))  # materialised copy (im2col)
        self._x, self._key, self._cols = x, key, cols
        return cols


class FingerprintMemo(_Base):
    """WRONG. Memoises forward outputs (LRU of 8) keyed by the exact weights, bias and settings and
    a cheap fingerprint of x: its shape, dtype and first 64 values. Two batches that agree in the
    first 64 values (zero-padded images with a black border, a dead ReLU channel 0 that is zero in
    every batch) get the first batch's output."""

    def __init__(self):
        self._memo = OrderedDict()

    def forward(self, x, w, b=None, *, stride, padding, dilation, groups):
        key = (
            x.shape, x.dtype.str, np.ascontiguousarray(x).reshape(-1)[:64].tobytes(),
            w.shape, np.ascontiguousarray(w).tobytes(), None if b is None else np.ascontiguousarray(b).tobytes(),
            _pair(stride), _pair(padding), _pair(dilation), groups,
        )
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key].copy()
        y = super().forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        self._memo[key] = y.copy()
        if len(self._memo) > 8:
            self._memo.popitem(last=False)
        return y


class LargeBatchChunks(_Base):
    """WRONG. Batches above 8 items are processed in chunks of 8 to bound the im2col memory; the
    chunk loop assigns dK (dw = ...) instead of accumulating, so dK is the last chunk's only.
    Any training batch of 16, 32, 64... is wrong; every batch a unit test uses (<= 8) is right."""

    chunk = 8

    def backward(self, dy, x, w, b=None, *, stride, padding, dilation, groups):
        n = x.shape[0]
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        if n <= self.chunk:
            return super().backward(dy, x, w, b, **kw)
        dx = np.empty(x.shape, dtype=np.result_type(dy, w))
        dw = None
        db = None if b is None else np.zeros_like(b, dtype=np.result_type(dy, b))
        for lo in range(0, n, self.chunk):
            sl = slice(lo, lo + self.chunk)
            dxc, dwc, dbc = super().backward(dy[sl], x[sl], w, b, **kw)
            dx[sl] = dxc
            dw = dwc  # BUG: should be dw += dwc
            if db is not None:
                db += dbc
        return dx, dw, db


class WideChannelBlocked(_Base):
    """WRONG. For C >= 8 (every real layer but the stem) forward sums the output over channel blocks
    of 4 (cache blocking), each block's partial sum initialised with the bias: the bias is added
    C/4 times. Only groups == 1 takes the path."""

    def forward(self, x, w, b=None, *, stride, padding, dilation, groups):
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        c = x.shape[1]
        if groups != 1 or c < 8:
            return super().forward(x, w, b, **kw)
        y = 0
        for lo in range(0, c, 4):
            y = y + super().forward(x[:, lo : lo + 4], w[:, lo : lo + 4], b, **kw)  # BUG: b every block
        return y


class BigOutputTiled(_Base):
    """WRONG. When the output has more than 64 positions, db is reduced over tiles of 8 output rows
    (sharing the tiling of a blocked dK kernel); the partial tile at the bottom is dropped, so db is
    wrong for 28x28, 14x14, 7x7... maps (right when Ho is a multiple of 8)."""

    def backward(self, dy, x, w, b=None, *, stride, padding, dilation, groups):
        dx, dw, db = super().backward(dy, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        ho, wo = dy.shape[2:]
        if b is not None and ho * wo > 64:
            db = np.zeros_like(db)
            for t in range(ho // 8):  # BUG: range((ho + 7) // 8)
                db += dy[:, :, 8 * t : 8 * t + 8].sum(axis=(0, 2, 3))
        return dx, dw, db


class StepSliceRowsAssumed(_Base):
    """WRONG. Zero-copy windows by as_strided when no padding is needed and x's strides are in
    NCHW order (C order, or a channel slice of a concatenation): the strides of N, C and H are
    taken from x, but the width stride is assumed to be one item (rows contiguous). Channels-last
    and Fortran-ordered inputs are copied first, so every layout the call protocol tries is right;
    an input subsampled by slicing (x[:, :, ::2, ::2] fed to a 1x1 conv, as a strided 1x1
    shortcut is often written) is read with the wrong width stride."""

    def _win(self, x, kernel, s, p, d):
        st = x.strides
        ordered = st[0] >= st[1] >= st[2] >= st[3] > 0
        if any(p) or not ordered:
            x = np.ascontiguousarray(_pad(x, p))
            st = x.strides
        kh, kw = kernel
        ho, wo = _out(x.shape[2:], kernel, s, (0, 0), d)
        isz = x.itemsize  # BUG: should be st[3]
        return as_strided(
            x, shape=(x.shape[0], x.shape[1], ho, wo, kh, kw),
            strides=(st[0], st[1], st[2] * s[0], isz * s[1], st[2] * d[0], isz * d[1]), writeable=False,
        )


def _channels_last(a):
    n, c, h, w = a.shape
    it = a.itemsize
    return c > 1 and a.strides == (h * w * c * it, it, w * c * it, c * it)


class ChannelsLastFollowsX(_Base):
    """WRONG. A channels-last path: when x is stored NHWC it runs NHWC GEMMs and assumes the whole
    network is channels-last, reading dy's memory as NHWC too (dy.ravel(order='K')). The call
    protocol always pairs channels-last x with channels-last dy, so it is right there; a network
    in which x is channels-last but the gradient arrives in C order (after a flatten/reshape, a
    loss written in NCHW) gets scrambled dX, dK and db."""

    def backward(self, dy, x, w, b=None, *, stride, padding, dilation, groups):
        if _channels_last(x):
            n, f, ho, wo = dy.shape
            dy = dy.ravel(order="K").reshape(n, ho, wo, f).transpose(0, 3, 1, 2)  # BUG: dy assumed NHWC
        return super().backward(dy, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)


class IdKeyedColumnMemo(_Base):
    """WRONG. Caches im2col columns in a dict keyed by id(x) (no reference kept, "to save memory"),
    reused by a recomputed forward and by backward. When x is freed, a new array can get the same
    id and is handed the dead array's columns."""

    def __init__(self):
        self._cols = {}

    def _win(self, x, kernel, s, p, d):
        key = (id(x), tuple(kernel), s, p, d, x.shape)
        if key not in self._cols:
            self._cols[key] = np.array(_windows(x, kernel, s, p, d))
            if len(self._cols) > 16:
                self._cols.pop(next(iter(self._cols)))
        return self._cols[key]


class IndexTableKeyMissingPadding(_Base):
    """WRONG. im2col by fancy indexing into the padded input, the index tables cached per
    (x.shape, w.shape, stride, dilation): the padding is not in the key. Two layers of equal shapes
    and other padding share a table."""

    _tables = {}

    def _win(self, x, kernel, s, p, d):
        key = (x.shape, tuple(kernel), s, d)  # BUG: p missing
        if key not in self._tables:
            kh, kw = kernel
            ho, wo = _out(x.shape[2:], kernel, s, p, d)
            r = (np.arange(ho) * s[0])[:, None, None, None] + (np.arange(kh) * d[0])[None, None, :, None]
            c = (np.arange(wo) * s[1])[None, :, None, None] + (np.arange(kw) * d[1])[None, None, None, :]
            self._tables[key] = (np.broadcast_to(r, (ho, wo, kh, kw)), np.broadcast_to(c, (ho, wo, kh, kw)))
        r, c = self._tables[key]
        return _pad(x, p)[:, :, r, c]


_W_BY_SHAPE = {}


class SharedWeightMatrixByShape(_Base):
    """WRONG. forward stores the flattened kernels for backward's dX in a module-level dict keyed
    by w.shape; two layers with kernels of one shape share the entry, so backward of the first
    layer uses the second layer's kernels."""

    def forward(self, x, w, b=None, *, stride, padding, dilation, groups):
        _W_BY_SHAPE[w.shape] = np.array(w, copy=True)
        return super().forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    def backward(self, dy, x, w, b=None, *, stride, padding, dilation, groups):
        w_kept = _W_BY_SHAPE.get(w.shape, w)
        dx, dw, db = super().backward(dy, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        dx = _dx(dy, w_kept, x.shape, _pair(stride), _pair(padding), _pair(dilation), groups)
        return dx, dw, db


class CornerKeyedWeightCache(_Layer):
    """WRONG (layer object). The (F, C*kh*kw) weight matrix is cached and rebuilt only when
    (W.shape, W[0,0,0,0], W[-1,-1,-1,-1]) changes: cheap staleness test. An SGD step changes
    every entry, but pruning a middle filter, or freezing / masking part of W, is missed."""

    def _wmat(self):
        key = (self.W.shape, float(self.W.flat[0]), float(self.W.flat[-1]))
        if getattr(self, "_key", None) != key:
            self._key = key
            self._m = self.W.reshape(self.W.shape[0], -1).copy()
        return self._m


class LazyWeightView(_Layer):
    """WRONG (layer object). On its first forward the layer makes a 2-D *view* of W (no copy) and
    uses it from then on; in-place optimiser updates show through the view, so every in-place
    check passes. A training loop that rebinds the attribute (self.W = self.W - lr * self.dW, the
    most common NumPy idiom) or loads a checkpoint (layer.W = np.load(...)) leaves the view on
    the old array: forward and dX keep the first weights."""

    def _wmat(self):
        if getattr(self, "_view", None) is None:
            self._view = self.W.reshape(self.W.shape[0], -1)
        return self._view


class EveryOtherCallGradient(_Layer):
    """WRONG (layer object). Built-in gradient accumulation over 2 micro-batches: dW and db are
    published on every second backward only; in between the previous ones stay."""

    def backward(self, dout):
        self._n = getattr(self, "_n", 0) + 1
        dW, db = self._grads(dout)
        if self._n % 2 == 1:
            self.dW, self.db = dW, db
        return self._dx(dout, self._wmat())


# ================================================================================================
# CORRECT layers (tricky on purpose)
# ================================================================================================


class ExactBytesColumnCache(_Base):
    """CORRECT. LRU of im2col columns keyed by the exact logical bytes of x (tobytes is C-order
    whatever the layout), its dtype and shape, the kernel size and every setting."""

    def __init__(self):
        self._lru = OrderedDict()

    def _win(self, x, kernel, s, p, d):
        key = (x.shape, x.dtype.str, x.tobytes(), tuple(kernel), s, p, d)
        hit = self._lru.get(key)
        if hit is None:
            hit = np.array(_windows(x, kernel, s, p, d))
            hit.flags.writeable = False
            self._lru[key] = hit
            if len(self._lru) > 6:
                self._lru.popitem(last=False)
        else:
            self._lru.move_to_end(key)
        return hit


class TapLoopReversed(_Base):
    """CORRECT. Direct convolution as a loop over taps in reverse order, batch items and output
    rows visited last-to-first, accumulating in the input dtype (float32 stays float32)."""

    def forward(self, x, w, b=None, *, stride, padding, dilation, groups):
        s, p, d = _pair(stride), _pair(padding), _pair(dilation)
        win = _windows(x, w.shape[2:], s, p, d)
        n, c, ho, wo, kh, kw = win.shape
        f = w.shape[0]
        dt = np.result_type(x, w)
        y = np.zeros((n, f, ho, wo), dtype=dt)
        for u in reversed(range(kh)):
            for v in reversed(range(kw)):
                part = _fwd(win[..., u : u + 1, v : v + 1][::-1], w[:, :, u : u + 1, v : v + 1], groups)
                y += part[::-1]
        if b is not None:
            y += b.reshape(1, -1, 1, 1).astype(dt)
        return y

    def backward(self, dy, x, w, b=None, *, stride, padding, dilation, groups):
        s, p, d = _pair(stride), _pair(padding), _pair(dilation)
        win = _windows(x, w.shape[2:], s, p, d)
        dw = np.zeros(w.shape, dtype=np.result_type(dy, x))
        for i in reversed(range(x.shape[0])):
            dw += _dw(dy[i : i + 1], win[i : i + 1], w.shape, groups)
        dx = _dx(dy, w, x.shape, s, p, d, groups)
        db = None if b is None else dy[::-1].sum(axis=(0, 2, 3))
        return dx, dw, db


class Float32FFT(_Base):
    """CORRECT. Forward by FFT (as cuDNN's FFT algorithms do), in the input's own precision
    (numpy >= 2 keeps float32 FFTs in complex64): a stride-1 correlation of the padded input with
    the dilated kernel over the whole padded plane, then subsampled by the stride. Backward is the
    plain direct one. FFT errors are normwise, spread over the plane."""

    def forward(self, x, w, b=None, *, stride, padding, dilation, groups):
        s, p, d = _pair(stride), _pair(padding), _pair(dilation)
        xp = _pad(np.asarray(x), p)
        n, c, hp, wp = xp.shape
        f, cg, kh, kw = w.shape
        eh, ew = d[0] * (kh - 1) + 1, d[1] * (kw - 1) + 1
        kd = np.zeros((f, cg, eh, ew), dtype=w.dtype)
        kd[:, :, :: d[0], :: d[1]] = w
        kflip = kd[:, :, ::-1, ::-1]
        shape = (hp + eh - 1, wp + ew - 1)
        X = np.fft.rfft2(xp, s=shape)  # (N, C, ., .)
        K = np.fft.rfft2(kflip, s=shape)  # (F, C/g, ., .)
        fg = f // groups
        Xg = X.reshape(n, groups, cg, *X.shape[2:])
        Kg = K.reshape(groups, fg, cg, *K.shape[2:])
        Y = np.einsum("ngcij,gfcij->ngfij", Xg, Kg).reshape(n, f, *X.shape[2:])
        full = np.fft.irfft2(Y, s=shape)
        ho, wo = _out(x.shape[2:], (kh, kw), s, p, d)
        y = full[:, :, eh - 1 : eh - 1 + s[0] * (ho - 1) + 1 : s[0], ew - 1 : ew - 1 + s[1] * (wo - 1) + 1 : s[1]]
        y = np.ascontiguousarray(y).astype(np.result_type(x, w), copy=False)
        return y if b is None else y + b.reshape(1, -1, 1, 1)


class PowerOfTwoRescaled(_Base):
    """CORRECT. Backward rescales dy by a power of two (from frexp of its largest entry) to keep it
    near 1, runs the sums, and scales the results back: exact in binary floating point, and it
    protects tiny and large gradients from underflow and overflow."""

    def backward(self, dy, x, w, b=None, *, stride, padding, dilation, groups):
        m = float(np.max(np.abs(dy), initial=0.0))
        e = int(np.frexp(m)[1]) if m > 0 else 0
        dy_s = np.ldexp(dy, -e).astype(dy.dtype)
        dx, dw, db = super().backward(dy_s, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        back = lambda a: None if a is None else np.ldexp(a, e).astype(a.dtype)
        return back(dx), back(dw), back(db)


class OwnWorkspaceInPlace(_Layer):
    """CORRECT (layer object). Copies x into a padded workspace it owns and reuses across calls
    (reallocated when the shape changes), applies in-place ops only to its own buffers, and returns
    fresh arrays."""

    def forward(self, x):
        n, c, h, w = x.shape
        ph, pw = self.p
        shape = (n, c, h + 2 * ph, w + 2 * pw)
        if getattr(self, "_ws", None) is None or self._ws.shape != shape or self._ws.dtype != x.dtype:
            self._ws = np.zeros(shape, dtype=x.dtype)
        self._ws[...] = 0
        self._ws[:, :, ph : ph + h, pw : pw + w] = x
        self.x = np.empty(x.shape, dtype=x.dtype)
        np.copyto(self.x, x)
        win = _windows(self._ws, self.W.shape[2:], self.s, (0, 0), (1, 1))
        self.cols = np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n, win.shape[2], win.shape[3], -1)
        y = self.cols @ self.W.reshape(self.W.shape[0], -1).T
        y += self.b.reshape(1, 1, 1, -1)  # in place on its own fresh array
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))

    def backward(self, dout):
        dW, db = self._grads(dout)
        self.dW = np.empty_like(dW)
        self.dW[...] = dW
        self.db = db.copy()
        dx = self._dx(dout, self.W.reshape(self.W.shape[0], -1))
        dx *= 1.0  # in place on its own result
        return dx
