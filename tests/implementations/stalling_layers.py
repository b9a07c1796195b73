"""A course-style conv layer (conv_forward(x, w, b, conv_param) -> (out, cache), then
conv_backward(dout, cache)), and the ways such layers stall or end the process they run in:

- conv_backward_synced waits for the gradient all-reduce of a distributed training script, which
  a plain call never starts: it hangs in every backward.
- conv_forward_warm_start waits for a background warm-up whenever x, w and b all change at once
  (a new batch after a weight update, as the second call is); nothing ever starts it.
- conv_forward_pinned copies a non-contiguous x into pinned memory and polls for the copy, which
  only a C-contiguous x ever completes: it hangs on other memory layouts.
- conv_forward_transformed caches its kernels transformed per weight tensor under a lock the
  first transform never releases: the first change of weights (dK's finite differences) waits.
- conv_backward_planned builds a col2im plan per padding under the same mistake: the second
  padding it meets (another layer's) waits forever.
- conv_backward_float32_kernel ends the process with os._exit when dout is not float32, as a
  native kernel's abort does, instead of raising.
- conv_backward_batch_mean_db is wrong without stalling: db averaged over the batch.
"""

import os
import threading
import time

import numpy as np


def conv_forward(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    F, _, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    H_out = (x_pad.shape[2] - HH) // stride + 1
    W_out = (x_pad.shape[3] - WW) // stride + 1
    out = np.zeros((x.shape[0], F, H_out, W_out))
    for i in range(HH):
        for j in range(WW):
            patch = x_pad[:, :, i : i + stride * (H_out - 1) + 1 : stride, j : j + stride * (W_out - 1) + 1 : stride]
            out += np.einsum("nchw,fc->nfhw", patch, w[:, :, i, j])
    out += b.reshape(1, F, 1, 1)
    return out, (x, w, b, conv_param)


def conv_backward(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param["stride"], conv_param["pad"]
    F, _, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    H_out, W_out = dout.shape[2:]
    dx_pad = np.zeros_like(x_pad, dtype=np.float64)
    dw = np.zeros(w.shape)
    for i in range(HH):
        for j in range(WW):
            rows = slice(i, i + stride * (H_out - 1) + 1, stride)
            cols = slice(j, j + stride * (W_out - 1) + 1, stride)
            dw[:, :, i, j] = np.einsum("nfhw,nchw->fc", dout, x_pad[:, :, rows, cols])
            dx_pad[:, :, rows, cols] += np.einsum("nfhw,fc->nchw", dout, w[:, :, i, j])
    db = dout.sum(axis=(0, 2, 3))
    dx = dx_pad[:, :, pad : pad + x.shape[2], pad : pad + x.shape[3]]
    return dx, dw, db


_GRADIENTS_REDUCED = threading.Event()  # set by the training script's all-reduce hook


def conv_backward_synced(dout, cache):
    dx, dw, db = conv_backward(dout, cache)
    _GRADIENTS_REDUCED.wait()  # until every worker has its share of dw
    return dx, dw, db


_WARM = threading.Event()  # set by the warm-up thread the training script starts
_last_call = {}


def conv_forward_warm_start(x, w, b, conv_param):
    seen = _last_call.get("tensors")
    if seen is not None and all(not np.array_equal(new, old) for new, old in zip((x, w, b), seen)):
        _WARM.wait()  # a new batch with new weights: wait for the warm-up of the next step
    _last_call["tensors"] = (x.copy(), w.copy(), b.copy())
    return conv_forward(x, w, b, conv_param)


def conv_forward_pinned(x, w, b, conv_param):
    if not x.flags.c_contiguous:
        copied = False  # the pinned copy's completion flag, which the driver never sets for a strided source
        while not copied:
            time.sleep(0.01)
    return conv_forward(x, w, b, conv_param)


_KERNELS = {}
_KERNEL_LOCK = threading.Lock()


def conv_forward_transformed(x, w, b, conv_param):
    key = w.tobytes()
    if key not in _KERNELS:
        _KERNEL_LOCK.acquire()  # released by nobody: a `with` block was meant
        _KERNELS.clear()
        _KERNELS[key] = w[:, :, ::-1, ::-1].copy()  # the transform (here a flip) of the latest weights
    return conv_forward(x, w, b, conv_param)


_PLANS = {}
_PLAN_LOCK = threading.Lock()


def conv_backward_planned(dout, cache):
    pad = cache[3]["pad"]
    if pad not in _PLANS:
        _PLAN_LOCK.acquire()  # released by nobody: a `with` block was meant
        _PLANS[pad] = np.pad(np.ones(cache[0].shape[2:]), pad)  # the col2im scatter mask
    return conv_backward(dout, cache)


def conv_backward_float32_kernel(dout, cache):
    if dout.dtype != np.float32:
        os._exit(70)  # the native kernel's abort: no exception, no traceback
    return conv_backward(dout, cache)


def conv_backward_batch_mean_db(dout, cache):
    dx, dw, _ = conv_backward(dout, cache)
    return dx, dw, dout.sum(axis=(0, 2, 3)) / dout.shape[0]
