"""Course-assignment conv layers as students write them: conv_forward_naive(x, w, b, conv_param)
returns (out, cache) and conv_backward_naive(dout, cache) returns (dx, dw, db), next to other
layers of the assignment. Checked with
    convgrad check --impl course_naive.py:conv_forward_naive,conv_backward_naive ...
conv_backward_bias_mean is the same backward with a classic mistake: db averaged over the batch."""

import numpy as np


def affine_forward(x, w, b):
    out = x.reshape(x.shape[0], -1).dot(w) + b
    return out, (x, w, b)


def relu_forward(x):
    return np.maximum(0, x), x


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * pad - HH) // stride
    W_out = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    out = np.zeros((N, F, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            window = x_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="constant")
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = dout.sum(axis=(0, 2, 3))
    for i in range(H_out):
        for j in range(W_out):
            window = x_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW]
            dw += np.tensordot(dout[:, :, i, j], window, axes=([0], [0]))
            dx_pad[:, :, i * stride : i * stride + HH, j * stride : j * stride + WW] += np.tensordot(
                dout[:, :, i, j], w, axes=([1], [0])
            )
    dx = dx_pad[:, :, pad : pad + H, pad : pad + W]
    return dx, dw, db


def conv_backward_bias_mean(dout, cache):
    dx, dw, db = conv_backward_naive(dout, cache)
    return dx, dw, db / dout.shape[0]
