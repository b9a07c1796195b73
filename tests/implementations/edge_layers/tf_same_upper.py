"""TF-style conv2d with padding 'SAME' / 'VALID' (string), NCHW."""
import math
import numpy as np

CONVGRAD = {"padding_modes": ["VALID", "SAME"]}


def _pads(size, k, s, padding):
    if padding == "VALID":
        return 0, 0, (size - k) // s + 1
    if padding != "SAME":
        raise ValueError(f"padding must be SAME or VALID, got {padding!r}")
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    before = total // 2                 # odd pixel on the trailing side, as TF
    return before, total - before, out


def conv2d(x, w, b, strides=1, padding="VALID"):
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    t, bo, Ho = _pads(H, kh, strides, padding)
    l, r, Wo = _pads(W, kw, strides, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
    s = strides
    out = np.zeros((N, F, Ho, Wo), dtype=np.result_type(x, w))
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("nchw,fc->nfhw", xp[:, :, i:i + s * Ho:s, j:j + s * Wo:s], w[:, :, i, j])
    return out + b[None, :, None, None]


def conv2d_backward(dy, x, w, b, strides=1, padding="VALID"):
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    t, bo, Ho = _pads(H, kh, strides, padding)
    l, r, Wo = _pads(W, kw, strides, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
    s = strides
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(kh):
        for j in range(kw):
            sl = (slice(None), slice(None), slice(i, i + s * Ho, s), slice(j, j + s * Wo, s))
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dy, xp[sl])
            dxp[sl] += np.einsum("nfhw,fc->nchw", dy, w[:, :, i, j])
    return dxp[:, :, t:t + H, l:l + W], dw, dy.sum(axis=(0, 2, 3))
