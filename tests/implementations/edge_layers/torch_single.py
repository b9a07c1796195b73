import torch
import torch.nn.functional as F
CONVGRAD = {"batched": False}

class SingleImageConv(torch.autograd.Function):
    """Takes ONE image (C, H, W), as declared."""
    @staticmethod
    def forward(ctx, x, w, b, stride=1, padding=0):
        ctx.save_for_backward(x, w)
        ctx.s, ctx.p = stride, padding
        return F.conv2d(x[None], w, b, stride=stride, padding=padding)[0]
    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        xg = x[None].detach().requires_grad_()
        wg = w.detach().requires_grad_()
        with torch.enable_grad():
            y = F.conv2d(xg, wg, None, stride=ctx.s, padding=ctx.p)
            dx, dw = torch.autograd.grad(y, (xg, wg), dy[None])
        return dx[0], dw, dy.sum(dim=(1, 2)), None, None
