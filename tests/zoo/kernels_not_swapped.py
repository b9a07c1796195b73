"""Mistake: the kernels are rotated for dX, but their kernel and channel axes are not swapped.

With C != F the shapes do not fit (dX gets the wrong depth, or backward raises); with C == F
it gives the wrong dX.
"""

from layers import KernelsNotSwapped

layer = KernelsNotSwapped()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
