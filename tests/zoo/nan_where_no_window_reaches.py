"""Mistake: overlapping window contributions to dX are averaged instead of summed; pixels that
no window reaches (stride larger than the kernel) become 0 / 0 = NaN."""

from layers import DxAveragedOverWindows

layer = DxAveragedOverWindows()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
