"""Layer objects whose backward returns the gradients in the shapes libraries use: dx with the
parameters' gradients as a list, (dx, dW, db), a dict, and (grads, dx) with the order declared.

ConvGradsListBatchMean averages dW over the batch."""

import numpy as np

CONVGRAD = {"spatial_dims": 2, "one_int": True}


class _Conv:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        fan_in = in_channels * kernel_size * kernel_size
        self.W = np.random.randn(out_channels, in_channels, kernel_size, kernel_size) / np.sqrt(fan_in)
        self.b = np.zeros(out_channels)
        self.stride, self.padding = stride, padding

    def forward(self, x):
        s, p, k = self.stride, self.padding, self.W.shape[2]
        self.x_pad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        h_out = (self.x_pad.shape[2] - k) // s + 1
        w_out = (self.x_pad.shape[3] - k) // s + 1
        out = np.zeros((x.shape[0], self.W.shape[0], h_out, w_out))
        for i in range(k):
            for j in range(k):
                out += np.einsum("nchw,fc->nfhw", self.x_pad[:, :, i : i + s * (h_out - 1) + 1 : s,
                                                             j : j + s * (w_out - 1) + 1 : s], self.W[:, :, i, j])
        return out + self.b[:, None, None]

    def _gradients(self, dout):
        s, p, k = self.stride, self.padding, self.W.shape[2]
        h_out, w_out = dout.shape[2:]
        dx_pad = np.zeros_like(self.x_pad)
        dW = np.zeros_like(self.W)
        for i in range(k):
            for j in range(k):
                window = (slice(None), slice(None), slice(i, i + s * (h_out - 1) + 1, s), slice(j, j + s * (w_out - 1) + 1, s))
                dW[:, :, i, j] = self._tap_gradient(dout, self.x_pad[window])
                dx_pad[window] += np.einsum("nfhw,fc->nchw", dout, self.W[:, :, i, j])
        dx = dx_pad[:, :, p : dx_pad.shape[2] - p, p : dx_pad.shape[3] - p]
        return dx, dW, dout.sum(axis=(0, 2, 3))

    def _tap_gradient(self, dout, window):
        return np.einsum("nfhw,nchw->fc", dout, window)


class ConvGradsList(_Conv):
    """return dx, [dW, db]: the input gradient, then the parameters' in the order of self.params."""

    def backward(self, dout):
        dx, dW, db = self._gradients(dout)
        return dx, [dW, db]


class ConvGradsListBatchMean(ConvGradsList):
    def _tap_gradient(self, dout, window):
        return np.einsum("nfhw,nchw->fc", dout, window) / dout.shape[0]


class ConvAllThree(_Conv):
    def backward(self, dout):
        return self._gradients(dout)


class ConvGradsDict(_Conv):
    def backward(self, dout):
        dx, dW, db = self._gradients(dout)
        return {"dX": dx, "dW": dW, "db": db}


class ConvGradsFirst(_Conv):
    """return (dW, db), dx: declared, as no usual shape says which is which."""

    CONVGRAD = {"backward_returns": "(dw, db), dx"}

    def backward(self, dout):
        dx, dW, db = self._gradients(dout)
        return (dW, db), dx
