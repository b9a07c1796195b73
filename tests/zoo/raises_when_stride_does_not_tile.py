"""Mistake: like many course solutions, forward asserts that the stride tiles the padded input
exactly, so layers where it does not (a legal setting: the remainder is dropped) crash."""

from student_conv import backward, spatial_dims  # noqa: F401
from student_conv import forward as exact_forward


def forward(x, w, b, *, stride, padding, dilation, groups):
    h, wd = x.shape[2:]
    kh, kw = w.shape[2:]
    assert (h + 2 * padding[0] - dilation[0] * (kh - 1) - 1) % stride[0] == 0, "height does not tile"
    assert (wd + 2 * padding[1] - dilation[1] * (kw - 1) - 1) % stride[1] == 0, "width does not tile"
    return exact_forward(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
