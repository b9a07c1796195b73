"""A course conv layer done the im2col way, and the ways its db goes wrong in students' hands.

conv_forward(x, w, b, conv_param) returns (out, cache); each conv_backward* takes (dout, cache) and
returns (dx, dw, db). conv_backward is right: db sums dout over the batch and every output position,
one value per kernel, and conv_backward_keepdims is right too (db in shape 1xFx1x1). The others
differ from it in the one line that computes db. Checked with
    convgrad check --impl bias_gradients.py:conv_forward,conv_backward_per_image ...
"""

import numpy as np


def im2col(x_pad, HH, WW, stride, H_out, W_out):
    N, C = x_pad.shape[:2]
    cols = np.empty((C * HH * WW, N * H_out * W_out))
    column = 0
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                patch = x_pad[n, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
                cols[:, column] = patch.ravel()
                column += 1
    return cols


def col2im(cols, x_shape, HH, WW, stride, H_out, W_out):
    dx_pad = np.zeros(x_shape)
    column = 0
    for n in range(x_shape[0]):
        for i in range(H_out):
            for j in range(W_out):
                patch = cols[:, column].reshape(x_shape[1], HH, WW)
                dx_pad[n, :, i * stride : i * stride + HH, j * stride : j * stride + WW] += patch
                column += 1
    return dx_pad


def conv_forward(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    cols = im2col(x_pad, HH, WW, stride, H_out, W_out)
    out = w.reshape(F, -1) @ cols + b.reshape(-1, 1)
    out = out.reshape(F, N, H_out, W_out).transpose(1, 0, 2, 3)
    cache = (x, w, b, conv_param, cols)
    return out, cache


def _dx_dw(dout, cache):
    x, w, b, conv_param, cols = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    dout_rows = dout.transpose(1, 0, 2, 3).reshape(F, -1)
    dw = (dout_rows @ cols.T).reshape(w.shape)
    dcols = w.reshape(F, -1).T @ dout_rows
    padded = (N, C, H + 2 * pad, W + 2 * pad)
    dx_pad = col2im(dcols, padded, HH, WW, stride, H_out, W_out)
    dx = dx_pad[:, :, pad : pad + H, pad : pad + W]
    return dx, dw


def conv_backward(dout, cache):
    dx, dw = _dx_dw(dout, cache)
    db = np.sum(dout, axis=(0, 2, 3))
    return dx, dw, db


def conv_backward_keepdims(dout, cache):
    dx, dw = _dx_dw(dout, cache)
    db = np.sum(dout, axis=(0, 2, 3), keepdims=True)
    return dx, dw, db


def conv_backward_per_image(dout, cache):
    dx, dw = _dx_dw(dout, cache)
    db = np.sum(dout, axis=(1, 2, 3))
    return dx, dw, db


def conv_backward_per_image_keepdims(dout, cache):
    dx, dw = _dx_dw(dout, cache)
    db = np.sum(dout, axis=(1, 2, 3), keepdims=True)
    return dx, dw, db


def conv_backward_not_over_batch(dout, cache):
    dx, dw = _dx_dw(dout, cache)
    db = np.sum(dout, axis=(2, 3))
    return dx, dw, db


def conv_backward_not_over_positions(dout, cache):
    dx, dw = _dx_dw(dout, cache)
    db = np.sum(dout, axis=0)
    return dx, dw, db


def conv_backward_channels_last_axes(dout, cache):
    """db summed over (0, 1, 2) as in a channels-last layer, on channels-first dout."""
    dx, dw = _dx_dw(dout, cache)
    db = np.sum(dout, axis=(0, 1, 2))
    return dx, dw, db


def conv_backward_mean(dout, cache):
    dx, dw = _dx_dw(dout, cache)
    db = np.mean(dout, axis=(0, 2, 3))
    return dx, dw, db


def conv_backward_first_image(dout, cache):
    dx, dw = _dx_dw(dout, cache)
    db = dout[0].sum(axis=(1, 2))
    return dx, dw, db


def conv_backward_loop_assigns(dout, cache):
    """db set (=) instead of accumulated (+=) in the loop over the images: the last image's."""
    dx, dw = _dx_dw(dout, cache)
    db = np.zeros(dout.shape[1])
    for n in range(dout.shape[0]):
        db = dout[n].sum(axis=(1, 2))
    return dx, dw, db


def conv_backward_total(dout, cache):
    dx, dw = _dx_dw(dout, cache)
    db = np.sum(dout)
    return dx, dw, db
