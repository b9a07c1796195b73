"""Mistake: forward handles dilation, but backward was written before it and treats every
kernel as dense (dilation 1), so dX and dK read the wrong input pixels."""

from student_conv import bias_gradient, forward, input_gradient, spatial_dims, weight_gradient  # noqa: F401


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=(1, 1), groups=groups)
    return input_gradient(dy, x, w, **settings), weight_gradient(dy, x, w, **settings), bias_gradient(dy)
