"""Mistake: dK correlates dO with the input windows at (i, j) instead of (s*i, s*j)."""

import numpy as np
from student_conv import bias_gradient, forward, input_gradient, pad, spatial_dims  # noqa: F401


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    f, depth, kh, kw = w.shape
    per_group = f // groups
    x_pad = pad(x, padding)
    dw = np.zeros_like(w)
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            patch = x_pad[:, :, i : i + dilation[0] * (kh - 1) + 1 : dilation[0], j : j + dilation[1] * (kw - 1) + 1 : dilation[1]]
            for g in range(groups):
                filters = slice(g * per_group, (g + 1) * per_group)
                dw[filters] += np.einsum("nf,nckl->fckl", dy[:, filters, i, j], patch[:, g * depth : (g + 1) * depth])
    return input_gradient(dy, x, w, **settings), dw, bias_gradient(dy)
