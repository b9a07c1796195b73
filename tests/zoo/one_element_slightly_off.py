"""Mistake: weight decay meant for every weight lands on one element through a stray index, so
a single coordinate of dK is off by a tiny amount."""

from student_conv import bias_gradient, forward, input_gradient, spatial_dims, weight_gradient  # noqa: F401

WEIGHT_DECAY = 1e-4


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    dw = weight_gradient(dy, x, w, **settings)
    dw[0, 0, 0, 0] += WEIGHT_DECAY * w[0, 0, 0, 0]  # meant: dw += WEIGHT_DECAY * w, and only in the optimiser
    return input_gradient(dy, x, w, **settings), dw, bias_gradient(dy)
