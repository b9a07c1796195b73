import numpy as np
from conv_common import fwd, bwd

def forward(x, w, b, *, stride, padding, mode):   # `mode` is nothing convgrad knows
    return fwd(x, w, b, stride[0], padding[0])

def backward(dy, x, w, b, *, stride, padding):
    return bwd(dy, x, w, stride[0], padding[0])
