import numpy as np
from conv_common import fwd, bwd
# padding as np.pad takes it: a (before, after) pair per spatial axis

def _pad(x, padding):
    return np.pad(x, ((0, 0), (0, 0), *padding))

def forward(x, w, b, stride=1, padding=((0, 0), (0, 0))):
    xp = _pad(x, padding)
    return fwd(xp, w, b, stride, 0)

def backward(dy, x, w, b, stride=1, padding=((0, 0), (0, 0))):
    xp = _pad(x, padding)
    dxp, dw, db = bwd(dy, xp, w, stride, 0)
    (t, _), (l, _) = padding
    return dxp[:, :, t:t + x.shape[2], l:l + x.shape[3]], dw, db
