"""Mistake: backward clips the upstream gradient in place, changing the caller's array."""

from layers import ClipsDyInPlace

layer = ClipsDyInPlace()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
