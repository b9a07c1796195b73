"""Mistake: dX scatters every output position back onto window (i, j) instead of (s*i, s*j)."""

from layers import StrideIgnoredInDx

layer = StrideIgnoredInDx()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
