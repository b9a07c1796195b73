"""Mistake: the padding is cropped off dX one pixel too far (pad + 1 instead of pad)."""

from layers import PaddingCroppedTooFar

layer = PaddingCroppedTooFar()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
