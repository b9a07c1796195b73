import numpy as np
from conv_common import fwd, bwd

CONVGRAD = {"spatial_dims": 2}


class ConvLayer:
    """filters/biases with dfilters/dbiases, as many from-scratch tutorials name them."""

    def __init__(self, in_channels, num_filters, filter_size, stride=1, padding=0):
        self.filters = np.random.randn(num_filters, in_channels, filter_size, filter_size) * 0.1
        self.biases = np.zeros(num_filters)
        self.stride, self.padding = stride, padding

    def forward(self, x):
        self.x = x
        return fwd(x, self.filters, self.biases, self.stride, self.padding)

    def backward(self, output_gradient):
        dx, self.dfilters, self.dbiases = bwd(output_gradient, self.x, self.filters, self.stride, self.padding)
        return dx
