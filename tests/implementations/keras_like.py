"""A Keras-flavoured NumPy layer: channels-last inputs (N, H, W, C), a kernel (kh, kw, C, F), and
padding given as 'valid' or 'same' only; gradients land on dkernel and dbias.
Conv2DSameShifted is the same layer with 'same' padding put on one side only."""

import numpy as np

CONVGRAD = {"layout": "nhwc", "padding_modes": ["valid", "same"], "spatial_dims": 2}


class Conv2D:
    def __init__(self, input_channels, filters, kernel_size, strides=1, padding="valid"):
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        self.kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.strides = (strides, strides) if isinstance(strides, int) else tuple(strides)
        self.padding = padding
        limit = np.sqrt(6.0 / (input_channels + filters))
        self.kernel = np.random.uniform(-limit, limit, (*self.kernel_size, input_channels, filters))
        self.bias = np.zeros(filters)

    def _pads(self, height, width):
        if self.padding == "valid":
            return [(0, 0), (0, 0)]
        pads = []  # as TensorFlow's 'SAME': ceil(size / stride) outputs, the odd pixel after
        for size, k, s in zip((height, width), self.kernel_size, self.strides):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads.append((total // 2, total - total // 2))
        return pads

    def forward(self, inputs):
        self.input_size = inputs.shape[1:3]
        (top, bottom), (left, right) = self._pads(*self.input_size)
        self.inputs = np.pad(inputs, ((0, 0), (top, bottom), (left, right), (0, 0)))
        kh, kw = self.kernel_size
        sh, sw = self.strides
        n, h, w, _ = self.inputs.shape
        ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
        out = np.zeros((n, ho, wo, self.kernel.shape[-1]))
        for i in range(kh):
            for j in range(kw):
                patch = self.inputs[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :]
                out += patch @ self.kernel[i, j]
        return out + self.bias

    def backward(self, grad):
        kh, kw = self.kernel_size
        sh, sw = self.strides
        ho, wo = grad.shape[1:3]
        dinputs = np.zeros_like(self.inputs)
        self.dkernel = np.zeros_like(self.kernel)
        for i in range(kh):
            for j in range(kw):
                rows, cols = slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw)
                self.dkernel[i, j] = np.einsum("nhwc,nhwf->cf", self.inputs[:, rows, cols, :], grad)
                dinputs[:, rows, cols, :] += grad @ self.kernel[i, j].T
        self.dbias = grad.sum(axis=(0, 1, 2))
        (top, bottom), (left, right) = self._pads(*self.input_size)
        return dinputs[:, top : dinputs.shape[1] - bottom, left : dinputs.shape[2] - right, :]


class Conv2DSameShifted(Conv2D):
    def _pads(self, height, width):
        if self.padding == "valid":
            return [(0, 0), (0, 0)]
        return [(0, k - 1) for k in self.kernel_size]
