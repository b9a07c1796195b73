"""Mistake: forward computes a true convolution (kernels flipped) instead of the cross-correlation
conv layers use, and backward is the exact gradient of that forward, so only row O can tell."""

from student_conv import backward as correlation_backward
from student_conv import forward as correlation_forward
from student_conv import spatial_dims  # noqa: F401


def forward(x, w, b, *, stride, padding, dilation, groups):
    return correlation_forward(x, w[:, :, ::-1, ::-1], b, stride=stride, padding=padding, dilation=dilation, groups=groups)


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    dx, dw_flipped, db = correlation_backward(dy, x, w[:, :, ::-1, ::-1], b, **settings)
    return dx, dw_flipped[:, :, ::-1, ::-1], db
