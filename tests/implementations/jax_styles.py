"""jax layers from a model file written for images: NCHW with OIHW kernels, settings as one int,
each correct one next to a mistake made in it.

Loaded only by tests that have jax: this file imports it. The file declares what its layers
handle, for every layer in it: 2-D only, one int per setting.

- `conv2d`: a jax.custom_vjp conv whose bwd takes the vjp of the forward for dX and dW and sums
  dY for db. `conv2d_first_image_db` sums dY of the first image only for db, as a bwd written for
  one image does.
- `conv2d_no_bias`: a bias-free plain function, differentiated by jax.
"""

from __future__ import annotations

from functools import partial

import jax
from jax import lax

CONVGRAD = {"spatial_dims": [2], "one_int": True}


def _conv2d(x, w, stride, padding):
    return lax.conv_general_dilated(x, w, (stride, stride), [(padding, padding)] * 2,
                                    dimension_numbers=("NCHW", "OIHW", "NCHW"))


def _with_bias_gradient(bias_gradient):
    @partial(jax.custom_vjp, nondiff_argnums=(3, 4))
    def conv(x, w, b, stride, padding):
        return _conv2d(x, w, stride, padding) + b[None, :, None, None]

    def fwd(x, w, b, stride, padding):
        return conv(x, w, b, stride, padding), (x, w)

    def bwd(stride, padding, saved, dy):
        _, pullback = jax.vjp(lambda x, w: _conv2d(x, w, stride, padding), *saved)
        dx, dw = pullback(dy)
        return dx, dw, bias_gradient(dy)

    conv.defvjp(fwd, bwd)
    return conv


conv2d = _with_bias_gradient(lambda dy: dy.sum(axis=(0, 2, 3)))
conv2d_first_image_db = _with_bias_gradient(lambda dy: dy[0].sum(axis=(1, 2)))


def conv2d_no_bias(x, w, stride=1, padding=0):
    return _conv2d(x, w, stride, padding)
