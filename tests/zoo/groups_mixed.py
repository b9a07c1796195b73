"""Mistake: in dX, group g takes its kernels from slice g*depth instead of g*(F/groups), so
groups borrow each other's kernels whenever C != F."""

from layers import GroupsMixedInDx

layer = GroupsMixedInDx()
forward, backward = layer.forward, layer.backward
spatial_dims = (2,)  # 2-D only, like the course layers these files stand for: see __init__.py
