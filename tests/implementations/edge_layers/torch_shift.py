import torch
import torch.nn.functional as F

class MyConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, shift, stride=1, padding=0):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, shift, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        dx = torch.nn.grad.conv2d_input(x.shape, weight, dy, stride=ctx.stride, padding=ctx.padding)
        dw = torch.nn.grad.conv2d_weight(x, weight.shape, dy, stride=ctx.stride, padding=ctx.padding)
        dshift = dy.mean(dim=(0, 2, 3))          # WRONG: mean instead of sum
        return dx, dw, dshift, None, None

class MyConv(torch.nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.stride, self.padding = stride, padding
        self.weight = torch.nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size) * 0.1)
        self.shift = torch.nn.Parameter(torch.zeros(out_channels))
    def forward(self, x):
        return MyConvFunction.apply(x, self.weight, self.shift, self.stride, self.padding)
