"""Numerical gradients of E = sum(dy * forward(x, w, b)) by finite differences.

`method.py` chooses how (dense, coloured, sample, projection) and runs it; `step.py` chooses the
step; `colouring.py` says which coordinates may share a forward call. Nothing here judges a
gradient: the numbers go to `convgrad.compare`.
"""
