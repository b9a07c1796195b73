"""micrograd grown up to NumPy arrays: every Tensor keeps a zero-initialised .grad that its
_backward closures add to, and backward() takes no gradient: it seeds the output with ones and
walks the graph in topological order, so a loss is reduced to a scalar with .sum() first. The
conv is built im2col-style from the library's ops (an unfold op, matmul, reshape, transpose and a
broadcasting add), with stride and padding per axis as (h, w) tuples.

conv2d_col2im_overwrites is the same conv with the first version of col2im, which writes each
window's gradient with = instead of adding it: where windows overlap, only the last one counts."""

import numpy as np

CONVGRAD = {"tensor": "Tensor", "forward": "conv2d", "spatial_dims": 2}


class Tensor:
    def __init__(self, data, _children=(), _op=""):
        self.data = np.array(data, dtype=float)
        self.grad = np.zeros_like(self.data)
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op

    def __repr__(self):
        return f"Tensor(shape={self.data.shape}, op={self._op!r})"

    def __add__(self, other):
        other = other if isinstance(other, Tensor) else Tensor(other)
        out = Tensor(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += _unbroadcast(out.grad, self.data.shape)
            other.grad += _unbroadcast(out.grad, other.data.shape)

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Tensor) else Tensor(other)
        out = Tensor(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += _unbroadcast(other.data * out.grad, self.data.shape)
            other.grad += _unbroadcast(self.data * out.grad, other.data.shape)

        out._backward = _backward
        return out

    __radd__ = __add__
    __rmul__ = __mul__

    def __matmul__(self, other):
        out = Tensor(self.data @ other.data, (self, other), "@")

        def _backward():
            self.grad += out.grad @ other.data.T
            other.grad += self.data.T @ out.grad

        out._backward = _backward
        return out

    def sum(self):
        out = Tensor(self.data.sum(), (self,), "sum")

        def _backward():
            self.grad += np.ones_like(self.data) * out.grad

        out._backward = _backward
        return out

    def reshape(self, *shape):
        out = Tensor(self.data.reshape(*shape), (self,), "reshape")

        def _backward():
            self.grad += out.grad.reshape(self.data.shape)

        out._backward = _backward
        return out

    def transpose(self, *axes):
        out = Tensor(self.data.transpose(*axes), (self,), "transpose")

        def _backward():
            self.grad += out.grad.transpose(np.argsort(axes))

        out._backward = _backward
        return out

    def backward(self):
        topo, visited = [], set()

        def build_topo(v):
            if v not in visited:
                visited.add(v)
                for child in v._prev:
                    build_topo(child)
                topo.append(v)

        build_topo(self)
        self.grad = np.ones_like(self.data)
        for v in reversed(topo):
            v._backward()


def _unbroadcast(grad, shape):
    """Sum a broadcast gradient back to the operand's shape."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


def _windows(kh, kw, stride, ho, wo):
    """The slices of the padded input that kernel position (i, j) sees."""
    (sh, sw) = stride
    for i in range(kh):
        for j in range(kw):
            yield i, j, (slice(None), slice(None), slice(i, i + sh * ho, sh), slice(j, j + sw * wo, sw))


def col2im(cols, x_shape, kh, kw, stride, padding):
    """(N*Ho*Wo, C*kh*kw) rows back onto the (N, C, H, W) input, overlapping windows added."""
    n, c, h, w = x_shape
    (ph, pw) = padding
    ho, wo = _out(h, kh, stride[0], ph), _out(w, kw, stride[1], pw)
    g = cols.reshape(n, ho, wo, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    for i, j, window in _windows(kh, kw, stride, ho, wo):
        dxp[window] += g[:, :, i, j]
    return dxp[:, :, ph : ph + h, pw : pw + w]


def col2im_overwrites(cols, x_shape, kh, kw, stride, padding):
    n, c, h, w = x_shape
    (ph, pw) = padding
    ho, wo = _out(h, kh, stride[0], ph), _out(w, kw, stride[1], pw)
    g = cols.reshape(n, ho, wo, c, kh, kw).transpose(0, 3, 4, 5, 1, 2)
    dxp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    for i, j, window in _windows(kh, kw, stride, ho, wo):
        dxp[window] = g[:, :, i, j]
    return dxp[:, :, ph : ph + h, pw : pw + w]


def _out(size, k, s, p):
    return (size + 2 * p - k) // s + 1


def im2col(x, kh, kw, stride, padding, fold=col2im):
    """The unfold op: one row of C*kh*kw values per output position."""
    n, c, h, w = x.data.shape
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = _out(h, kh, sh, ph), _out(w, kw, sw, pw)
    xp = np.pad(x.data, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((n, c, kh, kw, ho, wo))
    for i, j, window in _windows(kh, kw, stride, ho, wo):
        cols[:, :, i, j] = xp[window]
    out = Tensor(cols.transpose(0, 4, 5, 1, 2, 3).reshape(n * ho * wo, c * kh * kw), (x,), "im2col")

    def _backward():
        x.grad += fold(out.grad, x.data.shape, kh, kw, stride, padding)

    out._backward = _backward
    return out, ho, wo


def conv2d(x, w, b, stride=(1, 1), padding=(0, 0)):
    return _conv(x, w, b, stride, padding, col2im)


def conv2d_col2im_overwrites(x, w, b, stride=(1, 1), padding=(0, 0)):
    return _conv(x, w, b, stride, padding, col2im_overwrites)


def _conv(x, w, b, stride, padding, fold):
    n = x.data.shape[0]
    f, c, kh, kw = w.data.shape
    cols, ho, wo = im2col(x, kh, kw, stride, padding, fold)
    out = cols @ w.reshape(f, c * kh * kw).transpose(1, 0) + b
    return out.reshape(n, ho, wo, f).transpose(0, 3, 1, 2)
