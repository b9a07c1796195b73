"""A toy deep learning library whose arrays all live in float32, as its GPU kernels did: the
Tensor class converts whatever it is given, and every op computes in float32. backward takes the
gradient of the output as an array or a Tensor. The conv is a cross-correlation by kernel
positions; its input gradient is the full correlation of the (stride-dilated, padded) output
gradient with the flipped kernels.

conv2d_unflipped_dx is the conv whose input gradient correlates with the kernels as they are,
not rotated by 180 degrees."""

import numpy as np

CONVGRAD = {"tensor": "Tensor", "forward": "conv2d", "dtypes": ["float32"], "spatial_dims": 2, "one_int": True}


class Tensor:
    def __init__(self, data, parents=(), backward=None):
        self.data = np.asarray(data, dtype=np.float32)
        self.grad = np.zeros_like(self.data)
        self.parents = parents
        self._backward = backward

    def __add__(self, other):
        out = Tensor(self.data + other.data, (self, other))
        out._backward = lambda g: (_add_to(self, g), _add_to(other, g))
        return out

    def __mul__(self, other):
        out = Tensor(self.data * other.data, (self, other))
        out._backward = lambda g: (_add_to(self, g * other.data), _add_to(other, g * self.data))
        return out

    def sum(self):
        out = Tensor(self.data.sum(), (self,))
        out._backward = lambda g: _add_to(self, np.broadcast_to(g, self.data.shape))
        return out

    def reshape(self, *shape):
        out = Tensor(self.data.reshape(*shape), (self,))
        out._backward = lambda g: _add_to(self, g.reshape(self.data.shape))
        return out

    def backward(self, grad=None):
        if isinstance(grad, Tensor):
            grad = grad.data
        order, seen = [], set()

        def visit(t):
            if id(t) not in seen:
                seen.add(id(t))
                for p in t.parents:
                    visit(p)
                order.append(t)

        visit(self)
        self.grad = np.ones_like(self.data) if grad is None else np.asarray(grad, dtype=np.float32)
        for t in reversed(order):
            if t._backward is not None:
                t._backward(t.grad)


def _add_to(t, g):
    t.grad += g.astype(np.float32)


def _correlate(xp, k, s):
    """Valid cross-correlation of (N, C, H, W) with (F, C, kh, kw) at stride s."""
    f, c, kh, kw = k.shape
    ho, wo = (xp.shape[2] - kh) // s + 1, (xp.shape[3] - kw) // s + 1
    out = np.zeros((xp.shape[0], f, ho, wo), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,fc->nfhw", xp[:, :, i : i + s * ho : s, j : j + s * wo : s], k[:, :, i, j])
    return out


def _input_grad(g, kernels, s, p, x_shape):
    """The full correlation of the stride-dilated output gradient with `kernels` (C and F swapped)."""
    n, f, ho, wo = g.shape
    kh, kw = kernels.shape[2:]
    dilated = np.zeros((n, f, (ho - 1) * s + 1, (wo - 1) * s + 1), dtype=np.float32)
    dilated[:, :, ::s, ::s] = g
    full = np.pad(dilated, ((0, 0), (0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1)))
    dxp = _correlate(full, kernels.transpose(1, 0, 2, 3), 1)
    h, w = x_shape[2:]
    # rows and columns the stride never reached get no gradient
    dxp = np.pad(dxp, ((0, 0), (0, 0), (0, h + 2 * p - dxp.shape[2]), (0, w + 2 * p - dxp.shape[3])))
    return dxp[:, :, p : p + h, p : p + w]


def _weight_grad(g, xp, kh, kw, s):
    ho, wo = g.shape[2:]
    dw = np.zeros((g.shape[1], xp.shape[1], kh, kw), dtype=np.float32)
    for i in range(kh):
        for j in range(kw):
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", g, xp[:, :, i : i + s * ho : s, j : j + s * wo : s])
    return dw


def conv2d(x, w, b, stride=1, padding=0):
    p = padding
    xp = np.pad(x.data, ((0, 0), (0, 0), (p, p), (p, p)))
    kh, kw = w.data.shape[2:]
    out = Tensor(_correlate(xp, w.data, stride) + b.data.reshape(1, -1, 1, 1), (x, w, b))

    def backward(g):
        _add_to(x, _input_grad(g, w.data[:, :, ::-1, ::-1], stride, p, x.data.shape))
        _add_to(w, _weight_grad(g, xp, kh, kw, stride))
        _add_to(b, g.sum(axis=(0, 2, 3)))

    out._backward = backward
    return out


def conv2d_unflipped_dx(x, w, b, stride=1, padding=0):
    out = conv2d(x, w, b, stride, padding)
    xp = np.pad(x.data, ((0, 0), (0, 0), (padding, padding), (padding, padding)))

    def backward(g):
        _add_to(x, _input_grad(g, w.data, stride, padding, x.data.shape))
        _add_to(w, _weight_grad(g, xp, *w.data.shape[2:], stride))
        _add_to(b, g.sum(axis=(0, 2, 3)))

    out._backward = backward
    return out
