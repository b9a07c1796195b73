import numpy as np
from conv_common import fwd, bwd
CONVGRAD = {"spatial_dims": 2, "attributes": {"weights": "parms.kernel", "bias": "params.offset",
                                              "grad_weights": "grads.kernel", "grad_bias": "grads.offset"}}

class Conv2D:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.params = {"kernel": np.random.randn(out_channels, in_channels, kernel_size, kernel_size), "offset": np.zeros(out_channels)}
        self.grads = {}
        self.s, self.p = stride, padding
    def forward(self, x):
        self.x = x
        return fwd(x, self.params["kernel"], self.params["offset"], self.s, self.p)
    def backward(self, dout):
        dx, self.grads["kernel"], self.grads["offset"] = bwd(dout, self.x, self.params["kernel"], self.s, self.p)
        return dx
