"""A functional autograd library in the style of course projects built after autodidact: the ops
are functions (add, mul, sum, reshape) that record a gradient function, a Tensor's .grad is itself
a Tensor, and backward() differentiates a scalar: it takes no gradient, so a loss is reduced with
sum(t) first. The conv loops over kernel positions.

conv2d_dw_ignores_stride is the same conv whose weight gradient takes the input windows at stride
1, as in the version written before strides were added."""

import numpy as np

CONVGRAD = {"tensor": "Tensor", "forward": "conv2d", "spatial_dims": 2, "one_int": True}


class Tensor:
    def __init__(self, data, inputs=(), grad_fn=None):
        self.data = np.array(data, dtype=np.float64)
        self.grad = None  # a Tensor once backward reaches this one
        self.inputs = inputs
        self.grad_fn = grad_fn  # gradient of the output -> one gradient per input, as Tensors

    @property
    def shape(self):
        return self.data.shape

    def __add__(self, other):
        return add(self, other)

    def __mul__(self, other):
        return mul(self, other)

    def backward(self):
        if self.data.size != 1:
            raise ValueError(f"backward() differentiates a scalar, got shape {self.data.shape}; reduce with sum()")
        self.grad = Tensor(np.ones_like(self.data))
        for node in reversed(_topological_order(self)):
            if node.grad_fn is None:
                continue
            for parent, grad in zip(node.inputs, node.grad_fn(node.grad)):
                parent.grad = grad if parent.grad is None else Tensor(parent.grad.data + grad.data)


def _topological_order(root):
    order, seen = [], set()

    def visit(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        for parent in node.inputs:
            visit(parent)
        order.append(node)

    visit(root)
    return order


def add(a, b):
    return Tensor(a.data + b.data, (a, b), lambda g: (g, g))


def mul(a, b):
    return Tensor(a.data * b.data, (a, b), lambda g: (Tensor(g.data * b.data), Tensor(g.data * a.data)))


def sum(a):
    return Tensor(a.data.sum(), (a,), lambda g: (Tensor(np.broadcast_to(g.data, a.shape).copy()),))


def reshape(a, shape):
    return Tensor(a.data.reshape(shape), (a,), lambda g: (Tensor(g.data.reshape(a.shape)),))


def _sizes(xp, kh, kw, s):
    return (xp.shape[2] - kh) // s + 1, (xp.shape[3] - kw) // s + 1


def _window(i, j, ho, wo, s):
    return slice(None), slice(None), slice(i, i + s * ho, s), slice(j, j + s * wo, s)


def _weight_grad(g, xp, kh, kw, s):
    ho, wo = g.shape[2:]
    dw = np.zeros((g.shape[1], xp.shape[1], kh, kw))
    for i in range(kh):
        for j in range(kw):
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", g, xp[_window(i, j, ho, wo, s)])
    return dw


def conv2d(x, w, b, stride=1, padding=0):
    s, p = stride, padding
    xp = np.pad(x.data, ((0, 0), (0, 0), (p, p), (p, p)))
    f, c, kh, kw = w.shape
    ho, wo = _sizes(xp, kh, kw, s)
    out = np.zeros((x.shape[0], f, ho, wo))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,fc->nfhw", xp[_window(i, j, ho, wo, s)], w.data[:, :, i, j])
    out += b.data.reshape(1, f, 1, 1)

    def grad_fn(grad):
        g = grad.data
        dxp = np.zeros_like(xp)
        for i in range(kh):
            for j in range(kw):
                dxp[_window(i, j, ho, wo, s)] += np.einsum("nfhw,fc->nchw", g, w.data[:, :, i, j])
        dx = dxp[:, :, p : p + x.shape[2], p : p + x.shape[3]]
        return Tensor(dx), Tensor(_weight_grad(g, xp, kh, kw, s)), Tensor(g.sum(axis=(0, 2, 3)))

    return Tensor(out, (x, w, b), grad_fn)


def conv2d_dw_ignores_stride(x, w, b, stride=1, padding=0):
    out = conv2d(x, w, b, stride, padding)
    right = out.grad_fn
    xp = np.pad(x.data, ((0, 0), (0, 0), (padding, padding), (padding, padding)))

    def grad_fn(grad):
        dx, _, db = right(grad)
        return dx, Tensor(_weight_grad(grad.data, xp, *w.shape[2:], 1)), db

    out.grad_fn = grad_fn
    return out
