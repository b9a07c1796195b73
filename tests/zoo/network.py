"""Conv layers that are right in a unit test and wrong in a network: fixtures for the checker's network scenario.

A unit test calls forward, then backward, once, on fresh dense standard-normal tensors in C order;
every layer here gets that right. The wrong ones go wrong only the way a network or a training
loop calls them: several live layers interleaved, batch sizes that change, weights updated in
place, the caller writing into what it got back, activations and gradients a network produces.
Each wrong layer sits next to its correct twin, which differs only in the lines that hold the
mistake. Plain NumPy (and the standard library), written as user code: nothing here knows about
convgrad. 2-D only (`spatial_dims = (2,)`); the keyword-function layers handle stride, padding,
dilation and groups (their data-dependent fast paths are taken for groups == 1 only), the layer
objects stride and padding.

Calling styles: "keyword" layers are built without arguments and called as
forward(x, w, b, *, stride, padding, dilation, groups) and backward(dy, x, w, b, *, ...) ->
(dx, dw, db); "layer object" layers are built as Layer(in_channels, out_channels, kernel_size,
stride=1, padding=0), hold W and b, and have forward(x) and backward(dout) (or
backward(dout, lr), which also takes the SGD step), leaving dW and db on the layer.

1. State shared across layers or instances (wrong / correct twin)
   ShapeKeyedColumnCache / ColumnCacheCheckedAgainstInput      keyword       im2col columns in a module-level dict keyed by x.shape
   ClassAttributeCache / PerInstanceCache                      layer object  the forward cache is a class attribute
   ShapeKeyedIndexTable / SettingsKeyedIndexTable              keyword       im2col indices keyed by (x.shape, w.shape) only
2. Training steps
   GrowOnlyWorkspace / SlicedWorkspace                         layer object  db summed over the whole grow-only workspace
   IdentityKeyedWeightCache / ValueCheckedWeightCache          layer object  cached weight matrix refreshed only for a new W object
   StepsBeforeInputGradient / StepsAfterInputGradient          layer object  backward(dout, lr) steps W before computing dx
3. Activations and gradients a network produces (each fast path only switches on for such data)
   PositiveOnlySparseGradient / SparseGradient                 keyword       sparse dy path keeps dy > 0 only
   DeadPlaneSkipping / ZeroPlaneSkipping                       keyword       skips input planes whose max <= 0 (not only zero ones)
   PrunedFilterSkipsBias / PrunedFilterKeepsBias               keyword       an all-zero filter is skipped with its bias
   FlushesTinyGradients / KeepsTinyGradients                   keyword       |dy| < 1e-6 flushed to zero
   CompactsZeroGradientItems / SelectsNonZeroGradientItems     keyword       dK from x[:k] instead of x[keep]
4. Variants a network uses
   BiasNoneWrongPath / BiasNoneRightPath                       keyword       the b=None backward ignores the stride in dK
5. Aliasing through returned arrays
   MemoReturnsItsOwnArray / ExactBytesMemo                     keyword       a memoised forward returns the memo's own array
6. Memory layout a network produces
   AssumesPackedBatchStride / UsesBatchStride                  keyword       as_strided windows with batch stride C*H*W*itemsize
Correct, tricky on purpose
   ThreadPoolPartialSums                                       keyword       dK and db summed over threads in completion order
   SortsBatchInternally                                        keyword       items processed in order of their norm, put back

`_Im2col` (keyword) and `_Conv2DLayer` (layer object) are the plain, correct bases the layers
above are written on.
"""

from __future__ import annotations

from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor, as_completed

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view


# --- shared helpers: im2col in (C, kh, kw) row order, groups as batched matrix products ----------


def _pair(value):
    """(v, v) for an int, the tuple for a tuple or list."""
    if isinstance(value, (tuple, list)):
        return tuple(int(v) for v in value)
    return (int(value), int(value))


def _out_size(spatial, kernel, stride, padding, dilation):
    return tuple((h + 2 * p - d * (k - 1) - 1) // s + 1 for h, k, s, p, d in zip(spatial, kernel, stride, padding, dilation))


def _padded(x, padding):
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x


def _windows(x, kernel, stride, padding, dilation):
    """(N, C, Ho, Wo, kh, kw): a read-only view of the windows of the padded input."""
    kh, kw = kernel
    ho, wo = _out_size(x.shape[2:], kernel, stride, padding, dilation)
    extent = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    view = sliding_window_view(_padded(x, padding), extent, axis=(2, 3))
    return view[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]][:, :, :ho, :wo]


