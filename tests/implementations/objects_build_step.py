"""Layers that make their weights after the constructor, once they know the input's channels:
in build(input_shape) as Keras layers do, in prep(x) before the first batch, lazily in the first
forward, or in a step named its own way, allocate(batch_shape), which it declares.

LazyConvAccumulatingBias makes its gradient buffers once, in its first forward, and then adds
each backward's db to the last one."""

import numpy as np

CONVGRAD = {"spatial_dims": 2, "one_int": True}


class _Conv:
    """The arithmetic every layer here shares; the weights arrive in self.W and self.b."""

    def __init__(self, filters, kernel_size, stride=1, padding=0):
        self.filters, self.kernel_size = filters, kernel_size
        self.stride, self.padding = stride, padding
        self.W = None
        self.b = None

    def _make_weights(self, channels):
        k = self.kernel_size
        self.W = np.random.randn(self.filters, channels, k, k) * np.sqrt(2.0 / (channels * k * k))
        self.b = np.zeros(self.filters)

    def forward(self, x):
        s, p, k = self.stride, self.padding, self.kernel_size
        self.x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        h_out = (self.x_pad.shape[2] - k) // s + 1
        w_out = (self.x_pad.shape[3] - k) // s + 1
        out = np.zeros((x.shape[0], self.filters, h_out, w_out))
        for i in range(k):
            for j in range(k):
                window = self.x_pad[:, :, i : i + s * (h_out - 1) + 1 : s, j : j + s * (w_out - 1) + 1 : s]
                out += np.einsum("nchw,fc->nfhw", window, self.W[:, :, i, j])
        return out + self.b[:, None, None]

    def backward(self, dout):
        s, p, k = self.stride, self.padding, self.kernel_size
        h_out, w_out = dout.shape[2:]
        dx_pad = np.zeros_like(self.x_pad)
        self.dW = np.zeros_like(self.W)
        for i in range(k):
            for j in range(k):
                rows, cols = slice(i, i + s * (h_out - 1) + 1, s), slice(j, j + s * (w_out - 1) + 1, s)
                self.dW[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, self.x_pad[:, :, rows, cols])
                dx_pad[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", dout, self.W[:, :, i, j])
        self.db = dout.sum(axis=(0, 2, 3))
        return dx_pad[:, :, p : dx_pad.shape[2] - p, p : dx_pad.shape[3] - p]


class BuiltConv(_Conv):
    """Keras style: build(input_shape) with input_shape (C, H, W), called once before use."""

    def build(self, input_shape):
        self._make_weights(input_shape[0])


class PreppedConv(_Conv):
    """prep(x): sized from a first batch."""

    def prep(self, x):
        self._make_weights(x.shape[1])


class LazyConv(_Conv):
    """Weights made in the first forward."""

    def forward(self, x):
        if self.W is None:
            self._make_weights(x.shape[1])
        return super().forward(x)


class LazyConvAccumulatingBias(LazyConv):
    def forward(self, x):
        if self.W is None:
            self._make_weights(x.shape[1])
            self.db = np.zeros(self.filters)
        return _Conv.forward(self, x)

    def backward(self, dout):
        db = self.db
        dx = super().backward(dout)
        self.db = db + dout.sum(axis=(0, 2, 3))
        return dx


class AllocatedConv(_Conv):
    """allocate(batch_shape) with (N, C, H, W): a name and a shape convgrad is told."""

    CONVGRAD = {"build": "allocate(x_shape)"}

    def allocate(self, batch_shape):
        self._make_weights(batch_shape[1])
