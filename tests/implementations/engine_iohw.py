"""A from-scratch deep learning library that keeps conv kernels the way it keeps its dense
weights, inputs first: (C_in, C_out, kh, kw), so that a 1x1 conv's kernel is its Linear's (in, out)
matrix. Tensor.backward takes the gradient of the output (ones by default) and the conv is one op
with its own backward, im2col inside.

conv2d_dw_reshaped is the conv whose weight gradient was copied from the library's first,
(C_out, C_in, kh, kw) version: (dY^T cols).reshape(w.shape) lays the values out as (out, in)."""

import numpy as np

CONVGRAD = {"tensor": "Tensor", "forward": "conv2d", "spatial_dims": 2, "one_int": True, "weight_layout": "iohw"}


class Tensor:
    def __init__(self, data, parents=(), backward=None):
        self.data = np.asarray(data, dtype=np.float64)
        self.grad = None
        self.parents = parents
        self._backward = backward

    def _accumulate(self, grad):
        self.grad = grad if self.grad is None else self.grad + grad

    def __add__(self, other):
        out = Tensor(self.data + other.data, (self, other))
        out._backward = lambda g: (self._accumulate(g), other._accumulate(g))
        return out

    def __mul__(self, other):
        out = Tensor(self.data * other.data, (self, other))
        out._backward = lambda g: (self._accumulate(g * other.data), other._accumulate(g * self.data))
        return out

    def sum(self):
        out = Tensor(self.data.sum(), (self,))
        out._backward = lambda g: self._accumulate(np.full(self.data.shape, g))
        return out

    def reshape(self, *shape):
        out = Tensor(self.data.reshape(*shape), (self,))
        out._backward = lambda g: self._accumulate(g.reshape(self.data.shape))
        return out

    def backward(self, grad=None):
        order, seen = [], set()

        def visit(t):
            if id(t) not in seen:
                seen.add(id(t))
                for parent in t.parents:
                    visit(parent)
                order.append(t)

        visit(self)
        self.grad = np.ones_like(self.data) if grad is None else np.asarray(grad, dtype=np.float64)
        for t in reversed(order):
            if t._backward is not None and t.grad is not None:
                t._backward(t.grad)


def _im2col(x, kh, kw, s, p):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1
    cols = np.empty((n, ho, wo, c, kh, kw))
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, :, i, j] = xp[:, :, i : i + s * ho : s, j : j + s * wo : s].transpose(0, 2, 3, 1)
    return cols.reshape(n * ho * wo, c * kh * kw), ho, wo


def _col2im(cols, x_shape, kh, kw, s, p, ho, wo):
    n, c, h, w = x_shape
    g = cols.reshape(n, ho, wo, c, kh, kw)
    dxp = np.zeros((n, c, h + 2 * p, w + 2 * p))
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i : i + s * ho : s, j : j + s * wo : s] += g[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, p : p + h, p : p + w]


def conv2d(x, w, b, stride=1, padding=0):
    return _conv(x, w, b, stride, padding, _weight_grad)


def conv2d_dw_reshaped(x, w, b, stride=1, padding=0):
    return _conv(x, w, b, stride, padding, _weight_grad_reshaped)


def _weight_grad(g, cols, w_shape):
    c_in, c_out, kh, kw = w_shape
    return (cols.T @ g).reshape(c_in, kh, kw, c_out).transpose(0, 3, 1, 2)


def _weight_grad_reshaped(g, cols, w_shape):
    return (g.T @ cols).reshape(w_shape)


def _conv(x, w, b, stride, padding, weight_grad):
    n = x.data.shape[0]
    c_in, c_out, kh, kw = w.data.shape
    cols, ho, wo = _im2col(x.data, kh, kw, stride, padding)
    w_mat = w.data.transpose(0, 2, 3, 1).reshape(c_in * kh * kw, c_out)
    out = Tensor((cols @ w_mat + b.data).reshape(n, ho, wo, c_out).transpose(0, 3, 1, 2), (x, w, b))

    def backward(grad):
        g = grad.transpose(0, 2, 3, 1).reshape(-1, c_out)
        x._accumulate(_col2im(g @ w_mat.T, x.data.shape, kh, kw, stride, padding, ho, wo))
        w._accumulate(weight_grad(g, cols, w.data.shape))
        b._accumulate(g.sum(axis=0))

    out._backward = backward
    return out
