"""Mistake: the kernels are rotated for dX, but their kernel and channel axes are not swapped.

It only runs when C == F (otherwise the shapes do not fit), and then it gives the wrong dX.
"""

from student_conv import bias_gradient, forward, input_gradient_by_full_convolution, spatial_dims, weight_gradient  # noqa: F401


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    rotated = w[:, :, ::-1, ::-1]
    dx = input_gradient_by_full_convolution(dy, x, rotated, **settings)
    return dx, weight_gradient(dy, x, w, **settings), bias_gradient(dy)
