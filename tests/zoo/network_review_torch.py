"""A second set of torch conv layers right in a unit test and wrong in a network (2-D only), written
independently of tests/zoo/network_torch.py; each docstring says what goes wrong and where.
Loaded only by tests that have torch: this file imports it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input, conv2d_weight


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


class _ConvWithPrepared(torch.autograd.Function):
    """y = conv(x, prepared) + b; grad_x from `prepared`, grad_weight from x (prepared is a detached
    copy of weight in the layout the kernels like)."""

    @staticmethod
    def forward(ctx, x, weight, bias, prepared, stride, padding, dilation, groups):
        ctx.save_for_backward(x, prepared)
        ctx.conf = (stride, padding, dilation, groups)
        ctx.w_shape = weight.shape
        ctx.has_bias = bias is not None
        return F.conv2d(x, prepared, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, gy):
        x, prepared = ctx.saved_tensors
        s, p, d, g = ctx.conf
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = conv2d_input(x.shape, prepared, gy, s, p, d, g)
        if ctx.needs_input_grad[1]:
            gw = conv2d_weight(x, ctx.w_shape, gy, s, p, d, g)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy.sum(dim=(0, 2, 3))
        return gx, gw, gb, None, None, None, None, None


class _Base(torch.nn.Module):
    spatial_dims = (2,)

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__()
        k = _pair(kernel_size)
        self.stride, self.padding, self.dilation, self.groups = _pair(stride), _pair(padding), _pair(dilation), groups
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels // groups, *k) * 0.1)
        self.bias = torch.nn.Parameter(torch.zeros(out_channels)) if bias else None

    def conf(self):
        return self.stride, self.padding, self.dilation, self.groups

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, *self.conf())


class EvalWeightSnapshot(_Base):
    """WRONG. In eval mode it runs a 'deploy' path whose weight (made contiguous/channels-last once
    for inference) is built on the first eval forward and never refreshed: validation after
    epoch 2 uses epoch 1's weights. The scenario calls eval once."""

    def forward(self, x):
        if self.training:
            return F.conv2d(x, self.weight, self.bias, *self.conf())
        if getattr(self, "_deploy", None) is None:
            self._deploy = (self.weight.detach().clone(), None if self.bias is None else self.bias.detach().clone())
        w, b = self._deploy
        return F.conv2d(x, w, b, *self.conf())


class VersionKeyedWeightCache(_Base):
    """WRONG. Caches a prepared (detached, contiguous) copy of the weight, refreshed when the
    weight's (data_ptr, _version) changes. Optimisers under no_grad (torch.optim, copy_) bump
    _version, so the cache follows them; a hand-written loop that updates `p.data` in place
    (p.data.add_(-lr * p.grad), or ema via .data) does not bump _version: stale O and dX."""

    def _prepared(self):
        key = (self.weight.data_ptr(), self.weight._version)
        if getattr(self, "_key", None) != key:
            self._key = key
            self._prep = self.weight.detach().contiguous().clone()
        return self._prep

    def forward(self, x):
        return _ConvWithPrepared.apply(x, self.weight, self.bias, self._prepared(), *self.conf())


class DataPtrKeyedWeightCache(VersionKeyedWeightCache):
    """WRONG (control). The same cache keyed by data_ptr only: any in-place update is missed."""

    def _prepared(self):
        key = self.weight.data_ptr()
        if getattr(self, "_key", None) != key:
            self._key = key
            self._prep = self.weight.detach().contiguous().clone()
        return self._prep


class FrozenWeightConstantFolded(_Base):
    """WRONG. A frozen weight (requires_grad False) is treated as a constant: a prepared copy is
    taken on the first frozen call and reused. An EMA teacher / target network, whose parameters
    are frozen but updated in place every step (ema.mul_(d).add_(p, alpha=1-d)), keeps its first
    weights."""

    def forward(self, x):
        if self.weight.requires_grad:
            self._frozen = None
            return F.conv2d(x, self.weight, self.bias, *self.conf())
        if getattr(self, "_frozen", None) is None:
            self._frozen = self.weight.detach().clone()
        return F.conv2d(x, self._frozen, self.bias, *self.conf())


class EvalModeDetachedWeight(_Base):
    """WRONG. Eval mode is assumed to be inference: the weight is detached ("no autograd
    overhead"). Fine-tuning with model.eval() (BatchNorm statistics frozen) while gradients are
    still taken gets no weight gradient at all. The scenario runs eval only under no_grad."""

    def forward(self, x):
        w = self.weight if self.training else self.weight.detach()
        return F.conv2d(x, w, self.bias, *self.conf())


class FrozenInputDividesByBatch(torch.autograd.Function):
    """WRONG (control). A Function whose weight gradient, when x needs no gradient (a network's
    first layer), comes from a separate path that divides by the batch size (copied from a
    mean-reduced loss)."""

    spatial_dims = (2,)

    @staticmethod
    def forward(ctx, x, weight, bias, stride=1, padding=0, dilation=1, groups=1):
        ctx.save_for_backward(x, weight)
        ctx.conf = (_pair(stride), _pair(padding), _pair(dilation), groups)
        ctx.has_bias = bias is not None
        return F.conv2d(x, weight, bias, *ctx.conf)

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        s, p, d, g = ctx.conf
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = conv2d_input(x.shape, weight, gy, s, p, d, g)
            if ctx.needs_input_grad[1]:
                gw = conv2d_weight(x, weight.shape, gy, s, p, d, g)
        elif ctx.needs_input_grad[1]:
            gw = conv2d_weight(x, weight.shape, gy, s, p, d, g) / x.shape[0]  # BUG: / batch
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = gy.sum(dim=(0, 2, 3))
        return gx, gw, gb, None, None, None, None


# ---- correct ------------------------------------------------------------------------------------


class ValueCheckedWeightCache(VersionKeyedWeightCache):
    """CORRECT. The prepared copy is checked against the weight's values (torch.equal) on every
    call: any update, through .data or not, rebuilds it."""

    def _prepared(self):
        prep = getattr(self, "_prep", None)
        if prep is None or prep.shape != self.weight.shape or prep.dtype != self.weight.dtype or not torch.equal(prep, self.weight.detach()):
            self._prep = self.weight.detach().contiguous().clone()
        return self._prep


class Float64InternalFunction(torch.autograd.Function):
    """CORRECT. Computes forward and backward in float64 whatever the input dtype and casts back;
    gradients gated on needs_input_grad."""

    spatial_dims = (2,)

    @staticmethod
    def forward(ctx, x, weight, bias, stride=1, padding=0, dilation=1, groups=1):
        ctx.save_for_backward(x, weight)
        ctx.conf = (_pair(stride), _pair(padding), _pair(dilation), groups)
        ctx.has_bias = bias is not None
        y = F.conv2d(x.double(), weight.double(), None if bias is None else bias.double(), *ctx.conf)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, gy):
        x, weight = ctx.saved_tensors
        s, p, d, g = ctx.conf
        g64 = gy.double()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = conv2d_input(x.shape, weight.double(), g64, s, p, d, g).to(x.dtype)
        if ctx.needs_input_grad[1]:
            gw = conv2d_weight(x.double(), weight.shape, g64, s, p, d, g).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g64.sum(dim=(0, 2, 3)).to(gy.dtype)
        return gx, gw, gb, None, None, None, None
