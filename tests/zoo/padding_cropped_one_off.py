"""Mistake: the padding is cropped off dX one pixel too far (pad + 1 instead of pad)."""

from student_conv import bias_gradient, forward, padded_input_gradient, spatial_dims, weight_gradient  # noqa: F401


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    h, wd = x.shape[2:]
    dx_pad = padded_input_gradient(dy, x, w, **settings)
    top, left = padding[0] + 1, padding[1] + 1
    dx = dx_pad[:, :, top : top + h, left : left + wd]
    return dx, weight_gradient(dy, x, w, **settings), bias_gradient(dy)
