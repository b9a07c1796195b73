"""Layers that keep their parameters and gradients in dicts, as numpy-ml-style libraries and
course frameworks do: self.parameters = {"W", "b"} with self.gradients keyed alike; self.params
with self.grads = {"dW", "db"}; and short dicts of their own (self.p, self.g), declared.

ConvLayerBiasMean takes the mean of dout for db instead of its sum."""

import numpy as np

CONVGRAD = {"spatial_dims": 2, "one_int": True}


def im2col(x_pad, kh, kw, s, h_out, w_out):
    """(N, C*kh*kw, h_out*w_out) columns of the padded input."""
    n, c = x_pad.shape[:2]
    cols = np.empty((n, c, kh, kw, h_out, w_out))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = x_pad[:, :, i : i + s * (h_out - 1) + 1 : s, j : j + s * (w_out - 1) + 1 : s]
    return cols.reshape(n, c * kh * kw, h_out * w_out)


def col2im(cols, x_shape, kh, kw, s, h_out, w_out):
    n, c = x_shape[:2]
    cols = cols.reshape(n, c, kh, kw, h_out, w_out)
    x_pad = np.zeros(x_shape)
    for i in range(kh):
        for j in range(kw):
            x_pad[:, :, i : i + s * (h_out - 1) + 1 : s, j : j + s * (w_out - 1) + 1 : s] += cols[:, :, i, j]
    return x_pad


def conv_forward(X, W, b, s, p):
    f, _, kh, kw = W.shape
    X_pad = np.pad(X, ((0, 0), (0, 0), (p, p), (p, p)))
    h_out, w_out = (X_pad.shape[2] - kh) // s + 1, (X_pad.shape[3] - kw) // s + 1
    cols = im2col(X_pad, kh, kw, s, h_out, w_out)
    out = np.einsum("fk,nkl->nfl", W.reshape(f, -1), cols) + b.reshape(1, f, 1)
    return out.reshape(X.shape[0], f, h_out, w_out), (cols, X_pad.shape, s, p)


def conv_backward(dout, W, cache):
    cols, padded_shape, s, p = cache
    f, _, kh, kw = W.shape
    h_out, w_out = dout.shape[2:]
    dy = dout.reshape(dout.shape[0], f, -1)
    dW = np.einsum("nfl,nkl->fk", dy, cols).reshape(W.shape)
    dX_pad = col2im(np.einsum("fk,nfl->nkl", W.reshape(f, -1), dy), padded_shape, kh, kw, s, h_out, w_out)
    return dX_pad[:, :, p : padded_shape[2] - p, p : padded_shape[3] - p], dW


def he_normal(out_ch, in_ch, kernel_size):
    return np.random.randn(out_ch, in_ch, kernel_size, kernel_size) * np.sqrt(2.0 / (in_ch * kernel_size ** 2))


class Conv2D:
    """numpy-ml style: self.parameters and self.gradients, both keyed "W" and "b"."""

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, pad=0):
        self.parameters = {"W": he_normal(out_ch, in_ch, kernel_size), "b": np.zeros(out_ch)}
        self.gradients = {"W": np.zeros_like(self.parameters["W"]), "b": np.zeros(out_ch)}
        self.stride, self.pad = stride, pad

    def forward(self, X):
        out, self.cache = conv_forward(X, self.parameters["W"], self.parameters["b"], self.stride, self.pad)
        return out

    def backward(self, dLdy):
        dX, self.gradients["W"] = conv_backward(dLdy, self.parameters["W"], self.cache)
        self.gradients["b"] = dLdy.sum(axis=(0, 2, 3))
        return dX


class ConvLayer:
    """Course-framework style: self.params = {"W", "b"}, self.grads = {"dW", "db"}."""

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, pad=0):
        self.params = {"W": he_normal(out_ch, in_ch, kernel_size), "b": np.zeros(out_ch)}
        self.grads = {}
        self.stride, self.pad = stride, pad

    def forward(self, X):
        out, self.cache = conv_forward(X, self.params["W"], self.params["b"], self.stride, self.pad)
        return out

    def backward(self, dout):
        dX, dW = conv_backward(dout, self.params["W"], self.cache)
        self.grads = {"dW": dW, "db": self._bias_gradient(dout)}
        return dX

    def _bias_gradient(self, dout):
        return dout.sum(axis=(0, 2, 3))


class ConvLayerBiasMean(ConvLayer):
    def _bias_gradient(self, dout):
        return dout.mean(axis=(0, 2, 3))


class ShortDictConv:
    """Dicts under short names of its own, declared."""

    CONVGRAD = {"attributes": {"weights": "p.W", "bias": "p.b", "grad_weights": "g.W", "grad_bias": "g.b"}}

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, pad=0):
        self.p = {"W": he_normal(out_ch, in_ch, kernel_size), "b": np.zeros(out_ch)}
        self.g = {}
        self.stride, self.pad = stride, pad

    def forward(self, X):
        out, self.cache = conv_forward(X, self.p["W"], self.p["b"], self.stride, self.pad)
        return out

    def backward(self, dout):
        dX, self.g["W"] = conv_backward(dout, self.p["W"], self.cache)
        self.g["b"] = dout.sum(axis=(0, 2, 3))
        return dX
