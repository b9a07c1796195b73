"""Mistake: db sums dO over the spatial axes of the first image only, not over the batch."""

from student_conv import forward, input_gradient, spatial_dims, weight_gradient  # noqa: F401


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    db = dy[0].sum(axis=(1, 2))
    return input_gradient(dy, x, w, **settings), weight_gradient(dy, x, w, **settings), db
