"""Mistake: db sums dO over the spatial axes of the first image only, not over the batch."""

from layers import BiasFromFirstImage

layer = BiasFromFirstImage()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
