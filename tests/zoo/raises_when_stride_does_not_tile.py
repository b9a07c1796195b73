"""Mistake: like many course solutions, forward asserts that the stride tiles the padded input
exactly, so layers where it does not (a legal setting: the remainder is dropped) crash."""

from layers import RaisesWhenStrideDoesNotTile

layer = RaisesWhenStrideDoesNotTile()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
