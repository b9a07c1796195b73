"""A small from-scratch library built in PyTorch's image: every weight is a Parameter holding its
value in .data and the gradient in .grad; backward adds into .grad, and the training loop calls
zero_grad() before each step, as with torch.

Conv2dZeroGradForgetsBias clears the weight's gradient but not the bias's, so db grows with
every backward."""

import numpy as np

CONVGRAD = {"spatial_dims": 2}


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


class Parameter:
    def __init__(self, data):
        self.data = data
        self.grad = np.zeros_like(data)


class Module:
    def parameters(self):
        return [value for value in vars(self).values() if isinstance(value, Parameter)]

    def zero_grad(self):
        for parameter in self.parameters():
            parameter.grad = np.zeros_like(parameter.data)

    def __call__(self, *inputs):
        return self.forward(*inputs)


class Conv2d(Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        kh, kw = _pair(kernel_size)
        self.stride, self.padding = _pair(stride), _pair(padding)
        bound = 1 / np.sqrt(in_channels * kh * kw)
        self.weight = Parameter(np.random.uniform(-bound, bound, (out_channels, in_channels, kh, kw)))
        self.bias = Parameter(np.random.uniform(-bound, bound, out_channels)) if bias else None

    def forward(self, x):
        (sh, sw), (ph, pw) = self.stride, self.padding
        weight = self.weight.data
        kh, kw = weight.shape[2:]
        self._x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        h_out = (self._x.shape[2] - kh) // sh + 1
        w_out = (self._x.shape[3] - kw) // sw + 1
        out = np.zeros((x.shape[0], weight.shape[0], h_out, w_out))
        for i in range(kh):
            for j in range(kw):
                window = self._x[:, :, i : i + sh * (h_out - 1) + 1 : sh, j : j + sw * (w_out - 1) + 1 : sw]
                out += np.einsum("nchw,oc->nohw", window, weight[:, :, i, j])
        if self.bias is not None:
            out += self.bias.data[:, None, None]
        return out

    def backward(self, grad_output):
        (sh, sw), (ph, pw) = self.stride, self.padding
        weight = self.weight.data
        kh, kw = weight.shape[2:]
        h_out, w_out = grad_output.shape[2:]
        grad_x = np.zeros_like(self._x)
        for i in range(kh):
            for j in range(kw):
                rows, cols = slice(i, i + sh * (h_out - 1) + 1, sh), slice(j, j + sw * (w_out - 1) + 1, sw)
                self.weight.grad[:, :, i, j] += np.einsum("nohw,nchw->oc", grad_output, self._x[:, :, rows, cols])
                grad_x[:, :, rows, cols] += np.einsum("nohw,oc->nchw", grad_output, weight[:, :, i, j])
        if self.bias is not None:
            self.bias.grad += grad_output.sum(axis=(0, 2, 3))
        return grad_x[:, :, ph : grad_x.shape[2] - ph, pw : grad_x.shape[3] - pw]


class Conv2dZeroGradForgetsBias(Conv2d):
    def zero_grad(self):
        self.weight.grad = np.zeros_like(self.weight.data)
