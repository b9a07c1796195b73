"""Mistake: dX gets depth F, one channel per kernel, instead of depth C (the kernels are summed
over their depth instead of being spread back over the input channels)."""

from layers import DxDepthF

layer = DxDepthF()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
