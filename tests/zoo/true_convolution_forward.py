"""Mistake: forward computes a true convolution (kernels flipped) instead of the cross-correlation
conv layers use, and backward is the exact gradient of that forward, so only row O can tell."""

from layers import TrueConvolution

layer = TrueConvolution()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
