import numpy as np
from conv_common import fwd, bwd
CONVGRAD = {"spatial_dims": 2, "batched": False}

class Conv2D:
    """One image (C, H, W) at a time; the weights are made by the first forward (input channels read off x)."""
    def __init__(self, out_channels, kernel_size, stride=1, padding=0):
        self.f, self.k, self.s, self.p = out_channels, kernel_size, stride, padding
        self.W = None
    def forward(self, x):
        c, h, w = x.shape
        if self.W is None:
            self.W = np.random.randn(self.f, c, self.k, self.k) * 0.1
            self.b = np.zeros(self.f)
        self.x = x
        return fwd(x[None], self.W, self.b, self.s, self.p)[0]
    def backward(self, dout):
        dx, self.dW, self.db = bwd(dout[None], self.x[None], self.W, self.s, self.p)
        return dx[0]
