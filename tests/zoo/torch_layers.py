"""torch layers as people write them, each correct one next to the mistake made in it.

Loaded only by tests that have torch (`pytest.importorskip("torch")` first): this file imports it.

- `conv`: an nn.Conv2d instance, built for one layer.
- `TextbookConvFunction`: a torch.autograd.Function whose backward computes dX the textbook way
  (a full convolution of dY with the kernels rotated 180 degrees); stride 1 only, no groups.
  `KernelNotFlippedFunction` forgets the rotation.
- `OwnConv`: an nn.Module class with its own parameters (in_ch, out_ch, kernel_size, stride,
  padding), built per case, 2-D only. `HookScaledConv` is the same with a backward hook that doubles dX.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

conv = torch.nn.Conv2d(3, 5, kernel_size=3, stride=2, padding=1)


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _textbook(name, rotated):
    def forward(ctx, x, w, b, padding=0):
        ctx.save_for_backward(x, w)
        ctx.padding = _pair(padding)
        return F.conv2d(x, w, b, padding=ctx.padding)

    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        (ph, pw), (kh, kw) = ctx.padding, w.shape[-2:]
        full = F.conv2d(dy, rotated(w).transpose(0, 1), padding=(kh - 1, kw - 1))
        dx = full[..., ph:ph + x.shape[-2], pw:pw + x.shape[-1]]
        dw = F.conv2d(x.transpose(0, 1), dy.transpose(0, 1), padding=(ph, pw)).transpose(0, 1)
        return dx, dw, dy.sum((0, 2, 3)), None

    return type(name, (torch.autograd.Function,), {"forward": staticmethod(forward), "backward": staticmethod(backward)})


TextbookConvFunction = _textbook("TextbookConvFunction", rotated=lambda w: w.flip(-2, -1))
KernelNotFlippedFunction = _textbook("KernelNotFlippedFunction", rotated=lambda w: w)  # not rotated by 180 degrees


class OwnConv(torch.nn.Module):
    spatial_dims = (2,)  # F.conv2d: the 1-D and 3-D cases are skipped, not errors

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, padding=0):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = torch.nn.Parameter(torch.randn(out_ch, in_ch, *_pair(kernel_size)) * 0.1)
        self.bias = torch.nn.Parameter(torch.zeros(out_ch))

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)


class HookScaledConv(OwnConv):
    def __init__(self, in_ch, out_ch, kernel_size, stride=1, padding=0):
        super().__init__(in_ch, out_ch, kernel_size, stride, padding)
        self.register_full_backward_hook(lambda module, grad_in, grad_out: (grad_in[0] * 2,))
