"""Layers of from-scratch libraries whose methods are named their own way, each declaring them:
forward_pass(X, training=True) and backward_pass(accum_grad) with the bias kept as w0; a forward
that needs a training flag, pass_forward(x, training), given as a positional or a keyword.

Conv2DKernelFlippedInDx flips the kernel when it spreads the gradient back onto the input, as if
the forward were a true convolution."""

import numpy as np

CONVGRAD = {"spatial_dims": 2, "one_int": True}


class Conv2D:
    CONVGRAD = {"forward": "forward_pass", "backward": "backward_pass",
                "attributes": {"bias": "w0", "grad_bias": "grad_w0"}}

    def __init__(self, n_filters, filter_size, input_shape, stride=1, padding=0):
        channels = input_shape[0]
        limit = 1 / np.sqrt(channels * filter_size * filter_size)
        self.W = np.random.uniform(-limit, limit, (n_filters, channels, filter_size, filter_size))
        self.w0 = np.zeros((n_filters, 1))
        self.stride, self.padding = stride, padding
        self.trainable = True

    def forward_pass(self, X, training=True):
        p, s = self.padding, self.stride
        k = self.W.shape[2]
        self.layer_input = np.pad(X, ((0, 0), (0, 0), (p, p), (p, p)))
        h_out = (self.layer_input.shape[2] - k) // s + 1
        w_out = (self.layer_input.shape[3] - k) // s + 1
        out = np.zeros((X.shape[0], self.W.shape[0], h_out, w_out))
        for i in range(k):
            for j in range(k):
                taps = self.layer_input[:, :, i : i + s * (h_out - 1) + 1 : s, j : j + s * (w_out - 1) + 1 : s]
                out += np.einsum("nchw,fc->nfhw", taps, self.W[:, :, i, j])
        return out + self.w0.reshape(1, -1, 1, 1)

    def backward_pass(self, accum_grad):
        p, s = self.padding, self.stride
        k = self.W.shape[2]
        h_out, w_out = accum_grad.shape[2:]
        grad_input = np.zeros_like(self.layer_input)
        self.grad_W = np.zeros_like(self.W)
        for i in range(k):
            for j in range(k):
                rows, cols = slice(i, i + s * (h_out - 1) + 1, s), slice(j, j + s * (w_out - 1) + 1, s)
                self.grad_W[:, :, i, j] = np.einsum("nfhw,nchw->fc", accum_grad, self.layer_input[:, :, rows, cols])
                grad_input[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", accum_grad, self._tap(i, j))
        self.grad_w0 = accum_grad.sum(axis=(0, 2, 3)).reshape(-1, 1)
        height, width = grad_input.shape[2] - 2 * p, grad_input.shape[3] - 2 * p
        return grad_input[:, :, p : p + height, p : p + width]

    def _tap(self, i, j):
        return self.W[:, :, i, j]


class Conv2DKernelFlippedInDx(Conv2D):
    def _tap(self, i, j):
        k = self.W.shape[2]
        return self.W[:, :, k - 1 - i, k - 1 - j]


class TrainingFlagConv(Conv2D):
    """pass_forward(x, training) needs the flag; pass_backward(dout) takes the gradient."""

    CONVGRAD = {"forward": "pass_forward(x, True)", "backward": "pass_backward(dout)",
                "attributes": {"bias": "w0", "grad_bias": "grad_w0"}}

    def pass_forward(self, x, training):
        if not training:
            raise RuntimeError("this layer keeps its input only while training")
        return self.forward_pass(x)

    def pass_backward(self, dout):
        return self.backward_pass(dout)


class KeywordFlagConv(TrainingFlagConv):
    """The flag is keyword-only: pass_forward(x, *, training)."""

    CONVGRAD = {"forward": "pass_forward(x, training=True)", "backward": "pass_backward(dout)",
                "attributes": {"bias": "w0", "grad_bias": "grad_w0"}}

    def pass_forward(self, x, *, training):
        return super().pass_forward(x, training)
