"""A correct 2-D conv layer written the way a course student would, independent of convgrad.

Deliberately in another calling style than the rest of the zoo: plain module functions instead
of a class, 2-D only (spatial_dims), loops over output positions in the backward pass, the way
they are usually written by hand. It is the zoo's second, independent correct implementation, so
it shares no code with layers.py; the forward pass is vectorised, since a gradient check calls it
thousands of times.
"""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

spatial_dims = (2,)  # 1-D and 3-D cases are skipped


def pad(x, padding):
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def out_size(h, w, kh, kw, stride, padding, dilation):
    ho = (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (w + 2 * padding[1] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return ho, wo


def window(i, j, kh, kw, stride, dilation):
    """The slices of the padded input that output position (i, j) reads."""
    top, left = i * stride[0], j * stride[1]
    return (
        slice(top, top + dilation[0] * (kh - 1) + 1, dilation[0]),
        slice(left, left + dilation[1] * (kw - 1) + 1, dilation[1]),
    )


def forward(x, w, b, *, stride, padding, dilation, groups):
    n, c, h, wd = x.shape
    f, depth, kh, kw = w.shape
    ho, wo = out_size(h, wd, kh, kw, stride, padding, dilation)
    extent = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    patches = sliding_window_view(pad(x, padding), extent, axis=(2, 3))
    patches = patches[:, :, :: stride[0], :: stride[1], :: dilation[0], :: dilation[1]][:, :, :ho, :wo]
    patches = patches.reshape(n, groups, depth, ho, wo, kh, kw)
    kernels = w.reshape(groups, f // groups, depth, kh, kw)
    out = np.einsum("ngcijkl,gfckl->ngfij", patches, kernels).reshape(n, f, ho, wo)
    return out + b[None, :, None, None]


def bias_gradient(dy):
    return dy.sum(axis=(0, 2, 3))


def weight_gradient(dy, x, w, *, stride, padding, dilation, groups):
    f, depth, kh, kw = w.shape
    x_pad = pad(x, padding)
    dw = np.zeros_like(w)
    per_group = f // groups
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            rows, cols = window(i, j, kh, kw, stride, dilation)
            for g in range(groups):
                filters = slice(g * per_group, (g + 1) * per_group)
                patch = x_pad[:, g * depth : (g + 1) * depth, rows, cols]
                dw[filters] += np.einsum("nf,nckl->fckl", dy[:, filters, i, j], patch)
    return dw


def crop(dx_pad, padding, h, w):
    return dx_pad[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + w]


def input_gradient(dy, x, w, *, stride, padding, dilation, groups):
    """Every output position scatters w * dO back onto its window of the padded input."""
    f, depth, kh, kw = w.shape
    dx_pad = np.zeros(pad(x, padding).shape)
    per_group = f // groups
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            rows, cols = window(i, j, kh, kw, stride, dilation)
            for g in range(groups):
                filters = slice(g * per_group, (g + 1) * per_group)
                contribution = np.einsum("nf,fckl->nckl", dy[:, filters, i, j], w[filters])
                dx_pad[:, g * depth : (g + 1) * depth, rows, cols] += contribution
    return crop(dx_pad, padding, *x.shape[2:])


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return input_gradient(dy, x, w, **settings), weight_gradient(dy, x, w, **settings), bias_gradient(dy)
