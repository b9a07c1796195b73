import numpy as np
from conv_common import fwd, bwd
CONVGRAD = {"spatial_dims": 2}

class Param:
    """A parameter object: value in .data, gradient in .grad; converts to an array (for printing, np.* calls)."""
    def __init__(self, data):
        self.data = data
        self.grad = np.zeros_like(data)
    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.data, dtype=dtype)

class Conv2D:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.W = Param(np.random.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.1)
        self.b = Param(np.zeros(out_channels))
        self.s, self.p = stride, padding
    def zero_grad(self):
        self.W.grad[...] = 0
        self.b.grad[...] = 0
    def forward(self, x):
        self.x = x
        return fwd(x, self.W.data, self.b.data, self.s, self.p)
    def backward(self, dout):
        dx, dw, db = bwd(dout, self.x, self.W.data, self.s, self.p)
        self.W.grad += dw
        self.b.grad += db
        return dx
