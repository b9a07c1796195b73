"""A course-style conv layer with its settings as keywords: conv_forward(X, W, b, stride=1,
padding=1) returns (out, cache) and conv_backward(dout, cache) returns (dX, dW, db). Checked with
    convgrad check --impl course_keywords.py ...
conv_backward_dw_mean has a classic mistake: dW averaged over the batch instead of summed."""

import numpy as np

CONVGRAD = {"spatial_dims": [2], "one_int": True}


def conv_forward(X, W, b, stride=1, padding=1):
    N, C, H, Wd = X.shape
    F, _, HH, WW = W.shape
    H_out = 1 + (H + 2 * padding - HH) // stride
    W_out = 1 + (Wd + 2 * padding - WW) // stride
    X_pad = np.pad(X, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((N, F, H_out, W_out), dtype=X.dtype)
    for i in range(HH):
        for j in range(WW):
            patch = X_pad[:, :, i : i + stride * H_out : stride, j : j + stride * W_out : stride]
            out += np.einsum("nchw,fc->nfhw", patch, W[:, :, i, j])
    out += b.reshape(1, -1, 1, 1)
    cache = (X, W, b, stride, padding)
    return out, cache


def conv_backward(dout, cache):
    X, W, b, stride, padding = cache
    F, _, HH, WW = W.shape
    _, _, H_out, W_out = dout.shape
    X_pad = np.pad(X, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dX_pad = np.zeros_like(X_pad)
    dW = np.zeros_like(W)
    for i in range(HH):
        for j in range(WW):
            patch = X_pad[:, :, i : i + stride * H_out : stride, j : j + stride * W_out : stride]
            dW[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, patch)
            dX_pad[:, :, i : i + stride * H_out : stride, j : j + stride * W_out : stride] += np.einsum(
                "nfhw,fc->nchw", dout, W[:, :, i, j])
    H, Wd = X.shape[2:]
    dX = dX_pad[:, :, padding : padding + H, padding : padding + Wd]
    db = dout.sum(axis=(0, 2, 3))
    return dX, dW, db


def conv_backward_dw_mean(dout, cache):
    dX, dW, db = conv_backward(dout, cache)
    return dX, dW / dout.shape[0], db
