"""A correct 2-D conv layer written the way a course student would, independent of convgrad.

The zoo files next to this one each replace one piece of it with a classic mistake. The forward
pass is vectorised (a gradient check calls it thousands of times); the backward passes loop over
output positions, the way they are usually written by hand.
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
    dx_pad = padded_input_gradient(dy, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return crop(dx_pad, padding, *x.shape[2:])


def padded_input_gradient(dy, x, w, *, stride, padding, dilation, groups):
    """dX of the padded input: every output position scatters w * dO back onto its window."""
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
    return dx_pad


def kernels_for_input_gradient(w, groups):
    """Rotate every kernel by 180 degrees and swap its kernel and channel axes, per group."""
    f, depth, kh, kw = w.shape
    rotated = w[:, :, ::-1, ::-1]
    per_group = rotated.reshape(groups, f // groups, depth, kh, kw)
    return per_group.transpose(0, 2, 1, 3, 4).reshape(groups * depth, f // groups, kh, kw)


def input_gradient_by_full_convolution(dy, x, kernels, *, stride, padding, dilation, groups):
    """dX as the full convolution of dO (spread out by the stride) with the prepared kernels."""
    n, c, h, wd = x.shape
    kh, kw = kernels.shape[2:]
    reach = (dilation[0] * (kh - 1), dilation[1] * (kw - 1))
    rows, cols = h + 2 * padding[0] - reach[0], wd + 2 * padding[1] - reach[1]
    spread = np.zeros((n, dy.shape[1], rows, cols))
    spread[:, :, :: stride[0], :: stride[1]] = dy
    full = np.pad(spread, ((0, 0), (0, 0), (reach[0], reach[0]), (reach[1], reach[1])))
    dx_pad = forward(
        full, kernels, np.zeros(kernels.shape[0]), stride=(1, 1), padding=(0, 0), dilation=dilation, groups=groups
    )
    return crop(dx_pad, padding, h, wd)


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return input_gradient(dy, x, w, **settings), weight_gradient(dy, x, w, **settings), bias_gradient(dy)
