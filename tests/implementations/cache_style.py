"""A correct course-style conv layer: forward(x, w, b, conv_param) -> (out, cache) and
backward(dout, cache) -> (dx, dw, db), with im2col. No dilation or groups (those cases are skipped)."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def im2col(x_pad, kh, kw, stride):
    """(N, C, Hp, Wp) -> (N, Ho, Wo, C*kh*kw): every window as a row."""
    windows = sliding_window_view(x_pad, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    n, c, ho, wo = windows.shape[:4]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n, ho, wo, c * kh * kw)


def conv_forward(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    f, c, kh, kw = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = im2col(x_pad, kh, kw, stride)
    out = cols @ w.reshape(f, -1).T + b  # (N, Ho, Wo, F)
    cache = (x, w, b, conv_param, cols)
    return out.transpose(0, 3, 1, 2), cache


def conv_backward(dout, cache):
    x, w, b, conv_param, cols = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    dout_rows = dout.transpose(0, 2, 3, 1)  # (N, Ho, Wo, F)
    db = dout_rows.sum(axis=(0, 1, 2))
    dw = np.einsum("nijf,nijk->fk", dout_rows, cols).reshape(w.shape)
    dcols = (dout_rows @ w.reshape(f, -1)).reshape(*dout_rows.shape[:3], c, kh, kw)
    dx_pad = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    for i in range(kh):
        for j in range(kw):
            ho, wo = dcols.shape[1:3]
            dx_pad[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dx_pad[:, :, pad : pad + h, pad : pad + wd], dw, db


class CourseLayer:
    forward = staticmethod(conv_forward)
    backward = staticmethod(conv_backward)


forward, backward = conv_forward, conv_backward
