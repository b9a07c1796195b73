"""Mistake: a single coordinate of dK, the first, is off by 1e-5 of dK's scale (say, weight
decay meant for every weight landing on one element through a stray index)."""

from layers import OneCoordinateOff

layer = OneCoordinateOff("dK", 0, relative=1e-5)
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
