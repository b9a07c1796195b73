"""im2col conv whose kernels live as one (C*k*k, F) matrix, as in many from-scratch CNNs (out = cols @ W)."""
import numpy as np


class Conv:
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        self.s, self.p, self.k, self.C = stride, padding, kernel_size, in_channels
        self.W = np.random.randn(in_channels * kernel_size * kernel_size, out_channels) * 0.1
        self.b = np.zeros(out_channels)

    def forward(self, x):
        p, s, k = self.p, self.s, self.k
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        N, C, H, W = xp.shape
        Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
        cols = np.stack([xp[:, :, i:i + s * Ho:s, j:j + s * Wo:s] for i in range(k) for j in range(k)], axis=2)
        self.cols = cols.transpose(0, 3, 4, 1, 2).reshape(N * Ho * Wo, C * k * k)   # rows: (c, i, j)
        self.shapes = (x.shape, xp.shape, Ho, Wo)
        out = self.cols @ self.W + self.b
        return out.reshape(N, Ho, Wo, -1).transpose(0, 3, 1, 2)

    def backward(self, dout):
        (N, C, H, W), xshape, Ho, Wo = self.shapes
        p, s, k = self.p, self.s, self.k
        d = dout.transpose(0, 2, 3, 1).reshape(-1, dout.shape[1])
        self.dW = self.cols.T @ d
        self.db = d.sum(axis=0)
        dcols = (d @ self.W.T).reshape(N, Ho, Wo, C, k * k).transpose(0, 3, 4, 1, 2)
        dxp = np.zeros(xshape, dtype=dout.dtype)
        for i in range(k):
            for j in range(k):
                dxp[:, :, i:i + s * Ho:s, j:j + s * Wo:s] += dcols[:, :, i * k + j]
        return dxp[:, :, p:p + H, p:p + W]
