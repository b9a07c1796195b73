"""Layer objects that declare nothing about the shapes they take, as most first versions do.

Conv2D is written for 2-D layers with square kernels: its constructor takes one int for the
kernel size and forward unpacks a 4-D input, so it crashes on 1-D and 3-D cases and on
rectangular kernels. ConvAnyRank handles every rank, but its output size is computed from the
first spatial axis for all of them: on a non-square input it returns a wrong shape."""

import itertools

import numpy as np


class Conv2D:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.W = np.random.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.1
        self.b = np.zeros(out_channels)
        self.stride, self.padding = stride, padding

    def forward(self, x):
        n, c, h, w = x.shape
        s, p = self.stride, self.padding
        k = self.W.shape[2]
        self.x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        h_out, w_out = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        out = np.zeros((n, self.W.shape[0], h_out, w_out))
        for i in range(k):
            for j in range(k):
                window = self.x_pad[:, :, i : i + s * (h_out - 1) + 1 : s, j : j + s * (w_out - 1) + 1 : s]
                out += np.einsum("nchw,fc->nfhw", window, self.W[:, :, i, j])
        return out + self.b[:, None, None]

    def backward(self, dout):
        s, p, k = self.stride, self.padding, self.W.shape[2]
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


class ConvAnyRank:
    def __init__(self, input_shape, filters, kernel_size, stride=1):
        channels, *spatial = input_shape
        kernel = kernel_size if isinstance(kernel_size, tuple) else (kernel_size,) * len(spatial)
        self.W = np.random.randn(filters, channels, *kernel) * 0.1
        self.b = np.zeros(filters)
        self.stride = stride

    def _windows(self, x, size):
        for offset in itertools.product(*(range(k) for k in self.W.shape[2:])):
            slices = (slice(o, o + self.stride * (size - 1) + 1, self.stride) for o in offset)
            yield (slice(None), slice(None), *offset), (slice(None), slice(None), *slices)

    def forward(self, x):
        size = (x.shape[2] - self.W.shape[2]) // self.stride + 1
        out = np.zeros((x.shape[0], self.W.shape[0], *(size,) * (x.ndim - 2)))
        for tap, window in self._windows(x, size):
            out += np.einsum("nc...,fc->nf...", x[window], self.W[tap])
        self.x = x
        return out + self.b.reshape(-1, *(1,) * (x.ndim - 2))

    def backward(self, dout):
        dx = np.zeros_like(self.x)
        self.dW = np.zeros_like(self.W)
        summed = [0, *range(2, dout.ndim)]
        for tap, window in self._windows(self.x, dout.shape[2]):
            self.dW[tap] = np.tensordot(dout, self.x[window], axes=(summed, summed))
            dx[window] += np.einsum("nf...,fc->nc...", dout, self.W[tap])
        self.db = dout.sum(axis=tuple(summed))
        return dx
