"""A conv layer written for one image at a time, (C, H, W) in and (F, H_out, W_out) out, as in
many from-scratch tutorials; the caller loops over the batch. Declared batched = false, convgrad
loops. conv_single_backward_db_mean averages db over the output positions instead of summing."""

import numpy as np

CONVGRAD = {"batched": False, "forward": "conv_single", "backward": "conv_single_backward",
            "spatial_dims": [2], "one_int": True}


def conv_single(x, w, b, stride=1, pad=0):
    assert x.ndim == 3, "one image (C, H, W)"
    C, H, W = x.shape
    F, _, k_h, k_w = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    h_out = (H + 2 * pad - k_h) // stride + 1
    w_out = (W + 2 * pad - k_w) // stride + 1
    out = np.zeros((F, h_out, w_out), dtype=x.dtype)
    for i in range(k_h):
        for j in range(k_w):
            window = xp[:, i : i + stride * h_out : stride, j : j + stride * w_out : stride]
            out += np.tensordot(w[:, :, i, j], window, axes=1)
    return out + b[:, None, None]


def conv_single_backward(dy, x, w, b, stride=1, pad=0):
    C, H, W = x.shape
    F, _, k_h, k_w = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    h_out, w_out = dy.shape[1:]
    for i in range(k_h):
        for j in range(k_w):
            at = (slice(None), slice(i, i + stride * h_out, stride), slice(j, j + stride * w_out, stride))
            dw[:, :, i, j] = np.tensordot(dy, xp[at], axes=([1, 2], [1, 2]))
            dxp[at] += np.tensordot(w[:, :, i, j], dy, axes=([0], [0]))
    return dxp[:, pad : pad + H, pad : pad + W], dw, dy.sum(axis=(1, 2))


def conv_single_backward_db_mean(dy, x, w, b, stride=1, pad=0):
    """db averaged over the output positions instead of summed."""
    dx, dw, db = conv_single_backward(dy, x, w, b, stride, pad)
    return dx, dw, dy.mean(axis=(1, 2))
