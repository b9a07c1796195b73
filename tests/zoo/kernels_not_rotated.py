"""Mistake: dX as the full convolution of dO with the kernels swapped but not rotated by 180°."""

from student_conv import bias_gradient, forward, input_gradient_by_full_convolution, spatial_dims, weight_gradient  # noqa: F401


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    settings = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    f, depth, kh, kw = w.shape
    swapped = w.reshape(groups, f // groups, depth, kh, kw).transpose(0, 2, 1, 3, 4)
    kernels = swapped.reshape(groups * depth, f // groups, kh, kw)  # the [..., ::-1, ::-1] is missing
    dx = input_gradient_by_full_convolution(dy, x, kernels, **settings)
    return dx, weight_gradient(dy, x, w, **settings), bias_gradient(dy)
