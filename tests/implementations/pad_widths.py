"""A from-scratch NumPy conv (2-D, with stride and padding) whose padding is one number per axis or,
as np.pad takes it, a (before, after) pair per axis: conv_forward(x, w, b, stride, padding) and
conv_backward(dy, x, w, b, stride, padding) -> (dx, dw, db).

   conv_forward, conv_backward              correct
   conv_forward, conv_backward_centre_crop  crops dX from the middle of the padded gradient: right
                                            for even padding and for TensorFlow's 'SAME' (the odd
                                            pixel after), wrong where more is padded before
"""

import numpy as np

CONVGRAD = {"uneven_padding": True}


def pad_widths(padding):
    """np.pad widths for H and W: (p, p) for a number, (before, after) for a pair."""
    return [(int(p), int(p)) if np.ndim(p) == 0 else (int(p[0]), int(p[1])) for p in padding]


def _windows(x_pad, kh, kw, stride, ho, wo):
    for i in range(kh):
        for j in range(kw):
            yield i, j, (slice(None), slice(None), slice(i, i + stride[0] * (ho - 1) + 1, stride[0]),
                         slice(j, j + stride[1] * (wo - 1) + 1, stride[1]))


def _out_shape(x_pad, w, stride):
    return tuple((size - k) // s + 1 for size, k, s in zip(x_pad.shape[2:], w.shape[2:], stride))


def conv_forward(x, w, b, stride, padding):
    x_pad = np.pad(x, [(0, 0), (0, 0), *pad_widths(padding)])
    ho, wo = _out_shape(x_pad, w, stride)
    out = np.zeros((x.shape[0], w.shape[0], ho, wo), dtype=np.result_type(x, w))
    for i, j, window in _windows(x_pad, *w.shape[2:], stride, ho, wo):
        out += np.einsum("nchw,fc->nfhw", x_pad[window], w[:, :, i, j])
    return out + b.reshape(1, -1, 1, 1)


def _padded_gradients(dy, x, w, stride, padding):
    x_pad = np.pad(x, [(0, 0), (0, 0), *pad_widths(padding)])
    ho, wo = dy.shape[2:]
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    for i, j, window in _windows(x_pad, *w.shape[2:], stride, ho, wo):
        dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dy, x_pad[window])
        dx_pad[window] += np.einsum("nfhw,fc->nchw", dy, w[:, :, i, j])
    return dx_pad, dw


def conv_backward(dy, x, w, b, stride, padding):
    dx_pad, dw = _padded_gradients(dy, x, w, stride, padding)
    (top, _), (left, _) = pad_widths(padding)
    h, wd = x.shape[2:]
    return dx_pad[:, :, top : top + h, left : left + wd], dw, dy.sum(axis=(0, 2, 3))


def conv_backward_centre_crop(dy, x, w, b, stride, padding):
    dx_pad, dw = _padded_gradients(dy, x, w, stride, padding)
    h, wd = x.shape[2:]
    top, left = (dx_pad.shape[2] - h) // 2, (dx_pad.shape[3] - wd) // 2  # the middle of the padded gradient
    return dx_pad[:, :, top : top + h, left : left + wd], dw, dy.sum(axis=(0, 2, 3))
