"""An early autograd library in the style of small teaching projects: a Tensor holding `.data`
and `.grad`, operations that record a backward closure, and a conv2d on Tensors.
conv2d_wrong_bias is the same conv whose bias gradient is averaged over the batch."""

import numpy as np

CONVGRAD = {"tensor": "Tensor", "forward": "conv2d", "spatial_dims": 2, "one_int": True}


class Tensor:
    def __init__(self, data, parents=(), backward=None):
        self.data = np.asarray(data, dtype=float)
        self.grad = None
        self._parents = parents
        self._backward = backward

    def backward(self, grad=None):
        self.grad = np.ones_like(self.data) if grad is None else np.asarray(grad, dtype=float)
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


def _accumulate(t, g):
    t.grad = g if t.grad is None else t.grad + g


def conv2d(x, w, b, stride=1, padding=0):
    p, s = padding, stride
    xp = np.pad(x.data, ((0, 0), (0, 0), (p, p), (p, p)))
    f, c, kh, kw = w.data.shape
    ho, wo = (xp.shape[2] - kh) // s + 1, (xp.shape[3] - kw) // s + 1
    out = np.zeros((x.data.shape[0], f, ho, wo))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,fc->nfhw", xp[:, :, i : i + s * (ho - 1) + 1 : s, j : j + s * (wo - 1) + 1 : s], w.data[:, :, i, j])
    out += b.data.reshape(1, -1, 1, 1)

    def backward(grad):
        dxp = np.zeros_like(xp)
        dw = np.zeros_like(w.data)
        for i in range(kh):
            for j in range(kw):
                rows, cols = slice(i, i + s * (ho - 1) + 1, s), slice(j, j + s * (wo - 1) + 1, s)
                dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", grad, xp[:, :, rows, cols])
                dxp[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", grad, w.data[:, :, i, j])
        _accumulate(x, dxp[:, :, p : xp.shape[2] - p, p : xp.shape[3] - p])
        _accumulate(w, dw)
        _accumulate(b, _bias_gradient(grad))

    return Tensor(out, (x, w, b), backward)


def _bias_gradient(grad):
    return grad.sum(axis=(0, 2, 3))


def conv2d_wrong_bias(x, w, b, stride=1, padding=0):
    out = conv2d(x, w, b, stride, padding)
    inner = out._backward

    def backward(grad):
        inner(grad)
        b.grad = b.grad / grad.shape[0]

    out._backward = backward
    return out
