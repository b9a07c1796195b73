"""Mistake: in dX, group g takes its kernels from slice g*depth instead of g*(F/groups), so
groups borrow each other's kernels whenever C != F."""

import numpy as np
from student_conv import bias_gradient, crop, forward, pad, spatial_dims, weight_gradient, window  # noqa: F401


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    f, depth, kh, kw = w.shape
    dx_pad = np.zeros(pad(x, padding).shape)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            rows, cols = window(i, j, kh, kw, stride, dilation)
            for g in range(groups):
                channels = slice(g * depth, (g + 1) * depth)
                filters = slice(g * depth, g * depth + f // groups)  # should be g * (f // groups)
                dx_pad[:, channels, rows, cols] += np.einsum("nf,fckl->nckl", dy[:, filters, i, j], w[filters])
    dx = crop(dx_pad, padding, *x.shape[2:])
    return dx, weight_gradient(dy, x, w, **settings), bias_gradient(dy)
