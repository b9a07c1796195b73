"""Conv functions with short parameter names and a backward that takes no bias, as in compact
from-scratch code: forward(x, w, b, s=1, p=0) and backward(dy, x, w, s=1, p=0).
backward_dx_ignores_stride is wrong: dX is scattered as if the stride were 1."""

import numpy as np

CONVGRAD = {"spatial_dims": [2], "one_int": True}


def _patches(xp, kh, kw, s, oh, ow):
    for i in range(kh):
        for j in range(kw):
            yield i, j, (slice(None), slice(None), slice(i, i + s * oh, s), slice(j, j + s * ow, s))


def forward(x, w, b, s=1, p=0):
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    kh, kw = w.shape[2:]
    oh = (xp.shape[2] - kh) // s + 1
    ow = (xp.shape[3] - kw) // s + 1
    y = np.zeros((x.shape[0], w.shape[0], oh, ow), dtype=x.dtype)
    for i, j, at in _patches(xp, kh, kw, s, oh, ow):
        y += np.einsum("nchw,fc->nfhw", xp[at], w[:, :, i, j])
    return y + b[:, None, None]


def backward(dy, x, w, s=1, p=0):
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    kh, kw = w.shape[2:]
    oh, ow = dy.shape[2:]
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i, j, at in _patches(xp, kh, kw, s, oh, ow):
        dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dy, xp[at])
        dxp[at] += np.einsum("nfhw,fc->nchw", dy, w[:, :, i, j])
    return dxp[:, :, p : p + x.shape[2], p : p + x.shape[3]], dw, dy.sum(axis=(0, 2, 3))


def backward_dx_ignores_stride(dy, x, w, s=1, p=0):
    _, dw, db = backward(dy, x, w, s, p)
    _, dx_unit, _ = backward(dy, x, w, 1, p) if s == 1 else (None, None, None)
    if dx_unit is None:
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        kh, kw = w.shape[2:]
        oh, ow = dy.shape[2:]
        dxp = np.zeros_like(xp)
        for i in range(kh):
            for j in range(kw):
                dxp[:, :, i : i + oh, j : j + ow] += np.einsum("nfhw,fc->nchw", dy, w[:, :, i, j])
        dx_unit = dxp[:, :, p : p + x.shape[2], p : p + x.shape[3]]
    return dx_unit, dw, db
