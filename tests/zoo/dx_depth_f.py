"""Mistake: dX gets depth F, one channel per kernel, instead of depth C (the kernels are summed
over their depth instead of being spread back over the input channels)."""

import numpy as np
from student_conv import bias_gradient, forward, pad, spatial_dims, weight_gradient, window  # noqa: F401


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    n, f, ho, wo = dy.shape
    kh, kw = w.shape[2:]
    h, wd = x.shape[2:]
    dx_pad = np.zeros((n, f, h + 2 * padding[0], wd + 2 * padding[1]))
    flat_kernels = w.sum(axis=1)  # (F, kh, kw)
    for i in range(ho):
        for j in range(wo):
            rows, cols = window(i, j, kh, kw, stride, dilation)
            dx_pad[:, :, rows, cols] += dy[:, :, i, j, None, None] * flat_kernels
    dx = dx_pad[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + wd]
    return dx, weight_gradient(dy, x, w, **settings), bias_gradient(dy)
