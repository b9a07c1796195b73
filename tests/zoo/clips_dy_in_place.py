"""Mistake: backward clips the upstream gradient in place, changing the caller's array."""

import numpy as np
from student_conv import backward as exact_backward
from student_conv import forward, spatial_dims  # noqa: F401

CLIP = 1.0


def backward(dy, x, w, b, *, stride, padding, dilation, groups):
    np.clip(dy, -CLIP, CLIP, out=dy)
    return exact_backward(dy, x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
