"""Mistake: forward handles dilation, but backward was written before it and treats every
kernel as dense (dilation 1), so dX and dK read the wrong input pixels."""

from layers import DilationIgnored

layer = DilationIgnored()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
