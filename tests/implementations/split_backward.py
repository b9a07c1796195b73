"""A conv layer whose backward is two functions, one per gradient, as frameworks' kernels often
are: conv2d_grad_input(dy, x, w, ...) -> dX and conv2d_grad_weight(dy, x, w, ...) -> (dW, db).
Declared with backward = {dx = ..., dw = ...}. conv2d_grad_weight_unflipped is wrong: dW
correlates dy with x flipped, the mistake of deriving dW as a full convolution."""

import numpy as np

CONVGRAD = {"forward": "conv2d", "backward": {"dx": "conv2d_grad_input", "dw": "conv2d_grad_weight"},
            "spatial_dims": [2]}


def _windows(x, k_h, k_w, stride, padding, out_h, out_w):
    xp = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))
    for i in range(k_h):
        for j in range(k_w):
            yield i, j, xp[:, :, i : i + stride[0] * out_h : stride[0], j : j + stride[1] * out_w : stride[1]]


def conv2d(x, w, b, stride=(1, 1), padding=(0, 0)):
    n, c, h, wd = x.shape
    f, _, k_h, k_w = w.shape
    out_h = (h + 2 * padding[0] - k_h) // stride[0] + 1
    out_w = (wd + 2 * padding[1] - k_w) // stride[1] + 1
    y = np.zeros((n, f, out_h, out_w), dtype=x.dtype)
    for i, j, patch in _windows(x, k_h, k_w, stride, padding, out_h, out_w):
        y += np.einsum("nchw,fc->nfhw", patch, w[:, :, i, j])
    return y + b[None, :, None, None]


def conv2d_grad_input(dy, x, w, stride=(1, 1), padding=(0, 0)):
    n, c, h, wd = x.shape
    f, _, k_h, k_w = w.shape
    out_h, out_w = dy.shape[2:]
    dxp = np.zeros((n, c, h + 2 * padding[0], wd + 2 * padding[1]), dtype=x.dtype)
    for i in range(k_h):
        for j in range(k_w):
            dxp[:, :, i : i + stride[0] * out_h : stride[0], j : j + stride[1] * out_w : stride[1]] += np.einsum(
                "nfhw,fc->nchw", dy, w[:, :, i, j])
    return dxp[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + wd]


def conv2d_grad_weight(dy, x, w, stride=(1, 1), padding=(0, 0)):
    f, _, k_h, k_w = w.shape
    out_h, out_w = dy.shape[2:]
    dw = np.zeros_like(w)
    for i, j, patch in _windows(x, k_h, k_w, stride, padding, out_h, out_w):
        dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dy, patch)
    return dw, dy.sum(axis=(0, 2, 3))


def conv2d_grad_weight_unflipped(dy, x, w, stride=(1, 1), padding=(0, 0)):
    dw, db = conv2d_grad_weight(dy, x, w, stride, padding)
    return dw[:, :, ::-1, ::-1], db
