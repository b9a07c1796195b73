"""Layers that accumulate into dW and db (+=) until their gradients are cleared, as torch and Paddle do."""
import numpy as np


class _Base:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.stride, self.padding = stride, padding
        self.W = np.random.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.1
        self.b = np.zeros(out_channels)
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def forward(self, x):
        s, p = self.stride, self.padding
        self.x = x
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        F, C, kh, kw = self.W.shape
        Ho, Wo = (xp.shape[2] - kh) // s + 1, (xp.shape[3] - kw) // s + 1
        out = np.zeros((x.shape[0], F, Ho, Wo), dtype=np.result_type(x, self.W))
        for i in range(kh):
            for j in range(kw):
                out += np.einsum("nchw,fc->nfhw", xp[:, :, i:i + s * Ho:s, j:j + s * Wo:s], self.W[:, :, i, j])
        return out + self.b[None, :, None, None]

    def backward(self, dout):
        s, p = self.stride, self.padding
        x = self.x
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        F, C, kh, kw = self.W.shape
        Ho, Wo = dout.shape[2:]
        dxp = np.zeros_like(xp)
        for i in range(kh):
            for j in range(kw):
                sl = (slice(None), slice(None), slice(i, i + s * Ho, s), slice(j, j + s * Wo, s))
                self.dW[:, :, i, j] += np.einsum("nfhw,nchw->fc", dout, xp[sl])
                dxp[sl] += np.einsum("nfhw,fc->nchw", dout, self.W[:, :, i, j])
        self.db += dout.sum(axis=(0, 2, 3))
        return dxp[:, :, p:p + x.shape[2], p:p + x.shape[3]]


class AccumConv(_Base):
    """Paddle's name for zero_grad: gradients accumulate into dW and db until it is called."""

    def clear_gradients(self):
        self.dW[...] = 0.0
        self.db[...] = 0.0
