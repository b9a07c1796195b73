"""im2col conv that keeps a matrix view of its kernels (W_mat shares memory with W; optimisers update W in place)."""
import numpy as np


class Conv2D:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.s, self.p, self.k = stride, padding, kernel_size
        self.W = np.random.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.1
        self.b = np.zeros(out_channels)
        self.W_mat = self.W.reshape(out_channels, -1)      # a view: no copy per call
        self.dW = np.zeros_like(self.W)
        self.db = np.zeros_like(self.b)

    def _cols(self, xp, Ho, Wo):
        s, k = self.s, self.k
        return np.stack([xp[:, :, i:i + s * Ho:s, j:j + s * Wo:s] for i in range(k) for j in range(k)],
                        axis=2).reshape(xp.shape[0], -1, Ho * Wo)          # N, C*k*k, P (c-major)

    def forward(self, x):
        p, s, k = self.p, self.s, self.k
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        Ho, Wo = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
        self.cols = self._cols(xp, Ho, Wo)
        self.xp_shape, self.x_shape = xp.shape, x.shape
        out = np.einsum("fk,nkp->nfp", self.W_mat, self.cols) + self.b[None, :, None]
        return out.reshape(x.shape[0], -1, Ho, Wo)

    def backward(self, dout):
        p, s, k = self.p, self.s, self.k
        N, F, Ho, Wo = dout.shape
        d = dout.reshape(N, F, -1)
        self.dW[...] = np.einsum("nfp,nkp->fk", d, self.cols).reshape(self.W.shape)
        self.db[...] = d.sum(axis=(0, 2))
        dcols = np.einsum("fk,nfp->nkp", self.W_mat, d).reshape(N, -1, k * k, Ho, Wo)
        dxp = np.zeros(self.xp_shape, dtype=dout.dtype)
        for i in range(k):
            for j in range(k):
                dxp[:, :, i:i + s * Ho:s, j:j + s * Wo:s] += dcols[:, :, i * k + j]
        H, W = self.x_shape[2:]
        return dxp[:, :, p:p + H, p:p + W]
