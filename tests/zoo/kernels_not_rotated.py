"""Mistake: dX as the full convolution of dO with the kernels swapped but not rotated by 180°."""

from layers import KernelsNotRotated

layer = KernelsNotRotated()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
