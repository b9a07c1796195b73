"""An im2col conv layer in the style of a course's fast layers: it reads the output size from the
height alone (square inputs only) and asserts that the stride tiles the padded input. Its function
names and limits are declared below, so no command-line flag is needed.
conv_backward_im2col_flipped returns dw with the kernel taps in reverse order."""

import numpy as np

CONVGRAD = {
    "forward": "conv_forward_im2col",
    "backward": "conv_backward_im2col",
    "square_only": True,
    "stride_tiles": True,
    "spatial_dims": 2,
}


def im2col_indices(x_shape, field_height, field_width, padding, stride):
    N, C, H, W = x_shape
    assert (H + 2 * padding - field_height) % stride == 0, "stride does not tile the input"
    # The height read for both axes: square inputs only (the kernel may be rectangular).
    out_size = (H + 2 * padding - field_height) // stride + 1, (H + 2 * padding - field_width) // stride + 1
    i0 = np.tile(np.repeat(np.arange(field_height), field_width), C)
    i1 = stride * np.repeat(np.arange(out_size[0]), out_size[1])
    j0 = np.tile(np.arange(field_width), field_height * C)
    j1 = stride * np.tile(np.arange(out_size[1]), out_size[0])
    i = i0.reshape(-1, 1) + i1.reshape(1, -1)
    j = j0.reshape(-1, 1) + j1.reshape(1, -1)
    k = np.repeat(np.arange(C), field_height * field_width).reshape(-1, 1)
    return k, i, j, out_size


def im2col(x, field_height, field_width, padding, stride):
    x_padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    k, i, j, out_size = im2col_indices(x.shape, field_height, field_width, padding, stride)
    cols = x_padded[:, k, i, j]
    return cols.transpose(1, 2, 0).reshape(field_height * field_width * x.shape[1], -1), out_size


def col2im(cols, x_shape, field_height, field_width, padding, stride):
    N, C, H, W = x_shape
    x_padded = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    k, i, j, _ = im2col_indices(x_shape, field_height, field_width, padding, stride)
    cols_reshaped = cols.reshape(C * field_height * field_width, -1, N).transpose(2, 0, 1)
    np.add.at(x_padded, (slice(None), k, i, j), cols_reshaped)
    return x_padded[:, :, padding : padding + H, padding : padding + W] if padding else x_padded


def conv_forward_im2col(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    F, _, HH, WW = w.shape
    x_cols, out_size = im2col(x, HH, WW, pad, stride)
    out = w.reshape(F, -1) @ x_cols + b.reshape(-1, 1)
    out = out.reshape(F, *out_size, x.shape[0]).transpose(3, 0, 1, 2)
    return out, (x, w, b, conv_param, x_cols)


def conv_backward_im2col(dout, cache):
    x, w, b, conv_param, x_cols = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    F, _, HH, WW = w.shape
    db = dout.sum(axis=(0, 2, 3))
    dout_reshaped = dout.transpose(1, 2, 3, 0).reshape(F, -1)
    dw = (dout_reshaped @ x_cols.T).reshape(w.shape)
    dx_cols = w.reshape(F, -1).T @ dout_reshaped
    dx = col2im(dx_cols, x.shape, HH, WW, pad, stride)
    return dx, dw, db


def conv_backward_im2col_flipped(dout, cache):
    dx, dw, db = conv_backward_im2col(dout, cache)
    return dx, dw[:, :, ::-1, ::-1], db
