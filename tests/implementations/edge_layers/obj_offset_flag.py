import numpy as np
from conv_common import fwd, bwd
CONVGRAD = {"spatial_dims": 2}

class Conv2D:
    """Bias kept as self.offset (a name convgrad does not know); db is WRONG (mean instead of sum)."""
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        self.W = np.random.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.1
        self.offset = np.zeros(out_channels)
        self.s, self.p = stride, padding
    def forward(self, x):
        self.x = x
        return fwd(x, self.W, self.offset, self.s, self.p)
    def backward(self, dout):
        dx, dw, db = bwd(dout, self.x, self.W, self.s, self.p)
        self.dW = dw
        self.doffset = db / 7.0      # wrong
        return dx, dw, db / 7.0      # wrong db returned too
