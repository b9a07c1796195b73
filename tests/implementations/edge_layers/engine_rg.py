"""A teaching autograd engine that mimics torch: only tensors created with requires_grad=True get a .grad."""
import numpy as np
from conv_common import fwd, bwd

CONVGRAD = {"tensor": "Tensor", "forward": "conv2d"}

class Tensor:
    def __init__(self, data, requires_grad=False, _parents=(), _backward=None):
        self.data = np.asarray(data, dtype=np.float64)
        self.requires_grad = requires_grad or any(p.requires_grad for p in _parents)
        self.grad = None
        self._parents, self._backward = _parents, _backward

    def backward(self, grad):
        grad = grad.data if isinstance(grad, Tensor) else np.asarray(grad)
        self._accumulate(grad)
        order, seen = [], set()
        def visit(t):
            if id(t) not in seen:
                seen.add(id(t))
                for p in t._parents:
                    visit(p)
                order.append(t)
        visit(self)
        for t in reversed(order):
            if t._backward is not None and t._grad_in is not None:
                t._backward(t._grad_in)

    def _accumulate(self, g):
        self._grad_in = g if getattr(self, "_grad_in", None) is None else self._grad_in + g
        if self.requires_grad and not self._parents:      # a leaf that asked for a gradient
            self.grad = self._grad_in

def conv2d(x, w, b, stride=1, padding=0):
    out = Tensor(fwd(x.data, w.data, b.data, stride, padding), _parents=(x, w, b))
    def back(g):
        dx, dw, db = bwd(g, x.data, w.data, stride, padding)
        for t, d in ((x, dx), (w, dw), (b, db)):
            t._accumulate(d)
    out._backward = back
    for t in (x, w, b):
        t._grad_in = None
    out._grad_in = None
    return out
