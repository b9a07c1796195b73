"""torch conv layers whose first-order gradients are all right, each correct one next to a mistake
in its second derivatives (the backward differentiated again) or in its forward-mode derivative.

Loaded only by tests that have torch: this file imports it. Every layer is 2-D: NCHW input, OIHW
weight, a bias of shape (F,), and stride, padding, dilation and groups as ints or pairs.

- `TwiceDifferentiable`: an autograd.Function, forward(ctx, x, weight, bias, ...), whose backward
  uses torch ops on the saved tensors, with a jvp. Right at second order and in forward mode.
- `DetachedWeight`: backward takes dX from weight.detach(): dX no longer depends on the weight.
- `DetachedInput`: backward takes dW from x.detach(): dW no longer depends on the input.
- `NumpyBackward`: backward computes dX, dW and db in NumPy: they carry no history at all.
- `OnceDifferentiable`: backward is marked once_differentiable: a second derivative raises.
- `JvpForgetsWeight`: jvp leaves out the weight's tangent: forward mode misses conv(x, dW).
- `NoJvp`: a twice-differentiable Function with no jvp: forward mode raises.
- `SetupContextConv`: a new-style Function (forward without ctx, setup_context saving what
  backward and jvp need). Right at second order and in forward mode. `SetupContextDetachedWeight`
  takes dX from a detached weight, as `DetachedWeight` does.
- `FunctionModule`: a module class holding weight and bias as parameters, calling
  `TwiceDifferentiable`. `DetachedWeightModule` calls `DetachedWeight` instead.
  `correct_instance` and `detached_weight_instance` are float64 instances of the two, 3 to 4
  channels, 3x3, padding 1.
- `GradInputGradFunction`: backward computes dX through a second Function, `_TransposedConv`,
  whose own backward flips its weight gradient in both spatial axes, as if the transposed conv's
  flipped kernel had to be flipped back. dX is right; its derivative with respect to the weight is
  not.
- `GradInputTiedToInput`: dX passes through a Function whose backward also hands x a gradient: the
  double backward says dX depends on x, which a convolution's never does.
- `GradInputGradDoubled`: dX passes through a Function whose backward doubles what flows back: every
  derivative of dX is twice what it is.
- `JvpDoubled`: jvp returns twice the tangent.
- `NoGradWeightGradient`: backward computes dW under torch.no_grad(), dX and db with history.
- `JvpScalesTangentInPlace`: jvp doubles the tangents it is handed in place, then uses them.
- `ElifDoubleBackward`: dX and dW come from one Function whose backward takes `elif` where it needs
  `if`: right for one cotangent at a time, wrong when both arrive (a penalty on x and w).
- `RecordedPathWrong`: when recorded for differentiation (create_graph=True), backward takes another
  path, whose db is wrong for batches of more than one image.
- `DoubleBackwardRaises`, `...NaN`, `...WrongShape`, `...WritesWeight`: the backward of dX raises,
  returns NaN, a wrong shape, or writes into the weight; `JvpRaises`, `JvpWrongShape`, `JvpNaN` the same
  for the jvp.
- `AccumulatesWeightGradient`: dW adds up over calls (first call right): the call protocol fails.
- `JvpFromDifferencedForward`: jvp as conv(x + x_t, w + w_t) - conv(x, w): right along one tensor at
  a time, a cross term when x and w move together.
- `ViewsGradOutput`: right, and stateless, but its backward takes a view of dy: other memory
  layouts fail, which says nothing against its derivatives.
- `JvpAbsTangent`: jvp takes the absolute value of x's tangent: right along tangents of ones only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CONVGRAD = {"spatial_dims": [2]}  # 2-D convolutions only


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _input_gradient(x_shape, weight, grad_output, settings):
    return torch.nn.grad.conv2d_input(x_shape, weight, grad_output, *settings)


def _weight_gradient(x, weight_shape, grad_output, settings):
    return torch.nn.grad.conv2d_weight(x, weight_shape, grad_output, *settings)


def _gradients(ctx, grad_output, x, weight, x_for_dw, weight_for_dx):
    """dX, dW and db with torch ops, None where the input needs no gradient."""
    needs = ctx.needs_input_grad
    grad_input = _input_gradient(x.shape, weight_for_dx, grad_output, ctx.settings) if needs[0] else None
    grad_weight = _weight_gradient(x_for_dw, weight.shape, grad_output, ctx.settings) if needs[1] else None
    grad_bias = grad_output.sum((0, 2, 3)) if needs[2] else None
    return grad_input, grad_weight, grad_bias, None, None, None, None


def _tangent(x, weight, x_t, w_t, b_t, settings, output_shape):
    """The tangent of conv2d(x, weight) + bias: conv(x_t, w) + conv(x, w_t) + b_t."""
    out = torch.zeros(output_shape, dtype=x.dtype, device=x.device)
    if x_t is not None:
        out = out + F.conv2d(x_t, weight, None, *settings)
    if w_t is not None:
        out = out + F.conv2d(x, w_t, None, *settings)
    if b_t is not None:
        out = out + b_t.reshape(1, -1, 1, 1)
    return out


class TwiceDifferentiable(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride=1, padding=0, dilation=1, groups=1):
        ctx.save_for_backward(x, weight)
        ctx.save_for_forward(x, weight)
        ctx.settings = (stride, padding, dilation, groups)
        out = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        ctx.output_shape = out.shape
        return out

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        return _gradients(ctx, grad_output, x, weight, x, weight)

    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, *setting_tangents):
        x, weight = ctx.saved_tensors
        return _tangent(x, weight, x_t, w_t, b_t, ctx.settings, ctx.output_shape)


class DetachedWeight(TwiceDifferentiable):
    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        return _gradients(ctx, grad_output, x, weight, x, weight.detach())  # dX sees a constant weight


class DetachedInput(TwiceDifferentiable):
    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        return _gradients(ctx, grad_output, x, weight, x.detach(), weight)  # dW sees a constant input


def _numpy_gradients(x, weight, grad_output, stride, padding, dilation, groups):
    """dX, dW and db of a grouped, strided, dilated cross-correlation, one kernel offset at a time."""
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(padding), _pair(dilation)
    n, c, h, w = x.shape
    f, cg, kh, kw = weight.shape
    fg = f // groups
    ho, wo = grad_output.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    grad_padded = np.zeros_like(padded)
    grad_weight = np.zeros_like(weight)
    for i in range(kh):
        rows = slice(i * dh, i * dh + sh * (ho - 1) + 1, sh)
        for j in range(kw):
            cols = slice(j * dw, j * dw + sw * (wo - 1) + 1, sw)
            for g in range(groups):
                fs, cs = slice(g * fg, (g + 1) * fg), slice(g * cg, (g + 1) * cg)
                dy = grad_output[:, fs]
                grad_weight[fs, :, i, j] = np.einsum("nfhw,nchw->fc", dy, padded[:, cs, rows, cols])
                grad_padded[:, cs, rows, cols] += np.einsum("nfhw,fc->nchw", dy, weight[fs, :, i, j])
    grad_input = grad_padded[:, :, ph:ph + h, pw:pw + w]
    return grad_input, grad_weight, grad_output.sum(axis=(0, 2, 3))


class NumpyBackward(TwiceDifferentiable):
    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grads = _numpy_gradients(x.detach().numpy(), weight.detach().numpy(),
                                 grad_output.detach().numpy(), *ctx.settings)
        grad_input, grad_weight, grad_bias = (torch.from_numpy(np.ascontiguousarray(g)) for g in grads)
        needs = ctx.needs_input_grad
        return (grad_input if needs[0] else None, grad_weight if needs[1] else None,
                grad_bias if needs[2] else None, None, None, None, None)


class OnceDifferentiable(TwiceDifferentiable):
    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        return _gradients(ctx, grad_output, x, weight, x, weight)


class JvpForgetsWeight(TwiceDifferentiable):
    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, *setting_tangents):
        x, weight = ctx.saved_tensors
        return _tangent(x, weight, x_t, None, b_t, ctx.settings, ctx.output_shape)  # w_t left out


class NoJvp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride=1, padding=0, dilation=1, groups=1):
        ctx.save_for_backward(x, weight)
        ctx.settings = (stride, padding, dilation, groups)
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        return _gradients(ctx, grad_output, x, weight, x, weight)


class SetupContextConv(torch.autograd.Function):
    @staticmethod
    def forward(x, weight, bias, stride=1, padding=0, dilation=1, groups=1):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, bias, *settings = inputs
        ctx.save_for_backward(x, weight)
        ctx.save_for_forward(x, weight)
        ctx.settings = (tuple(settings) + (1, 0, 1, 1)[len(settings):])
        ctx.output_shape = output.shape

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        return _gradients(ctx, grad_output, x, weight, x, weight)

    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, *setting_tangents):
        x, weight = ctx.saved_tensors
        return _tangent(x, weight, x_t, w_t, b_t, ctx.settings, ctx.output_shape)


class SetupContextDetachedWeight(SetupContextConv):
    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        return _gradients(ctx, grad_output, x, weight, x, weight.detach())  # dX sees a constant weight


class FunctionModule(nn.Module):
    function = TwiceDifferentiable

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True):
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *_pair(kernel_size)))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if bias:
            bound = 1 / math.sqrt(self.weight[0].numel())
            self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))
        else:
            self.bias = None

    def forward(self, x):
        return self.function.apply(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                                   self.groups)


class DetachedWeightModule(FunctionModule):
    function = DetachedWeight


correct_instance = FunctionModule(3, 4, 3, padding=1).double()
detached_weight_instance = DetachedWeightModule(3, 4, 3, padding=1).double()


class _TransposedConv(torch.autograd.Function):
    """dX of a conv as a Function of its own: conv2d_input(x_shape, weight, grad_output)."""

    @staticmethod
    def forward(ctx, grad_output, weight, x_shape, stride=1, padding=0, dilation=1, groups=1):
        ctx.save_for_backward(grad_output, weight)
        ctx.settings = (stride, padding, dilation, groups)
        return torch.nn.grad.conv2d_input(x_shape, weight, grad_output, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad_grad_input):
        grad_output, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_grad_output = F.conv2d(grad_grad_input, weight, None, *ctx.settings) if needs[0] else None
        grad_weight = None
        if needs[1]:
            grad_weight = _weight_gradient(grad_grad_input, weight.shape, grad_output, ctx.settings)
            grad_weight = grad_weight.flip(2, 3)  # the kernel is not flipped in a cross-correlation
        return grad_grad_output, grad_weight, None, None, None, None, None


class GradInputGradFunction(TwiceDifferentiable):
    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_input = _TransposedConv.apply(grad_output, weight, x.shape, *ctx.settings) if needs[0] else None
        grad_weight = _weight_gradient(x, weight.shape, grad_output, ctx.settings) if needs[1] else None
        grad_bias = grad_output.sum((0, 2, 3)) if needs[2] else None
        return grad_input, grad_weight, grad_bias, None, None, None, None


class _TiedToInput(torch.autograd.Function):
    """dX passed through unchanged, its backward claiming a gradient for x too."""

    @staticmethod
    def forward(ctx, grad_input, x):
        ctx.x_shape = x.shape
        return grad_input.view_as(grad_input)

    @staticmethod
    def backward(ctx, grad_grad_input):
        return grad_grad_input, grad_grad_input.sum() * grad_grad_input.new_ones(ctx.x_shape)


class GradInputTiedToInput(TwiceDifferentiable):
    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_input, grad_weight, grad_bias, *rest = _gradients(ctx, grad_output, x, weight, x, weight)
        tied = None if grad_input is None else _TiedToInput.apply(grad_input, x)
        return (tied, grad_weight, grad_bias, *rest)


class _Doubled(torch.autograd.Function):
    """dX passed through unchanged, its backward doubling what flows back."""

    @staticmethod
    def forward(ctx, grad_input):
        return grad_input.view_as(grad_input)

    @staticmethod
    def backward(ctx, grad_grad_input):
        return 2 * grad_grad_input


class GradInputGradDoubled(TwiceDifferentiable):
    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_input, *rest = _gradients(ctx, grad_output, x, weight, x, weight)
        return (None if grad_input is None else _Doubled.apply(grad_input), *rest)


class JvpDoubled(TwiceDifferentiable):
    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, *setting_tangents):
        x, weight = ctx.saved_tensors
        return 2 * _tangent(x, weight, x_t, w_t, b_t, ctx.settings, ctx.output_shape)


class JvpAbsTangent(TwiceDifferentiable):
    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, *setting_tangents):
        x, weight = ctx.saved_tensors
        x_t = None if x_t is None else x_t.abs()  # right for tangents of ones, wrong for any other
        return _tangent(x, weight, x_t, w_t, b_t, ctx.settings, ctx.output_shape)


class NoGradWeightGradient(TwiceDifferentiable):
    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_input, _, grad_bias, *rest = _gradients(ctx, grad_output, x, weight, x, weight)
        with torch.no_grad():
            grad_weight = _weight_gradient(x, weight.shape, grad_output, ctx.settings)
        return (grad_input, grad_weight, grad_bias, *rest)


class JvpScalesTangentInPlace(TwiceDifferentiable):
    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, *setting_tangents):
        for tangent in (x_t, w_t, b_t):
            if tangent is not None:
                tangent.mul_(2)  # into the caller's tangent, which it then reads as if it were the one given
        return TwiceDifferentiable.jvp(ctx, x_t, w_t, b_t, *setting_tangents)


class _BothGradients(torch.autograd.Function):
    """dX and dW as one Function; its backward takes `elif` where it needs `if`."""

    @staticmethod
    def forward(ctx, grad_output, x, weight, settings):
        ctx.save_for_backward(grad_output, x, weight)
        ctx.settings = settings
        ctx.set_materialize_grads(False)
        return (_input_gradient(x.shape, weight, grad_output, settings),
                _weight_gradient(x, weight.shape, grad_output, settings))

    @staticmethod
    def backward(ctx, grad_grad_input, grad_grad_weight):
        grad_output, x, weight = ctx.saved_tensors
        settings = ctx.settings
        grad_grad_output = grad_x = grad_w = None
        if grad_grad_input is not None:
            grad_grad_output = F.conv2d(grad_grad_input, weight, None, *settings)
            grad_w = _weight_gradient(grad_grad_input, weight.shape, grad_output, settings)
        elif grad_grad_weight is not None:  # both can arrive: the terms of dW's cotangent are dropped then
            grad_grad_output = F.conv2d(x, grad_grad_weight, None, *settings)
            grad_x = _input_gradient(x.shape, grad_grad_weight, grad_output, settings)
        return grad_grad_output, grad_x, grad_w, None


class ElifDoubleBackward(TwiceDifferentiable):
    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_input, grad_weight = _BothGradients.apply(grad_output, x, weight, ctx.settings)
        return grad_input, grad_weight, grad_output.sum((0, 2, 3)), None, None, None, None


class RecordedPathWrong(TwiceDifferentiable):
    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_input, grad_weight, grad_bias, *rest = _gradients(ctx, grad_output, x, weight, x, weight)
        if torch.is_grad_enabled() and grad_bias is not None:  # recorded (create_graph=True): another path
            grad_bias = grad_output.mean((0, 2, 3)) * grad_output.shape[0]
        return (grad_input, grad_weight, grad_bias, *rest)


class _MisbehavingTransposedConv(torch.autograd.Function):
    """dX as a Function whose own backward misbehaves as `how` says (set by the subclasses below)."""

    how = "raise"

    @staticmethod
    def forward(ctx, grad_output, weight, x_shape, settings):
        ctx.save_for_backward(grad_output, weight)
        ctx.settings = settings
        return _input_gradient(x_shape, weight, grad_output, settings)

    @classmethod
    def _backward(cls, ctx, grad_grad_input):
        grad_output, weight = ctx.saved_tensors
        grad_grad_output = F.conv2d(grad_grad_input, weight, None, *ctx.settings)
        if cls.how == "raise":
            raise ValueError("double backward not implemented for this padding")
        if cls.how == "nan":
            grad_grad_output = grad_grad_output * float("nan")
        if cls.how == "shape":
            grad_grad_output = grad_grad_output[:, :, :-1]
        if cls.how == "writes":
            weight.data.mul_(2)
        return grad_grad_output, _weight_gradient(grad_grad_input, weight.shape, grad_output, ctx.settings), None, None


def _misbehaving(how):
    inner = type(f"_Transposed_{how}", (_MisbehavingTransposedConv,), {"how": how})
    inner.backward = staticmethod(lambda ctx, gg: inner._backward(ctx, gg))

    class Layer(TwiceDifferentiable):
        @staticmethod
        def backward(ctx, grad_output):
            x, weight = ctx.saved_tensors
            grad_input = inner.apply(grad_output, weight, x.shape, ctx.settings)
            rest = _gradients(ctx, grad_output, x, weight, x, weight)[1:]
            return (grad_input, *rest)

    return Layer


DoubleBackwardRaises = _misbehaving("raise")
DoubleBackwardNaN = _misbehaving("nan")
DoubleBackwardWrongShape = _misbehaving("shape")
DoubleBackwardWritesWeight = _misbehaving("writes")


class JvpRaises(TwiceDifferentiable):
    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, *setting_tangents):
        raise RuntimeError("jvp: unsupported")


class JvpWrongShape(TwiceDifferentiable):
    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, *setting_tangents):
        return TwiceDifferentiable.jvp(ctx, x_t, w_t, b_t, *setting_tangents)[:, :, 1:]


class JvpNaN(TwiceDifferentiable):
    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, *setting_tangents):
        return TwiceDifferentiable.jvp(ctx, x_t, w_t, b_t, *setting_tangents) * float("nan")


class AccumulatesWeightGradient(TwiceDifferentiable):
    total = None  # dW of every call so far: state kept between calls

    @staticmethod
    def backward(ctx, grad_output):
        x, weight = ctx.saved_tensors
        grad_input, grad_weight, *rest = _gradients(ctx, grad_output, x, weight, x, weight)
        cls = AccumulatesWeightGradient
        if grad_weight is not None:
            cls.total = grad_weight if cls.total is None or cls.total.shape != grad_weight.shape else cls.total + grad_weight
            grad_weight = cls.total
        return (grad_input, grad_weight, *rest)


class JvpFromDifferencedForward(TwiceDifferentiable):
    @staticmethod
    def jvp(ctx, x_t, w_t, b_t, *setting_tangents):
        x, weight = ctx.saved_tensors  # conv(x + x_t, w + w_t) - conv(x, w): exact for one tangent alone
        return F.conv2d(x + x_t, weight + w_t, b_t, *ctx.settings) - F.conv2d(x, weight, None, *ctx.settings)


class ViewsGradOutput(TwiceDifferentiable):
    @staticmethod
    def backward(ctx, grad_output):
        grad_output.view(-1)  # a view needs contiguous memory: fails on the other layouts alone
        return TwiceDifferentiable.backward(ctx, grad_output)
