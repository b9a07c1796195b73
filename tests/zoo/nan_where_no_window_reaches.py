"""Mistake: overlapping window contributions to dX are averaged instead of summed; pixels that
no window reaches (stride larger than the kernel) become 0 / 0 = NaN."""

import numpy as np
from student_conv import bias_gradient, crop, forward, padded_input_gradient, spatial_dims, weight_gradient, window  # noqa: F401


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    kh, kw = w.shape[2:]
    dx_pad = padded_input_gradient(dy, x, w, **settings)
    windows_per_pixel = np.zeros(dx_pad.shape[2:])
    for i in range(dy.shape[2]):
        for j in range(dy.shape[3]):
            windows_per_pixel[window(i, j, kh, kw, stride, dilation)] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        dx_pad = dx_pad / windows_per_pixel
    dx = crop(dx_pad, padding, *x.shape[2:])
    return dx, weight_gradient(dy, x, w, **settings), bias_gradient(dy)
