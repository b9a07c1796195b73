"""A tinygrad-like library's conv functions: conv2d takes no bias at all (it sits before a batch
norm), conv2d_bias takes one as an optional keyword, bias=None. Tensor.backward takes the gradient
of the output as a Tensor (ones by default); the convs loop over output positions, one image of
the batch at a time.

conv2d_dw_last_image is conv2d whose weight gradient is started afresh for every image instead of
summed over the batch: only the last image's contribution is left."""

import numpy as np

CONVGRAD = {"tensor": "Tensor", "forward": "conv2d", "spatial_dims": 2, "one_int": True}


class Tensor:
    def __init__(self, data, parents=(), backward=None):
        self.data = np.asarray(data, dtype=np.float64)
        self.grad = None
        self._parents = parents
        self._backward = backward

    def _accumulate(self, g):
        self.grad = g if self.grad is None else self.grad + g

    def _accumulate_broadcast(self, g):
        while g.ndim > self.data.ndim:
            g = g.sum(axis=0)
        axes = tuple(a for a, size in enumerate(self.data.shape) if size == 1 and g.shape[a] != 1)
        self._accumulate(g.sum(axis=axes, keepdims=True) if axes else g)

    def __add__(self, other):
        return Tensor(self.data + other.data, (self, other),
                      lambda g: (self._accumulate_broadcast(g), other._accumulate_broadcast(g)))

    def __mul__(self, other):
        def backward(g):
            self._accumulate_broadcast(g * other.data)
            other._accumulate_broadcast(g * self.data)

        return Tensor(self.data * other.data, (self, other), backward)

    def sum(self):
        return Tensor(self.data.sum(), (self,), lambda g: self._accumulate(np.full(self.data.shape, g)))

    def reshape(self, *shape):
        return Tensor(self.data.reshape(*shape), (self,), lambda g: self._accumulate(g.reshape(self.data.shape)))

    def backward(self, gradient=None):
        self.grad = np.ones_like(self.data) if gradient is None else gradient.data
        order, seen = [], set()

        def visit(t):
            if id(t) not in seen:
                seen.add(id(t))
                for p in t._parents:
                    visit(p)
                order.append(t)

        visit(self)
        for t in reversed(order):
            if t._backward is not None:
                t._backward(t.grad)


def _positions(x, w, stride, padding):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    windows = [(i, j, (slice(i * s, i * s + kh), slice(j * s, j * s + kw))) for i in range(ho) for j in range(wo)]
    return xp, ho, wo, windows


def _forward(x, w, stride, padding):
    xp, ho, wo, windows = _positions(x, w, stride, padding)
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for n in range(x.shape[0]):
        for i, j, (rows, cols) in windows:
            out[n, :, i, j] = np.tensordot(w, xp[n, :, rows, cols], axes=3)
    return out


def _backward(g, x, w, stride, padding):
    xp, ho, wo, windows = _positions(x, w, stride, padding)
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for n in range(x.shape[0]):
        for i, j, (rows, cols) in windows:
            dxp[n, :, rows, cols] += np.tensordot(g[n, :, i, j], w, axes=1)
            dw += g[n, :, i, j, None, None, None] * xp[n, None, :, rows, cols]
    p = padding
    return dxp[:, :, p : p + x.shape[2], p : p + x.shape[3]], dw


def _backward_dw_per_image(g, x, w, stride, padding):
    xp, ho, wo, windows = _positions(x, w, stride, padding)
    dxp = np.zeros_like(xp)
    for n in range(x.shape[0]):
        dw = np.zeros_like(w)
        for i, j, (rows, cols) in windows:
            dxp[n, :, rows, cols] += np.tensordot(g[n, :, i, j], w, axes=1)
            dw += g[n, :, i, j, None, None, None] * xp[n, None, :, rows, cols]
    p = padding
    return dxp[:, :, p : p + x.shape[2], p : p + x.shape[3]], dw


def conv2d(x, w, stride=1, padding=0):
    def backward(g):
        dx, dw = _backward(g, x.data, w.data, stride, padding)
        x._accumulate(dx)
        w._accumulate(dw)

    return Tensor(_forward(x.data, w.data, stride, padding), (x, w), backward)


def conv2d_bias(x, w, *, bias=None, stride=1, padding=0):
    out = conv2d(x, w, stride=stride, padding=padding)
    if bias is None:
        return out
    return out + bias.reshape(1, -1, 1, 1)


def conv2d_dw_last_image(x, w, stride=1, padding=0):
    def backward(g):
        dx, dw = _backward_dw_per_image(g, x.data, w.data, stride, padding)
        x._accumulate(dx)
        w._accumulate(dw)

    return Tensor(_forward(x.data, w.data, stride, padding), (x, w), backward)
