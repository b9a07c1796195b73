"""torch layers in the shapes real model code gives them, each correct one next to a mistake made in it.

Loaded only by tests that have torch: this file imports it.

- `ConvNoBiasFunction`: a bias-free autograd.Function, forward(ctx, x, weight, stride, padding), as
  used before a batch norm; 2-D only (F.conv2d). `ConvNoBiasBatchMeanFunction` divides dW by the
  batch size, as if the loss were averaged inside the layer.
- `Conv2dFunction`: a new-style Function (forward without ctx, setup_context saving what backward
  needs), declared 2-D. `Conv2dFunctionMeanBias` takes the mean of dY over the positions for db
  instead of the sum.
- `CountingConv2d`: an nn.Conv2d subclass passing *args and **kwargs on, counting its calls in a
  buffer. `NoDilationConv2d` rewrites forward with F.conv2d and forgets the dilation.
- `ConvNoBias`: a bias-free module class (no bias parameter at all) around `ConvNoBiasFunction`,
  square kernels only; `ConvNoBiasBatchMean` uses the wrong Function.
- `HandPaddedConv`: a module class for any rank, declared per_axis, that pads by hand the last two
  axes only: a 3-D case's output is too shallow.
- `FlagConv`: a module class taking bias=True/False. `UnregisteredBiasConv` keeps its bias as a
  plain tensor, not an nn.Parameter: asked for a bias, it has none that trains.
- `ConvBlock`: a wrapper holding nn.Conv2d as self.conv, with a buffer. `CheckpointedConv` runs its
  conv through torch.utils.checkpoint. `FunctionBlock` holds a submodule with the parameters and
  calls `Conv2dFunction`; `MeanBiasBlock` calls the wrong one under a checkpoint. `ConvPair` holds two
  convs, which no single-conv check can take apart.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class ConvNoBiasFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, stride=1, padding=0):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, stride, padding)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        dx = torch.nn.grad.conv2d_input(x.shape, weight, grad_out, ctx.stride, ctx.padding)
        dw = torch.nn.grad.conv2d_weight(x, weight.shape, grad_out, ctx.stride, ctx.padding)
        return dx, dw, None, None


class ConvNoBiasBatchMeanFunction(ConvNoBiasFunction):
    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        dx = torch.nn.grad.conv2d_input(x.shape, weight, grad_out, ctx.stride, ctx.padding)
        dw = torch.nn.grad.conv2d_weight(x, weight.shape, grad_out, ctx.stride, ctx.padding)
        return dx, dw / x.shape[0], None, None  # the loss's mean does not belong here


class Conv2dFunction(torch.autograd.Function):
    spatial_dims = (2,)  # F.conv2d

    @staticmethod
    def forward(input, weight, bias, stride=1, padding=0, dilation=1, groups=1):
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        input, weight, bias, *settings = inputs
        ctx.save_for_backward(input, weight)
        ctx.settings = settings

    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        grad_input = torch.nn.grad.conv2d_input(input.shape, weight, grad_output, *ctx.settings)
        grad_weight = torch.nn.grad.conv2d_weight(input, weight.shape, grad_output, *ctx.settings)
        return grad_input, grad_weight, grad_output.sum((0, 2, 3)), None, None, None, None


class Conv2dFunctionMeanBias(Conv2dFunction):
    @staticmethod
    def backward(ctx, grad_output):
        input, weight = ctx.saved_tensors
        grad_input = torch.nn.grad.conv2d_input(input.shape, weight, grad_output, *ctx.settings)
        grad_weight = torch.nn.grad.conv2d_weight(input, weight.shape, grad_output, *ctx.settings)
        return grad_input, grad_weight, grad_output.mean((2, 3)).sum(0), None, None, None, None


class CountingConv2d(nn.Conv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        self.calls += 1
        return super().forward(x)


class NoDilationConv2d(nn.Conv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, groups=self.groups)


class ConvNoBias(nn.Module):
    function = ConvNoBiasFunction

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def forward(self, x):
        return self.function.apply(x, self.weight, self.stride, self.padding)


class ConvNoBiasBatchMean(ConvNoBias):
    function = ConvNoBiasBatchMeanFunction


class HandPaddedConv(nn.Module):
    """Any rank, the kernel size per axis; pads by hand before an unpadded conv, and only the last
    two axes: a 3-D input's depth is never padded."""

    CONVGRAD = {"per_axis": True}

    def __init__(self, in_channels, out_channels, kernel_size, padding):
        super().__init__()
        self.padding = padding
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, *kernel_size) * 0.1)
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(self, x):
        conv = (F.conv1d, F.conv2d, F.conv3d)[x.dim() - 3]
        widths = [side for p in reversed(self.padding[-2:]) for side in (p, p)]
        return conv(F.pad(x, widths[:2 * (x.dim() - 2)]), self.weight, self.bias)


class FlagConv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.1)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class UnregisteredBiasConv(FlagConv):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, bias=True):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bias = torch.zeros(out_channels) if bias else None  # a plain tensor: no optimiser sees it


class ConvBlock(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        if self.training:
            self.seen += x.shape[0]
        return self.conv(x)


class CheckpointedConv(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups)

    def forward(self, x):
        return checkpoint(self.conv, x, use_reentrant=False)  # recomputed in backward: memory for time


class _Parameters(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.1)
        self.bias = nn.Parameter(torch.zeros(out_channels))


class FunctionBlock(nn.Module):
    function = Conv2dFunction

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.params = _Parameters(in_channels, out_channels, kernel_size)

    def forward(self, x):
        return self.function.apply(x, self.params.weight, self.params.bias, self.stride, self.padding)


class MeanBiasBlock(FunctionBlock):
    function = Conv2dFunctionMeanBias

    def forward(self, x):
        return checkpoint(super().forward, x, use_reentrant=False)


class ConvPair(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size, 1, kernel_size // 2)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))
