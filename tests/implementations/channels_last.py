"""A correct channels-last conv layer: x (N, H, W, C), kernels (kh, kw, C, F), bias (1, 1, 1, F),
as in TensorFlow-style code. Run it with --layout nhwc --weight-layout hwio."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

spatial_dims = (2,)


def _patches(x, kh, kw, stride, padding, dilation):
    """(N, Ho, Wo, kh, kw, C) windows of the padded input."""
    x_pad = np.pad(x, ((0, 0), (padding[0], padding[0]), (padding[1], padding[1]), (0, 0)))
    extent = (dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1)
    view = sliding_window_view(x_pad, extent, axis=(1, 2))  # (N, Ho', Wo', C, eh, ew)
    view = view[:, :: stride[0], :: stride[1], :, :: dilation[0], :: dilation[1]]
    return x_pad, view.transpose(0, 1, 2, 4, 5, 3)


def forward(x, w, b, *, stride, padding, dilation, groups):
    kh, kw, depth, f = w.shape
    _, patches = _patches(x, kh, kw, stride, padding, dilation)
    n, ho, wo = patches.shape[:3]
    patches = patches.reshape(n, ho, wo, kh, kw, groups, depth)
    kernels = w.reshape(kh, kw, depth, groups, f // groups)
    out = np.einsum("nijklgc,klcgf->nijgf", patches, kernels).reshape(n, ho, wo, f)
    return out + np.reshape(b, (1, 1, 1, f))


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    kh, kw, depth, f = w.shape
    x_pad, patches = _patches(x, kh, kw, stride, padding, dilation)
    n, ho, wo = dy.shape[:3]
    dy_groups = dy.reshape(n, ho, wo, groups, f // groups)
    patches = patches.reshape(n, ho, wo, kh, kw, groups, depth)
    dw = np.einsum("nijgf,nijklgc->klcgf", dy_groups, patches).reshape(w.shape)
    kernels = w.reshape(kh, kw, depth, groups, f // groups)
    dpatches = np.einsum("nijgf,klcgf->nijklgc", dy_groups, kernels).reshape(n, ho, wo, kh, kw, groups * depth)
    dx_pad = np.zeros(x_pad.shape)
    for u in range(kh):
        for v in range(kw):
            top, left = u * dilation[0], v * dilation[1]
            dx_pad[:, top : top + stride[0] * ho : stride[0], left : left + stride[1] * wo : stride[1]] += dpatches[:, :, :, u, v]
    h, wd = x.shape[1:3]
    dx = dx_pad[:, padding[0] : padding[0] + h, padding[1] : padding[1] + wd]
    db = dy.sum(axis=(0, 1, 2)).reshape(1, 1, 1, f)
    return dx, dw, db


class ChannelsLastConv:
    """The same layer as a class, to be named with --impl channels_last.py:ChannelsLastConv."""

    spatial_dims = (2,)
    forward = staticmethod(forward)
    backward = staticmethod(backward)


layer = ChannelsLastConv()


class NeedsArguments:
    def __init__(self, scale):
        self.scale = scale
