"""A Keras-style Conv2D in plain NumPy, written to match tf.keras.layers.Conv2D: channels-last
inputs (N, H, W, C), a kernel (kh, kw, C, filters), strides, and padding 'valid' or 'same'.

'same' is TensorFlow's: the output has ceil(H / stride) rows, and the padding that takes is split
with the odd pixel at the bottom/right (so at stride 2 it is often 0 on top and 1 at the bottom).

   Conv2D            correct
   Conv2DEvenPads    pads the same amount on both sides, rounded up as stride-1 'same' code does,
                     then crops the output to ceil(H / stride): right where TensorFlow's total
                     padding is even, shifted by one pixel where it is odd
"""

import math

import numpy as np

CONVGRAD = {"layout": "nhwc", "padding_modes": ["valid", "same"], "spatial_dims": [2], "one_int": True}


def same_padding(size, kernel, stride):
    """(before, after) as tf.nn.conv2d computes it for padding='SAME'."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class Conv2D:
    def __init__(self, input_channels, filters, kernel_size, strides=1, padding="valid"):
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
        self.kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.strides = (strides, strides) if isinstance(strides, int) else tuple(strides)
        self.padding = padding
        limit = np.sqrt(6.0 / (input_channels + filters))  # glorot_uniform, as Keras initialises
        self.kernel = np.random.uniform(-limit, limit, (*self.kernel_size, input_channels, filters))
        self.bias = np.zeros(filters)

    def output_size(self, size, axis):
        if self.padding == "same":
            return math.ceil(size / self.strides[axis])
        return (size - self.kernel_size[axis]) // self.strides[axis] + 1

    def pads(self, height, width):
        if self.padding == "valid":
            return (0, 0), (0, 0)
        return tuple(same_padding(size, k, s) for size, k, s in zip((height, width), self.kernel_size, self.strides))

    def forward(self, inputs):
        n, h, w, _ = inputs.shape
        self.input_shape = inputs.shape
        (top, bottom), (left, right) = self.pads(h, w)
        self.padded = np.pad(inputs, ((0, 0), (top, bottom), (left, right), (0, 0)))
        return self._correlate(self.padded, self.output_size(h, 0), self.output_size(w, 1))

    def _correlate(self, padded, ho, wo):
        kh, kw = self.kernel_size
        sh, sw = self.strides
        out = np.zeros((padded.shape[0], ho, wo, self.kernel.shape[-1]), dtype=np.result_type(padded, self.kernel))
        for i in range(kh):
            for j in range(kw):
                patch = padded[:, i : i + sh * (ho - 1) + 1 : sh, j : j + sw * (wo - 1) + 1 : sw, :]
                out += patch @ self.kernel[i, j]
        return out + self.bias

    def backward(self, grad):
        kh, kw = self.kernel_size
        sh, sw = self.strides
        ho, wo = grad.shape[1:3]
        dpadded = np.zeros_like(self.padded)
        self.dkernel = np.zeros_like(self.kernel)
        for i in range(kh):
            for j in range(kw):
                rows, cols = slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw)
                self.dkernel[i, j] = np.einsum("nhwc,nhwf->cf", self.padded[:, rows, cols, :], grad)
                dpadded[:, rows, cols, :] += grad @ self.kernel[i, j].T
        self.dbias = grad.sum(axis=(0, 1, 2))
        _, h, w, _ = self.input_shape
        (top, _), (left, _) = self.pads(h, w)
        return dpadded[:, top : top + h, left : left + w, :]


class Conv2DEvenPads(Conv2D):
    def pads(self, height, width):
        if self.padding == "valid":
            return (0, 0), (0, 0)
        even = []
        for size, k, s in zip((height, width), self.kernel_size, self.strides):
            total = sum(same_padding(size, k, s))
            even.append(((total + 1) // 2, (total + 1) // 2))
        return tuple(even)

    def forward(self, inputs):
        n, h, w, _ = inputs.shape
        self.input_shape = inputs.shape
        (top, bottom), (left, right) = self.pads(h, w)
        self.padded = np.pad(inputs, ((0, 0), (top, bottom), (left, right), (0, 0)))
        ph, pw = self.padded.shape[1:3]
        full = self._correlate(self.padded, (ph - self.kernel_size[0]) // self.strides[0] + 1,
                               (pw - self.kernel_size[1]) // self.strides[1] + 1)
        return full[:, : self.output_size(h, 0), : self.output_size(w, 1)]  # crop to the 'same' size

    def backward(self, grad):
        ph, pw = self.padded.shape[1:3]
        full = np.zeros((grad.shape[0], (ph - self.kernel_size[0]) // self.strides[0] + 1,
                         (pw - self.kernel_size[1]) // self.strides[1] + 1, grad.shape[3]), dtype=grad.dtype)
        full[:, : grad.shape[1], : grad.shape[2]] = grad
        return super().backward(full)
