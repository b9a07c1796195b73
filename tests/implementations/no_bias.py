"""A bias-free conv layer object, as written before a batch norm: only `weight`, and its
gradient in `grad_weight`. ConvNoBiasTransposedGrad stores grad_weight with kh and kw swapped."""

import numpy as np


class ConvNoBias:
    def __init__(self, in_ch, out_ch, k, stride=1, padding=0):
        self.weight = np.random.randn(out_ch, in_ch, k, k) * 0.1
        self.stride, self.padding = stride, padding

    def forward(self, x):
        self.x = x
        p, s = self.padding, self.stride
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        f, c, kh, kw = self.weight.shape
        ho, wo = (xp.shape[2] - kh) // s + 1, (xp.shape[3] - kw) // s + 1
        out = np.zeros((x.shape[0], f, ho, wo))
        for i in range(ho):
            for j in range(wo):
                out[:, :, i, j] = np.einsum("nchw,fchw->nf", xp[:, :, i * s : i * s + kh, j * s : j * s + kw], self.weight)
        return out

    def backward(self, dout):
        p, s = self.padding, self.stride
        xp = np.pad(self.x, ((0, 0), (0, 0), (p, p), (p, p)))
        f, c, kh, kw = self.weight.shape
        dxp = np.zeros_like(xp)
        grad = np.zeros_like(self.weight)
        for i in range(dout.shape[2]):
            for j in range(dout.shape[3]):
                window = (slice(None), slice(None), slice(i * s, i * s + kh), slice(j * s, j * s + kw))
                grad += np.einsum("nf,nchw->fchw", dout[:, :, i, j], xp[window])
                dxp[window] += np.einsum("nf,fchw->nchw", dout[:, :, i, j], self.weight)
        self.grad_weight = self._stored(grad)
        return dxp[:, :, p : p + self.x.shape[2], p : p + self.x.shape[3]]

    def _stored(self, grad):
        return grad


class ConvNoBiasTransposedGrad(ConvNoBias):
    def _stored(self, grad):
        return grad.transpose(0, 1, 3, 2).copy()
