"""torch conv layers that are right in a unit test and wrong in a network, each next to its correct twin.

Loaded only by tests that have torch: this file imports it. 2-D only (`spatial_dims = (2,)`).

- `BiasFlagGatesWeightGradient`: a torch.autograd.Function (x, weight, bias, stride=1, padding=0)
  whose hand-written backward computes grad_weight only if ctx.needs_input_grad[2], the bias's
  flag (a typo for [1]): with a frozen bias (or no bias), weight gets no gradient at all.
  Twin: `NeedsInputGradFlags`, which gates each gradient on its own flag.
- `TrainingPathBiasTwice`: an nn.Module (in_channels, out_channels, kernel_size, stride=1,
  padding=0, bias=True) whose training path (self.training and grad enabled) runs a fused
  conv + bias autograd.Function that adds the bias twice (F.conv2d already added it, the epilogue
  adds it again); its backward is right, and so is the no_grad / eval path. Twin:
  `TrainingPathBiasOnce`, whose fused function adds the bias once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.grad import conv2d_input, conv2d_weight


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _each_gated_on_its_own_flag(ctx, grad_output):
    """The correct backward of a conv saved as (x, weight), with stride and padding on ctx."""
    x, weight = ctx.saved_tensors
    grad_x = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        grad_x = conv2d_input(x.shape, weight, grad_output, stride=ctx.stride, padding=ctx.padding)
    if ctx.needs_input_grad[1]:
        grad_weight = conv2d_weight(x, weight.shape, grad_output, stride=ctx.stride, padding=ctx.padding)
    if ctx.needs_input_grad[2]:
        grad_bias = grad_output.sum(dim=(0, 2, 3))
    return grad_x, grad_weight, grad_bias, None, None


class BiasFlagGatesWeightGradient(torch.autograd.Function):
    spatial_dims = (2,)

    @staticmethod
    def forward(ctx, x, weight, bias, stride=1, padding=0):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = _pair(stride), _pair(padding)
        return F.conv2d(x, weight, bias, stride=ctx.stride, padding=ctx.padding)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = conv2d_input(x.shape, weight, grad_output, stride=ctx.stride, padding=ctx.padding)
        if ctx.needs_input_grad[2]:  # the bias's flag
            grad_weight = conv2d_weight(x, weight.shape, grad_output, stride=ctx.stride, padding=ctx.padding)
        if ctx.needs_input_grad[2]:
            grad_bias = grad_output.sum(dim=(0, 2, 3))
        return grad_x, grad_weight, grad_bias, None, None


class NeedsInputGradFlags(BiasFlagGatesWeightGradient):
    """Correct twin: grad_weight is gated on the weight's own flag, needs_input_grad[1]."""

    backward = staticmethod(_each_gated_on_its_own_flag)


class _FusedConvBias(torch.autograd.Function):
    """conv2d with the bias added in a separate epilogue, one node for autograd."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        y = F.conv2d(x, weight, None, stride=stride, padding=padding)
        return y + bias.view(1, -1, 1, 1)

    backward = staticmethod(_each_gated_on_its_own_flag)


class _FusedConvBiasTwice(_FusedConvBias):
    """The same with the bias passed to conv2d as well: the epilogue adds it a second time."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        y = F.conv2d(x, weight, bias, stride=stride, padding=padding)
        return y + bias.view(1, -1, 1, 1)


class TrainingPathBiasOnce(torch.nn.Module):
    """Correct: in training with grad enabled, the fused conv + bias function; else F.conv2d."""

    spatial_dims = (2,)
    fused = _FusedConvBias

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.stride, self.padding = _pair(stride), _pair(padding)
        kernel = _pair(kernel_size)
        fan_in = in_channels * kernel[0] * kernel[1]
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, *kernel) * (2.0 / fan_in) ** 0.5)
        self.bias = torch.nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x):
        if self.training and torch.is_grad_enabled() and self.bias is not None:
            return self.fused.apply(x, self.weight, self.bias, self.stride, self.padding)
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)


class TrainingPathBiasTwice(TrainingPathBiasOnce):
    """The fused training path adds the bias twice; eval and no_grad outputs are right, and so are
    the gradients autograd takes through it."""

    fused = _FusedConvBiasTwice
