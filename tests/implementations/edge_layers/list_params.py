"""Conv layer in the style of many from-scratch repos: self.params = [W, b], self.grads = [dW, db]."""
import numpy as np


class Conv:
    def __init__(self, n_in, n_out, k, stride=1, pad=0):
        self.stride, self.pad = stride, pad
        W = np.random.randn(n_out, n_in, k, k) * np.sqrt(2 / (n_in * k * k))
        b = np.zeros(n_out)
        self.params = [W, b]
        self.grads = [np.zeros_like(W), np.zeros_like(b)]

    def forward(self, x):
        W, b = self.params
        s, p = self.stride, self.pad
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        F, C, kh, kw = W.shape
        Ho, Wo = (xp.shape[2] - kh) // s + 1, (xp.shape[3] - kw) // s + 1
        cols = np.stack([xp[:, :, i:i + s * Ho:s, j:j + s * Wo:s] for i in range(kh) for j in range(kw)], axis=2)
        self.cache = (x.shape, cols)                                  # N, C, kh*kw, Ho, Wo
        return np.einsum("nckhw,fck->nfhw", cols, W.reshape(F, C, -1)) + b[None, :, None, None]

    def backward(self, dout):
        W, b = self.params
        (N, C, H, Wd), cols = self.cache
        s, p = self.stride, self.pad
        F, _, kh, kw = W.shape
        Ho, Wo = dout.shape[2:]
        dW = np.einsum("nfhw,nckhw->fck", dout, cols).reshape(W.shape)
        db = dout.sum(axis=(2, 3))[0]
        dcols = np.einsum("nfhw,fck->nckhw", dout, W.reshape(F, C, -1))
        dxp = np.zeros((N, C, H + 2 * p, Wd + 2 * p), dtype=dout.dtype)
        for i in range(kh):
            for j in range(kw):
                dxp[:, :, i:i + s * Ho:s, j:j + s * Wo:s] += dcols[:, :, i * kw + j]
        self.grads[0][...] = dW
        self.grads[1][...] = db
        return dxp[:, :, p:p + H, p:p + Wd]
