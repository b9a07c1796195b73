"""A from-scratch deep-learning library's conv layer: built with its settings, forward(x) keeps
the input, backward(dout) returns dx and leaves dW and db on the layer. It takes one int for the
kernel size, stride and padding, and keeps its bias as a column (F, 1).
Conv2DBatchMeanBias is the same layer with db averaged over the batch."""

import numpy as np

CONVGRAD = {"one_int": True, "spatial_dims": 2}  # one int per setting, 2-D only


class Layer:
    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError


class Conv2D(Layer):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.stride = stride
        self.padding = padding
        self.k = kernel_size
        scale = np.sqrt(2.0 / (in_channels * kernel_size * kernel_size))
        self.W = np.random.randn(out_channels, in_channels, kernel_size, kernel_size) * scale
        self.b = np.zeros((out_channels, 1))
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)
        self.cache = None

    def forward(self, x):
        p, s, k = self.padding, self.stride, self.k
        x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        n, c, h, w = x_pad.shape
        h_out, w_out = (h - k) // s + 1, (w - k) // s + 1
        out = np.zeros((n, self.W.shape[0], h_out, w_out))
        for u in range(k):
            for v in range(k):
                patch = x_pad[:, :, u : u + s * (h_out - 1) + 1 : s, v : v + s * (w_out - 1) + 1 : s]
                out += np.einsum("nchw,fc->nfhw", patch, self.W[:, :, u, v])
        self.cache = x_pad
        return out + self.b.reshape(1, -1, 1, 1)

    def backward(self, dout):
        p, s, k = self.padding, self.stride, self.k
        x_pad = self.cache
        h_out, w_out = dout.shape[2:]
        dx_pad = np.zeros_like(x_pad)
        self.dW = np.zeros_like(self.W)
        for u in range(k):
            for v in range(k):
                rows = slice(u, u + s * (h_out - 1) + 1, s)
                cols = slice(v, v + s * (w_out - 1) + 1, s)
                self.dW[:, :, u, v] = np.einsum("nfhw,nchw->fc", dout, x_pad[:, :, rows, cols])
                dx_pad[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", dout, self.W[:, :, u, v])
        self.db = self._bias_gradient(dout)
        h, w = x_pad.shape[2] - 2 * p, x_pad.shape[3] - 2 * p
        return dx_pad[:, :, p : p + h, p : p + w]

    def _bias_gradient(self, dout):
        return dout.sum(axis=(0, 2, 3)).reshape(-1, 1)


class Conv2DBatchMeanBias(Conv2D):
    def _bias_gradient(self, dout):
        return dout.mean(axis=0).sum(axis=(1, 2)).reshape(-1, 1)
