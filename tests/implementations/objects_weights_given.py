"""Conv layers built from their weights, as in course code that hands each layer its parameters:
`ConvLayer(W, b, stride=1, pad=0)`. The channel counts and the kernel size come from W; the
layer keeps its own copy of W and b, and backward leaves dW and db on it. `Conv2d(filters,
biases, stride, padding)` returns its gradients from backward instead.

ConvLayerStrideIgnoredInDx spreads dout back onto the input as if the stride were 1;
Conv2dBiasAveraged averages db over the batch."""

import numpy as np

CONVGRAD = {"spatial_dims": 2, "one_int": True}  # 2-D, one int per setting (the kernel is read off W)


class ConvLayer:
    def __init__(self, W, b, stride=1, pad=0):
        self.W = np.array(W, dtype=float)
        self.b = np.array(b, dtype=float)
        self.stride = stride
        self.pad = pad
        self.cache = None

    def forward(self, x):
        F, C, HH, WW = self.W.shape
        s, p = self.stride, self.pad
        x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        N, _, H, W = x_pad.shape
        H_out, W_out = (H - HH) // s + 1, (W - WW) // s + 1
        out = np.zeros((N, F, H_out, W_out))
        for i in range(HH):
            for j in range(WW):
                window = x_pad[:, :, i : i + s * (H_out - 1) + 1 : s, j : j + s * (W_out - 1) + 1 : s]
                out += np.einsum("nchw,fc->nfhw", window, self.W[:, :, i, j])
        self.cache = x_pad
        return out + self.b.reshape(1, F, 1, 1)

    def backward(self, dout):
        x_pad = self.cache
        F, C, HH, WW = self.W.shape
        s, p = self.stride, self.pad
        H_out, W_out = dout.shape[2:]
        dx_pad = np.zeros_like(x_pad)
        self.dW = np.zeros_like(self.W)
        for i in range(HH):
            for j in range(WW):
                rows, cols = slice(i, i + s * (H_out - 1) + 1, s), slice(j, j + s * (W_out - 1) + 1, s)
                self.dW[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, x_pad[:, :, rows, cols])
                self._spread(dx_pad, dout, i, j, rows, cols)
        self.db = dout.sum(axis=(0, 2, 3))
        return dx_pad[:, :, p : x_pad.shape[2] - p, p : x_pad.shape[3] - p]

    def _spread(self, dx_pad, dout, i, j, rows, cols):
        dx_pad[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", dout, self.W[:, :, i, j])


class ConvLayerStrideIgnoredInDx(ConvLayer):
    def _spread(self, dx_pad, dout, i, j, rows, cols):
        H_out, W_out = dout.shape[2:]
        dx_pad[:, :, i : i + H_out, j : j + W_out] += np.einsum("nfhw,fc->nchw", dout, self.W[:, :, i, j])


class Conv2d:
    """filters (F, C, kh, kw) and biases (F,); backward returns (dx, dfilters, dbiases)."""

    def __init__(self, filters, biases, stride=1, padding=0):
        self.filters = filters.copy()
        self.biases = biases.copy()
        self.stride, self.padding = stride, padding

    def forward(self, x):
        s, p = self.stride, self.padding
        kh, kw = self.filters.shape[2:]
        self.x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        h_out = (self.x_pad.shape[2] - kh) // s + 1
        w_out = (self.x_pad.shape[3] - kw) // s + 1
        out = np.empty((x.shape[0], self.filters.shape[0], h_out, w_out))
        for r in range(h_out):
            for c in range(w_out):
                patch = self.x_pad[:, :, r * s : r * s + kh, c * s : c * s + kw]
                out[:, :, r, c] = np.tensordot(patch, self.filters, axes=([1, 2, 3], [1, 2, 3]))
        return out + self.biases[None, :, None, None]

    def backward(self, dout):
        s, p = self.stride, self.padding
        kh, kw = self.filters.shape[2:]
        dx_pad = np.zeros_like(self.x_pad)
        dfilters = np.zeros_like(self.filters)
        for r in range(dout.shape[2]):
            for c in range(dout.shape[3]):
                patch = self.x_pad[:, :, r * s : r * s + kh, c * s : c * s + kw]
                dfilters += np.tensordot(dout[:, :, r, c], patch, axes=([0], [0]))
                dx_pad[:, :, r * s : r * s + kh, c * s : c * s + kw] += np.tensordot(dout[:, :, r, c], self.filters, axes=([1], [0]))
        h, w = self.x_pad.shape[2] - 2 * p, self.x_pad.shape[3] - 2 * p
        return dx_pad[:, :, p : p + h, p : p + w], dfilters, self._bias_gradient(dout)

    def _bias_gradient(self, dout):
        return dout.sum(axis=(0, 2, 3))


class Conv2dBiasAveraged(Conv2d):
    def _bias_gradient(self, dout):
        return dout.mean(axis=0).sum(axis=(1, 2))


class ConvFromBank(Conv2d):
    """The same layer with names of its own, which it declares."""

    CONVGRAD = {"constructor": {"weights": "bank", "bias_values": "offsets", "stride": "step", "padding": "border"},
                "attributes": {"weights": "filters", "bias": "biases"}}

    def __init__(self, bank, offsets, step=1, border=0):
        super().__init__(bank, offsets, step, border)
