"""A conv layer that assumes square kernels (it reads k once, from the last axis), declared with
square_kernels = true so rectangular kernels are skipped rather than failed.
conv_backward_db_wrong_axis is wrong: db sums dy over every axis but the batch."""

import numpy as np

CONVGRAD = {"square_kernels": True, "spatial_dims": [2], "one_int": True}


def conv_forward(x, w, b, stride=1, padding=0):
    k = w.shape[-1]  # square kernels only
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = (h + 2 * padding - k) // stride + 1, (wd + 2 * padding - k) // stride + 1
    cols = np.stack([xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
                     for i in range(k) for j in range(k)], axis=2)  # n, c, k*k, oh, ow
    return np.einsum("nckhw,fck->nfhw", cols, w.reshape(w.shape[0], c, k * k)) + b[None, :, None, None]


def conv_backward(dy, x, w, b, stride=1, padding=0):
    k = w.shape[-1]
    n, c, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh, ow = dy.shape[2:]
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(k):
        for j in range(k):
            at = (slice(None), slice(None), slice(i, i + stride * oh, stride), slice(j, j + stride * ow, stride))
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dy, xp[at])
            dxp[at] += np.einsum("nfhw,fc->nchw", dy, w[:, :, i, j])
    return dxp[:, :, padding : padding + h, padding : padding + wd], dw, dy.sum(axis=(0, 2, 3))


def conv_backward_db_wrong_axis(dy, x, w, b, stride=1, padding=0):
    dx, dw, _ = conv_backward(dy, x, w, b, stride, padding)
    return dx, dw, dy.sum(axis=(1, 2, 3))