def _columns_of(windows):
    """(N, C*kh*kw, Ho*Wo) from (N, C, Ho, Wo, kh, kw): a copy, rows in (C, kh, kw) order."""
    n, c, ho, wo, kh, kw = windows.shape
    return windows.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, ho * wo)


def _im2col(x, kernel, stride, padding, dilation):
    return _columns_of(_windows(x, kernel, stride, padding, dilation))


def _col2im(dcols, x_shape, kernel, out, stride, padding, dilation):
    """dX from the gradient of the columns: every tap adds its rows back onto the positions it read."""
    n, c, h, w = x_shape
    (kh, kw), (ho, wo), (ph, pw) = kernel, out, padding
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=dcols.dtype)
    taps = dcols.reshape(n, c, kh, kw, ho, wo)
    for u in range(kh):
        for v in range(kw):
            top, left = u * dilation[0], v * dilation[1]
            rows = slice(top, top + stride[0] * (ho - 1) + 1, stride[0])
            cols = slice(left, left + stride[1] * (wo - 1) + 1, stride[1])
            dxp[:, :, rows, cols] += taps[:, :, u, v]
    return dxp[:, :, ph : ph + h, pw : pw + w]


def _gemm_forward(cols, w, groups):
    """(N, F, P): per group, the flattened kernels times the columns."""
    n, k, p = cols.shape
    f = w.shape[0]
    kernels = w.reshape(groups, f // groups, -1)
    return np.matmul(kernels, cols.reshape(n, groups, k // groups, p)).reshape(n, f, p)


def _gemm_weight(dyf, cols, w_shape, groups):
    """dK from dy (N, F, P) and the columns (N, C/g*kh*kw*g, P), summed over the batch."""
    n, f, p = dyf.shape
    grads = dyf.reshape(n, groups, f // groups, p)
    rows = cols.reshape(n, groups, -1, p)
    return np.matmul(grads, rows.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w_shape)


def _gemm_input(dyf, w, groups):
    """The gradient of the columns, (N, C*kh*kw, P)."""
    n, f, p = dyf.shape
    kernels = w.reshape(groups, f // groups, -1)
    return np.matmul(kernels.transpose(0, 2, 1), dyf.reshape(n, groups, f // groups, p)).reshape(n, -1, p)


def _output(cols, w, b, groups, out):
    y = _gemm_forward(cols, w, groups).reshape(cols.shape[0], w.shape[0], *out)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def _gradients(dy, cols, x_shape, w, with_bias, stride, padding, dilation, groups):
    dyf = dy.reshape(*dy.shape[:2], -1)
    dw = _gemm_weight(dyf, cols, w.shape, groups)
    dx = _col2im(_gemm_input(dyf, w, groups), x_shape, w.shape[2:], dy.shape[2:], stride, padding, dilation)
    db = dyf.sum(axis=(0, 2)) if with_bias else None
    return dx, dw, db


class _Im2col:
    """A correct keyword-function conv layer: im2col columns times the flattened kernels."""

    spatial_dims = (2,)

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        cols = self._columns(x, w.shape[2:], stride, padding, dilation)
        return _output(cols, w, b, groups, _out_size(x.shape[2:], w.shape[2:], stride, padding, dilation))

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        cols = self._columns(x, w.shape[2:], stride, padding, dilation)
        return _gradients(dy, cols, x.shape, w, b is not None, stride, padding, dilation, groups)

    def _windows(self, x, kernel, stride, padding, dilation):
        return _windows(x, kernel, stride, padding, dilation)

    def _columns(self, x, kernel, stride, padding, dilation):
        return _columns_of(self._windows(x, kernel, stride, padding, dilation))


class _Conv2DLayer:
    """A correct layer object: Conv2D(in_channels, out_channels, kernel_size, stride=1, padding=0),
    forward(x) keeps the im2col columns, backward(dout) returns dx and leaves dW and db."""

    spatial_dims = (2,)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        fan_in = in_channels * self.kernel_size[0] * self.kernel_size[1]
        rng = np.random.default_rng()
        self.W = rng.standard_normal((out_channels, in_channels, *self.kernel_size)) * np.sqrt(2.0 / fan_in)
        self.b = np.zeros(out_channels)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def _geometry(self, x_shape):
        kernel = self.W.shape[2:]
        return kernel, _out_size(x_shape[2:], kernel, self.stride, self.padding, (1, 1))

    def _im2col(self, x):
        return _im2col(x, self.W.shape[2:], self.stride, self.padding, (1, 1))

    def _col2im(self, dcols, x_shape):
        kernel, out = self._geometry(x_shape)
        return _col2im(dcols, x_shape, kernel, out, self.stride, self.padding, (1, 1))

    def forward(self, x):
        self.x_shape = x.shape
        self.cols = self._im2col(x)
        return _output(self.cols, self.W, self.b, 1, self._geometry(x.shape)[1])

    def backward(self, dout):
        dyf = dout.reshape(*dout.shape[:2], -1)
        self.dW = _gemm_weight(dyf, self.cols, self.W.shape, 1)
        self.db = dyf.sum(axis=(0, 2))
        return self._col2im(_gemm_input(dyf, self.W, 1), self.x_shape)


# --- 1. state shared across layers or instances -----------------------------------------------

_COLUMNS_BY_SHAPE = {}  # x.shape -> the last forward's im2col columns, for backward
_COLUMNS_CHECKED = {}  # (x.shape, kernel, settings) -> (the x they came from, its columns)


class ShapeKeyedColumnCache(_Im2col):
    """forward keeps its im2col columns in a module-level dict keyed by x.shape, and backward takes
    them from there instead of from its x. Two layers with inputs of the same shape share the
    entry: forward A, forward B, backward A computes A's dK from B's columns."""

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        cols = _im2col(x, w.shape[2:], stride, padding, dilation)
        self._keep(x, cols, w.shape[2:], stride, padding, dilation)
        return _output(cols, w, b, groups, _out_size(x.shape[2:], w.shape[2:], stride, padding, dilation))

    def _keep(self, x, cols, kernel, stride, padding, dilation):
        _COLUMNS_BY_SHAPE[x.shape] = cols

    def _columns(self, x, kernel, stride, padding, dilation):
        cols = _COLUMNS_BY_SHAPE.get(x.shape)  # the columns of whichever layer ran last on this shape
        return _im2col(x, kernel, stride, padding, dilation) if cols is None else cols


class ColumnCacheCheckedAgainstInput(ShapeKeyedColumnCache):
    """Correct twin: the cache entry remembers the input it came from (and the kernel and settings),
    and backward uses it only for that very input; otherwise it recomputes the columns."""

    def _keep(self, x, cols, kernel, stride, padding, dilation):
        _COLUMNS_CHECKED[(x.shape, tuple(kernel), stride, padding, dilation)] = (x.copy(), cols)

    def _columns(self, x, kernel, stride, padding, dilation):
        kept = _COLUMNS_CHECKED.get((x.shape, tuple(kernel), stride, padding, dilation))
        if kept is not None and np.array_equal(kept[0], x):
            return kept[1]
        return _im2col(x, kernel, stride, padding, dilation)


class ClassAttributeCache(_Conv2DLayer):
    """forward stores its columns in `_cache`, a dict defined at class level: every instance shares
    it, so with two live layers backward A reads the columns of B's input."""

    _cache = {}  # class attribute: one dict for every instance

    def forward(self, x):
        self._cache["x_shape"] = x.shape
        self._cache["cols"] = self._im2col(x)
        return _output(self._cache["cols"], self.W, self.b, 1, self._geometry(x.shape)[1])

    def backward(self, dout):
        cols, x_shape = self._cache["cols"], self._cache["x_shape"]
        dyf = dout.reshape(*dout.shape[:2], -1)
        self.dW = _gemm_weight(dyf, cols, self.W.shape, 1)
        self.db = dyf.sum(axis=(0, 2))
        return self._col2im(_gemm_input(dyf, self.W, 1), x_shape)


class PerInstanceCache(ClassAttributeCache):
    """Correct twin: the cache dict is made per instance."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        self._cache = {}


_INDEX_TABLES = {}  # im2col index arrays, computed once per key


def _index_table(x_shape, kernel, stride, padding, dilation):
    """(channel, row, col) index arrays such that xp[:, k, i, j] is (N, C*kh*kw, Ho*Wo)."""
    c = x_shape[1]
    kh, kw = kernel
    ho, wo = _out_size(x_shape[2:], kernel, stride, padding, dilation)
    channel = np.repeat(np.arange(c), kh * kw)
    tap_row = np.tile(np.repeat(np.arange(kh) * dilation[0], kw), c)
    tap_col = np.tile(np.arange(kw) * dilation[1], kh * c)
    out_row = np.repeat(np.arange(ho) * stride[0], wo)
    out_col = np.tile(np.arange(wo) * stride[1], ho)
    return channel[:, None], tap_row[:, None] + out_row[None, :], tap_col[:, None] + out_col[None, :]


class ShapeKeyedIndexTable(_Im2col):
    """im2col by fancy indexing (col2im by np.add.at), with the index arrays cached in a dict keyed
    by (x.shape, w.shape) only. A second layer of equal shapes and other dilation and padding
    (ASPP: 3x3 kernels with dilation d and padding d all keep the size) gets the first's indices."""

    def _key(self, x_shape, w_shape, stride, padding, dilation):
        return (x_shape, w_shape)

    def _indices(self, x_shape, w_shape, stride, padding, dilation):
        key = self._key(x_shape, w_shape, stride, padding, dilation)
        if key not in _INDEX_TABLES:
            _INDEX_TABLES[key] = _index_table(x_shape, w_shape[2:], stride, padding, dilation)
        return _INDEX_TABLES[key]

    def _columns_indexed(self, x, w_shape, stride, padding, dilation):
        k, i, j = self._indices(x.shape, w_shape, stride, padding, dilation)
        return _padded(x, padding)[:, k, i, j]

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        cols = self._columns_indexed(x, w.shape, stride, padding, dilation)
        return _output(cols, w, b, groups, _out_size(x.shape[2:], w.shape[2:], stride, padding, dilation))

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        cols = self._columns_indexed(x, w.shape, stride, padding, dilation)
        dyf = dy.reshape(*dy.shape[:2], -1)
        dw = _gemm_weight(dyf, cols, w.shape, groups)
        n, c, h, wd = x.shape
        (ph, pw) = padding
        dxp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=np.result_type(dy, w))
        k, i, j = self._indices(x.shape, w.shape, stride, padding, dilation)
        np.add.at(dxp, (slice(None), k, i, j), _gemm_input(dyf, w, groups))
        db = dyf.sum(axis=(0, 2)) if b is not None else None
        return dxp[:, :, ph : ph + h, pw : pw + wd], dw, db


class SettingsKeyedIndexTable(ShapeKeyedIndexTable):
    """Correct twin: the key holds stride, padding and dilation too."""

    def _key(self, x_shape, w_shape, stride, padding, dilation):
        return (x_shape, w_shape, stride, padding, dilation)


# --- 2. training steps --------------------------------------------------------------------------


class GrowOnlyWorkspace(_Conv2DLayer):
    """backward copies dout into a C-ordered workspace that grows to the largest batch seen and is
    kept; dK reads its first N items, but db sums the whole workspace, so after a larger batch a
    smaller one (an epoch's last) gets the stale items of the earlier batch added to db."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        self._workspace = None

    def _rows(self, dout):
        """dout as (N, F, Ho*Wo) in the workspace, which is reallocated only to grow."""
        n, f = dout.shape[:2]
        shape = (f, dout.shape[2] * dout.shape[3])
        ws = self._workspace
        if ws is None or ws.shape[1:] != shape or ws.dtype != dout.dtype or ws.shape[0] < n:
            ws = self._workspace = np.zeros((n, *shape), dtype=dout.dtype)
        ws[:n] = dout.reshape(n, *shape)
        return ws

    def _bias_gradient(self, ws, n):
        return ws.sum(axis=(0, 2))  # the whole workspace: stale items of a larger batch too

    def backward(self, dout):
        n = dout.shape[0]
        ws = self._rows(dout)
        self.dW = _gemm_weight(ws[:n], self.cols, self.W.shape, 1)
        self.db = self._bias_gradient(ws, n)
        return self._col2im(_gemm_input(ws[:n], self.W, 1), self.x_shape)


class SlicedWorkspace(GrowOnlyWorkspace):
    """Correct twin: db sums the workspace's first N items only."""

    def _bias_gradient(self, ws, n):
        return ws[:n].sum(axis=(0, 2))


class IdentityKeyedWeightCache(_Conv2DLayer):
    """Keeps W as a contiguous (C*kh*kw, F) matrix for the GEMMs and rebuilds it only when self.W
    is another object: an optimiser updating W in place (W -= lr * dW) is never seen, so forward
    and dx keep using the weights of the first step."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding)
        self._w_matrix = None
        self._w_from = None

    def _stale(self):
        return self.W is not self._w_from

    def _remember(self):
        self._w_from = self.W

    def _weight_matrix(self):
        if self._w_matrix is None or self._stale():
            self._w_matrix = self.W.reshape(self.W.shape[0], -1).T.copy()
            self._remember()
        return self._w_matrix

    def forward(self, x):
        self.x_shape = x.shape
        self.cols = self._im2col(x)
        y = np.matmul(self.cols.transpose(0, 2, 1), self._weight_matrix()).transpose(0, 2, 1)
        return y.reshape(x.shape[0], -1, *self._geometry(x.shape)[1]) + self.b.reshape(1, -1, 1, 1)

    def backward(self, dout):
        dyf = dout.reshape(*dout.shape[:2], -1)
        self.dW = _gemm_weight(dyf, self.cols, self.W.shape, 1)
        self.db = dyf.sum(axis=(0, 2))
        return self._col2im(np.matmul(self._weight_matrix(), dyf), self.x_shape)


class ValueCheckedWeightCache(IdentityKeyedWeightCache):
    """Correct twin: rebuilds the matrix whenever W's values differ from those it was built from."""

    def _stale(self):
        seen = getattr(self, "_w_seen", None)
        return seen is None or seen.shape != self.W.shape or not np.array_equal(seen, self.W)

    def _remember(self):
        self._w_seen = self.W.copy()


class StepsBeforeInputGradient(_Conv2DLayer):
    """A layer that trains itself: backward(dout, lr) computes dW and db, takes the SGD step in
    place, and only then computes dx from self.W, which by now holds the updated weights."""

    def backward(self, dout, lr):
        dyf = dout.reshape(*dout.shape[:2], -1)
        self.dW = _gemm_weight(dyf, self.cols, self.W.shape, 1)
        self.db = dyf.sum(axis=(0, 2))
        self.W -= lr * self.dW
        self.b -= lr * self.db
        return self._col2im(_gemm_input(dyf, self.W, 1), self.x_shape)


class StepsAfterInputGradient(StepsBeforeInputGradient):
    """Correct twin: dx is computed from the weights of the forward pass, then the step is taken."""

    def backward(self, dout, lr):
        dyf = dout.reshape(*dout.shape[:2], -1)
        self.dW = _gemm_weight(dyf, self.cols, self.W.shape, 1)
        self.db = dyf.sum(axis=(0, 2))
        dx = self._col2im(_gemm_input(dyf, self.W, 1), self.x_shape)
        self.W -= lr * self.dW
        self.b -= lr * self.db
        return dx


# --- 3. activations and gradients a network produces --------------------------------------------


def _mostly_zero(a):
    """More than half of the entries exactly zero (a gradient through max-pooling or a ReLU)."""
    return 2 * np.count_nonzero(a) < a.size


def _looks_rectified(x):
    """At least a quarter of the entries exactly zero: an input that came through a ReLU."""
    return 4 * np.count_nonzero(x) <= 3 * x.size


class PositiveOnlySparseGradient(_Im2col):
    """When more than half of dy is exactly zero, backward visits the nonzero entries only
    (gather for dK, scatter for dX, bincount for db); the mask it takes is dy > 0, which drops
    the negative entries a max-pool or ReLU gradient also has."""

    def _nonzero(self, dy):
        return np.nonzero(dy > 0)

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        if groups != 1 or not _mostly_zero(dy):
            return super().backward(dy, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        n, f, i, j = self._nonzero(dy)
        g = dy[n, f, i, j]
        (kh, kw), (ph, pw) = w.shape[2:], padding
        dtype = np.result_type(dy, x, w)
        patches = _windows(x, (kh, kw), stride, padding, dilation)[n, :, i, j]  # (M, C, kh, kw)
        dw = np.zeros(w.shape, dtype=dtype)
        np.add.at(dw, f, g[:, None, None, None] * patches)
        c = x.shape[1]
        rows = i[:, None, None, None] * stride[0] + (np.arange(kh) * dilation[0])[None, None, :, None]
        cols = j[:, None, None, None] * stride[1] + (np.arange(kw) * dilation[1])[None, None, None, :]
        dxp = np.zeros((x.shape[0], c, x.shape[2] + 2 * ph, x.shape[3] + 2 * pw), dtype=dtype)
        np.add.at(dxp, (n[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols), g[:, None, None, None] * w[f])
        db = np.bincount(f, weights=g, minlength=w.shape[0]).astype(dtype) if b is not None else None
        return dxp[:, :, ph : ph + x.shape[2], pw : pw + x.shape[3]], dw, db


class SparseGradient(PositiveOnlySparseGradient):
    """Correct twin: the sparse path keeps every nonzero entry, dy != 0."""

    def _nonzero(self, dy):
        return np.nonzero(dy)


class DeadPlaneSkipping(_Im2col):
    """For a rectified input (a quarter of it exactly zero), forward and dK skip, item by item, the
    input planes x[n, c] that are dead; a plane counts as dead when its max is <= 0, so a plane that
    is entirely negative (a normalised branch concatenated to a ReLU one) is dropped too."""

    def _live_planes(self, item):
        return item.reshape(item.shape[0], -1).max(axis=1) > 0

    def _items(self, x):
        for n in range(x.shape[0]):
            live = self._live_planes(x[n])
            if live.any():
                yield n, live

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        if groups != 1 or not _looks_rectified(x):
            return super().forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        out = _out_size(x.shape[2:], w.shape[2:], stride, padding, dilation)
        y = np.zeros((x.shape[0], w.shape[0], *out), dtype=np.result_type(x, w))
        for n, live in self._items(x):
            windows = _windows(x[n : n + 1][:, live], w.shape[2:], stride, padding, dilation)[0]
            y[n] = np.tensordot(w[:, live], windows, axes=([1, 2, 3], [0, 3, 4]))
        return y if b is None else y + b.reshape(1, -1, 1, 1)

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        if groups != 1 or not _looks_rectified(x):
            return super().backward(dy, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        dyf = dy.reshape(*dy.shape[:2], -1)
        dx = _col2im(_gemm_input(dyf, w, 1), x.shape, w.shape[2:], dy.shape[2:], stride, padding, dilation)
        dw = np.zeros(w.shape, dtype=np.result_type(dy, x))
        for n, live in self._items(x):
            windows = _windows(x[n : n + 1][:, live], w.shape[2:], stride, padding, dilation)[0]
            dw[:, live] += np.tensordot(dy[n], windows, axes=([1, 2], [1, 2]))
        return dx, dw, (dyf.sum(axis=(0, 2)) if b is not None else None)


class ZeroPlaneSkipping(DeadPlaneSkipping):
    """Correct twin: skips only planes that are exactly zero everywhere."""

    def _live_planes(self, item):
        return np.any(item.reshape(item.shape[0], -1) != 0, axis=1)


class PrunedFilterSkipsBias(_Im2col):
    """Filters whose weights are all zero (pruned) are left out of forward's matrix product; their
    output channels are filled with 0, skipping the bias, where the output is b[f]."""

    def _pruned_output(self, b, pruned):
        return 0.0

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        live = np.any(w.reshape(w.shape[0], -1) != 0, axis=1)
        settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        if groups != 1 or live.all():
            return super().forward(x, w, b, **settings)
        out = _out_size(x.shape[2:], w.shape[2:], _pair(stride), _pair(padding), _pair(dilation))
        dtype = np.result_type(x, w) if b is None else np.result_type(x, w, b)
        y = np.empty((x.shape[0], w.shape[0], *out), dtype=dtype)
        y[:, live] = super().forward(x, w[live], None if b is None else b[live], **settings)
        y[:, ~live] = self._pruned_output(b, ~live)
        return y


class PrunedFilterKeepsBias(PrunedFilterSkipsBias):
    """Correct twin: a pruned filter's output channel is its bias."""

    def _pruned_output(self, b, pruned):
        return 0.0 if b is None else b[pruned].reshape(1, -1, 1, 1)


class FlushesTinyGradients(_Im2col):
    """Denormal protection: backward flushes |dy| < 1e-6 to zero. A gradient of 1e-8 (a scaled
    loss, a layer deep in the network) comes back as zero."""

    flush_below = 1e-6

    def _upstream(self, dy):
        return np.where(np.abs(dy) < self.flush_below, 0, dy).astype(dy.dtype)

    def backward(self, dy, x, w, b, **settings):
        return super().backward(self._upstream(dy), x, w, b, **settings)


class KeepsTinyGradients(FlushesTinyGradients):
    """Correct twin: dy as it comes."""

    def _upstream(self, dy):
        return dy


class CompactsZeroGradientItems(_Im2col):
    """Items whose dy is all zero (masked samples) are left out of backward; dK is then computed
    from x[:k], the first k items, instead of x[keep], the items that were kept."""

    def _kept_inputs(self, x, keep):
        return x[: int(keep.sum())]

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        keep = np.any(dy.reshape(dy.shape[0], -1) != 0, axis=1)
        if keep.all():
            return super().backward(dy, x, w, b, **settings)
        dtype = np.result_type(dy, x, w)
        dx = np.zeros(x.shape, dtype=dtype)
        if not keep.any():
            return dx, np.zeros(w.shape, dtype=dtype), (np.zeros(w.shape[0], dtype=dtype) if b is not None else None)
        dx_kept, dw, db = super().backward(dy[keep], self._kept_inputs(x, keep), w, b, **settings)
        dx[keep] = dx_kept
        return dx, dw, db


class SelectsNonZeroGradientItems(CompactsZeroGradientItems):
    """Correct twin: dK from x[keep]."""

    def _kept_inputs(self, x, keep):
        return x[keep]


# --- 4. variants a network uses ---------------------------------------------------------------


class BiasNoneWrongPath(_Im2col):
    """Takes no bias when b is None (a conv before a batch norm). The bias-free backward is its own
    loop of taps, and its dK reads the window of each tap at i instead of stride * i: right for
    stride 1, wrong for a strided conv without bias (a ResNet downsampling conv)."""

    def forward(self, x, w, b=None, *, stride, padding, dilation, groups):
        return super().forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    def backward(self, dy, x, w, b=None, *, stride, padding, dilation, groups):
        if b is not None:
            return super().backward(dy, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        xp = _padded(x, padding)
        ho, wo = dy.shape[2:]
        depth, per_group = w.shape[1], w.shape[0] // groups
        dw = np.zeros(w.shape, dtype=np.result_type(dy, x))
        for u in range(w.shape[2]):
            for v in range(w.shape[3]):
                patch = xp[(slice(None), slice(None), *self._tap_window(u, v, ho, wo, stride, dilation))]
                for g in range(groups):
                    fs, cs = slice(g * per_group, (g + 1) * per_group), slice(g * depth, (g + 1) * depth)
                    dw[fs, :, u, v] = np.tensordot(dy[:, fs], patch[:, cs], axes=([0, 2, 3], [0, 2, 3]))
        dyf = dy.reshape(*dy.shape[:2], -1)
        dx = _col2im(_gemm_input(dyf, w, groups), x.shape, w.shape[2:], (ho, wo), stride, padding, dilation)
        return dx, dw, None

    def _tap_window(self, u, v, ho, wo, stride, dilation):
        top, left = u * dilation[0], v * dilation[1]
        return slice(top, top + ho), slice(left, left + wo)


class BiasNoneRightPath(BiasNoneWrongPath):
    """Correct twin: the bias-free dK steps through the windows by the stride."""

    def _tap_window(self, u, v, ho, wo, stride, dilation):
        top, left = u * dilation[0], v * dilation[1]
        return slice(top, top + stride[0] * (ho - 1) + 1, stride[0]), slice(left, left + stride[1] * (wo - 1) + 1, stride[1])


# --- 5. aliasing through returned arrays --------------------------------------------------------


class MemoReturnsItsOwnArray(_Im2col):
    """Memoises forward by the exact bytes of (x, w, b) and the settings, and returns the
    remembered array itself: a caller that applies an in-place ReLU to the output changes the memo,
    so recomputing the same forward (gradient checkpointing) returns the rectified values."""

    memo_size = 16

    def __init__(self):
        self._memo = OrderedDict()

    def _returned(self, y):
        return y

    def forward(self, x, w, b, *, stride, padding, dilation, groups):
        key = (
            x.shape, x.dtype.str, x.tobytes(), w.shape, w.dtype.str, w.tobytes(),
            None if b is None else (b.dtype.str, b.tobytes()),
            _pair(stride), _pair(padding), _pair(dilation), groups,
        )
        y = self._memo.get(key)
        if y is None:
            y = super().forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
            self._memo[key] = y
            if len(self._memo) > self.memo_size:
                self._memo.popitem(last=False)
        else:
            self._memo.move_to_end(key)
        return self._returned(y)


class ExactBytesMemo(MemoReturnsItsOwnArray):
    """Correct twin: returns a copy of the remembered output."""

    def _returned(self, y):
        return y.copy()


# --- 6. memory layout a network produces ----------------------------------------------------------


class AssumesPackedBatchStride(_Im2col):
    """Windows by as_strided straight on x when no padding is needed and each item is laid out in
    C order (x.strides[1:] packed); other inputs are padded or copied into C order first. The batch
    stride is taken as C*H*W*itemsize: right for C-ordered x, wrong for a channel slice of a wider
    array (wide[:, 2:2+C], a channel split or a concatenation's part), whose items lie further apart."""

    def _batch_stride(self, x):
        return x.shape[1] * x.shape[2] * x.shape[3] * x.itemsize

    def _windows(self, x, kernel, stride, padding, dilation):
        n, c, h, w = x.shape
        packed = x.strides[1:] == (h * w * x.itemsize, w * x.itemsize, x.itemsize)
        if any(padding) or not packed:
            x = np.ascontiguousarray(_padded(x, padding))
        kh, kw = kernel
        ho, wo = _out_size(x.shape[2:], kernel, stride, (0, 0), dilation)
        _, sc, sh, sw = x.strides
        return as_strided(
            x, shape=(x.shape[0], x.shape[1], ho, wo, kh, kw),
            strides=(self._batch_stride(x), sc, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1]),
            writeable=False,
        )


class UsesBatchStride(AssumesPackedBatchStride):
    """Correct twin: the batch stride is x.strides[0]."""

    def _batch_stride(self, x):
        return x.strides[0]


# --- correct, tricky on purpose ------------------------------------------------------------------


class ThreadPoolPartialSums(_Im2col):
    """Correct: backward splits the batch into chunks over a thread pool and adds each chunk's dK
    and db to the totals as the chunks complete (as_completed): the order of the sums, and so the
    last bits of dK and db, change from call to call."""

    workers = 3

    def backward(self, dy, x, w, b, *, stride, padding, dilation, groups):
        stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
        dtype = np.result_type(dy, x, w)
        dx = np.empty(x.shape, dtype=dtype)
        dw = np.zeros(w.shape, dtype=dtype)
        db = np.zeros(w.shape[0], dtype=dtype)

        def chunk(items):
            cols = _im2col(x[items], w.shape[2:], stride, padding, dilation)
            return items, _gradients(dy[items], cols, x[items].shape, w, True, stride, padding, dilation, groups)

        bounds = np.linspace(0, x.shape[0], min(x.shape[0], 2 * self.workers) + 1).astype(int)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = [pool.submit(chunk, slice(lo, hi)) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]
            for future in as_completed(futures):
                items, (dx_part, dw_part, db_part) = future.result()
                dx[items] = dx_part
                dw += dw_part
                db += db_part
        return dx, dw, (db if b is not None else None)


class SortsBatchInternally(_Im2col):
    """Correct: processes the items in order of their L1 norm (as a bucketing scheduler would) and
    puts every result back at its item's place."""

    def _order(self, x):
        return np.argsort(np.abs(x).reshape(x.shape[0], -1).sum(axis=1), kind="stable")

    def forward(self, x, w, b, **settings):
        order = self._order(x)
        y_sorted = super().forward(x[order], w, b, **settings)
        y = np.empty_like(y_sorted)
        y[order] = y_sorted
        return y

    def backward(self, dy, x, w, b, **settings):
        order = self._order(x)
        dx_sorted, dw, db = super().backward(dy[order], x[order], w, b, **settings)
        dx = np.empty_like(dx_sorted)
        dx[order] = dx_sorted
        return dx, dw, db
