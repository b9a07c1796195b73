import numpy as np
from conv_common import fwd, bwd
CONVGRAD = {"spatial_dims": 2, "set_weights": "load(bias=b, weight=w)"}

class Conv2D:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self._k = np.random.randn(out_channels, in_channels, kernel_size, kernel_size)
        self._o = np.zeros(out_channels)
        self.s, self.p = stride, padding
    def load(self, bias, weight):
        self._o, self._k = np.asarray(bias), np.asarray(weight)
    def forward(self, x):
        self.x = x
        return fwd(x, self._k, self._o, self.s, self.p)
    def backward(self, dout):
        dx, self.dW, self.db = bwd(dout, self.x, self._k, self.s, self.p)
        return dx
