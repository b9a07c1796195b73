import numpy as np

def fwd(x, w, b, s, p):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    ho, wo = (h + 2 * p - kh) // s + 1, (wd + 2 * p - kw) // s + 1
    y = np.zeros((n, f, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * s:i * s + kh, j * s:j * s + kw]
            y[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    if b is not None:
        y += np.reshape(b, (1, f, 1, 1))
    return y

def bwd(dy, x, w, s, p):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    ho, wo = dy.shape[2:]
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * s:i * s + kh, j * s:j * s + kw]
            dw += np.tensordot(dy[:, :, i, j], patch, axes=([0], [0]))
            dxp[:, :, i * s:i * s + kh, j * s:j * s + kw] += np.tensordot(dy[:, :, i, j], w, axes=([1], [0]))
    dx = dxp[:, :, p:p + h, p:p + wd]
    db = dy.sum(axis=(0, 2, 3))
    return dx, dw, db
