"""Mistake: dK correlates dO with the input windows at (i, j) instead of (s*i, s*j)."""

from layers import StrideIgnoredInDk

layer = StrideIgnoredInDk()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
