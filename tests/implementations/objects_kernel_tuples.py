"""Layers that take the kernel size and settings as tuples: a PyTorch look-alike whose defaults
are tuples (kernel_size=(3, 3), stride=(1, 1), padding=(0, 0)) and which unpacks them; and an
N-D layer whose parameters have no defaults and which takes a tuple per axis always (declared
per_axis), for 1-D, 2-D and 3-D layers alike.

Conv2dStrideIgnoredInDk gathers the input windows for dW as if the stride were 1."""

import itertools

import numpy as np


class Conv2d:
    CONVGRAD = {"spatial_dims": 2}

    def __init__(self, in_channels, out_channels, kernel_size=(3, 3), stride=(1, 1), padding=(0, 0)):
        kh, kw = kernel_size
        self.stride, self.padding = stride, padding
        bound = 1 / np.sqrt(in_channels * kh * kw)
        self.weight = np.random.uniform(-bound, bound, (out_channels, in_channels, kh, kw))
        self.bias = np.random.uniform(-bound, bound, out_channels)

    def forward(self, x):
        (sh, sw), (ph, pw) = self.stride, self.padding
        kh, kw = self.weight.shape[2:]
        self.x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        h_out = (self.x_pad.shape[2] - kh) // sh + 1
        w_out = (self.x_pad.shape[3] - kw) // sw + 1
        out = np.zeros((x.shape[0], self.weight.shape[0], h_out, w_out))
        for i in range(kh):
            for j in range(kw):
                window = self.x_pad[:, :, i : i + sh * (h_out - 1) + 1 : sh, j : j + sw * (w_out - 1) + 1 : sw]
                out += np.einsum("nchw,oc->nohw", window, self.weight[:, :, i, j])
        return out + self.bias[:, None, None]

    def backward(self, grad_output):
        sh, sw = self.stride
        kh, kw = self.weight.shape[2:]
        h_out, w_out = grad_output.shape[2:]
        grad_x = np.zeros_like(self.x_pad)
        self.weight_grad = np.zeros_like(self.weight)
        for i in range(kh):
            for j in range(kw):
                rows, cols = slice(i, i + sh * (h_out - 1) + 1, sh), slice(j, j + sw * (w_out - 1) + 1, sw)
                grad_x[:, :, rows, cols] += np.einsum("nohw,oc->nchw", grad_output, self.weight[:, :, i, j])
                self.weight_grad[:, :, i, j] = np.einsum("nohw,nchw->oc", grad_output, self._weight_window(i, j, h_out, w_out))
        self.bias_grad = grad_output.sum(axis=(0, 2, 3))
        return self._crop(grad_x)

    def _crop(self, grad_x):
        ph, pw = self.padding
        return grad_x[:, :, ph : grad_x.shape[2] - ph, pw : grad_x.shape[3] - pw]

    def _weight_window(self, i, j, h_out, w_out):
        sh, sw = self.stride
        return self.x_pad[:, :, i : i + sh * (h_out - 1) + 1 : sh, j : j + sw * (w_out - 1) + 1 : sw]


class Conv2dStrideIgnoredInDk(Conv2d):
    def _weight_window(self, i, j, h_out, w_out):
        return self.x_pad[:, :, i : i + h_out, j : j + w_out]


class ConvND:
    """Any number of spatial axes: ksize, strides and pads each a tuple with one value per axis."""

    CONVGRAD = {"per_axis": True}

    def __init__(self, in_ch, out_ch, ksize, strides, pads):
        self.strides, self.pads = tuple(strides), tuple(pads)
        self.W = np.random.randn(out_ch, in_ch, *ksize) * np.sqrt(2.0 / (in_ch * np.prod(ksize)))
        self.b = np.zeros(out_ch)

    def _taps(self, out_shape):
        """(kernel offset, the input slice it meets for every output position) per kernel tap."""
        for offset in itertools.product(*(range(k) for k in self.W.shape[2:])):
            yield offset, (slice(None), slice(None), *(
                slice(o, o + s * (n - 1) + 1, s) for o, s, n in zip(offset, self.strides, out_shape)))

    def forward(self, x):
        self.x_pad = np.pad(x, ((0, 0), (0, 0), *((p, p) for p in self.pads)))
        out_shape = [(n - k) // s + 1 for n, k, s in zip(self.x_pad.shape[2:], self.W.shape[2:], self.strides)]
        y = np.zeros((x.shape[0], self.W.shape[0], *out_shape))
        for offset, window in self._taps(out_shape):
            y += np.einsum("nc...,fc->nf...", self.x_pad[window], self.W[(slice(None), slice(None), *offset)])
        return y + self.b.reshape(-1, *(1,) * len(out_shape))

    def backward(self, dy):
        out_shape = dy.shape[2:]
        dx_pad = np.zeros_like(self.x_pad)
        self.dW = np.zeros_like(self.W)
        for offset, window in self._taps(out_shape):
            tap = (slice(None), slice(None), *offset)
            summed = [0, *range(2, dy.ndim)]  # the batch and every output position
            self.dW[tap] = np.tensordot(dy, self.x_pad[window], axes=(summed, summed))
            dx_pad[window] += np.einsum("nf...,fc->nc...", dy, self.W[tap])
        self.db = dy.sum(axis=(0, *range(2, dy.ndim)))
        return dx_pad[(slice(None), slice(None), *(slice(p, n - p) for p, n in zip(self.pads, dx_pad.shape[2:])))]
