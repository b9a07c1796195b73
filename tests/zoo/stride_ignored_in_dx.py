"""Mistake: dX scatters every output position back onto window (i, j) instead of (s*i, s*j)."""

import numpy as np
from student_conv import bias_gradient, crop, forward, pad, spatial_dims, weight_gradient  # noqa: F401


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    f, depth, kh, kw = w.shape
    per_group = f // groups
    dx_pad = np.zeros(pad(x, padding).shape)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            rows = slice(i, i + dilation[0] * (kh - 1) + 1, dilation[0])  # should start at i * stride[0]
            cols = slice(j, j + dilation[1] * (kw - 1) + 1, dilation[1])
            for g in range(groups):
                filters = slice(g * per_group, (g + 1) * per_group)
                dx_pad[:, g * depth : (g + 1) * depth, rows, cols] += np.einsum(
                    "nf,fckl->nckl", dy[:, filters, i, j], w[filters]
                )
    dx = crop(dx_pad, padding, *x.shape[2:])
    return dx, weight_gradient(dy, x, w, **settings), bias_gradient(dy)
