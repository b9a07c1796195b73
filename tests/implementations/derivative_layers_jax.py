"""jax conv layers with custom derivative rules, each correct one next to a mistake in its second
derivatives or in its forward-mode derivative.

Loaded only by tests that have jax: this file imports it, and turns on float64. Every layer is
f(x, w, b, stride, padding, dilation, groups): NCHW input, OIHW weight, a bias of shape (F,);
stride and dilation as pairs, padding as a pair of (low, high) pairs, groups as an int.

- `plain_conv`: lax.conv_general_dilated plus the bias, differentiated by jax.
- `conv_vjp`: a jax.custom_vjp whose bwd takes the vjp of the plain conv: right at second order.
  It has no forward mode: jax.jvp raises, as it does for any custom_vjp.
- `conv_vjp_stopped_weight`: bwd takes dX with the weight under stop_gradient: dX no longer
  depends on the weight.
- `conv_jvp`: a jax.custom_jvp whose rule is conv(x_t, w) + conv(x, w_t) + b_t; reverse mode is its
  transpose. Right in forward mode and at second order.
- `conv_jvp_forgets_weight`: the rule leaves out conv(x, w_t). Reverse mode is the rule
  transposed, so dW is zero: this one is wrong at first order too.
- `conv_jit`: `plain_conv` under jax.jit, the settings static.
- `conv_jvp_wrong_value`: a custom_jvp whose rule returns the value without the bias (its tangent is
  right): what jax.jvp, jax.vjp and value_and_grad all return as the output.
"""

from __future__ import annotations

from functools import partial

import jax
from jax import lax

jax.config.update("jax_enable_x64", True)

CONVGRAD = {"spatial_dims": [2]}  # 2-D convolutions only

_SETTINGS = (3, 4, 5, 6)


def _conv(x, w, stride, padding, dilation, groups):
    return lax.conv_general_dilated(x, w, window_strides=tuple(stride), padding=[tuple(p) for p in padding],
                                    rhs_dilation=tuple(dilation), feature_group_count=groups,
                                    dimension_numbers=("NCHW", "OIHW", "NCHW"))


def plain_conv(x, w, b, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    return _conv(x, w, stride, padding, dilation, groups) + b.reshape(1, -1, 1, 1)


@partial(jax.custom_vjp, nondiff_argnums=_SETTINGS)
def conv_vjp(x, w, b, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    return plain_conv(x, w, b, stride, padding, dilation, groups)


def _conv_vjp_fwd(x, w, b, stride, padding, dilation, groups):
    return plain_conv(x, w, b, stride, padding, dilation, groups), (x, w)


def _conv_vjp_bwd(stride, padding, dilation, groups, saved, dy):
    _, pullback = jax.vjp(lambda x, w: _conv(x, w, stride, padding, dilation, groups), *saved)
    dx, dw = pullback(dy)
    return dx, dw, dy.sum(axis=(0, 2, 3))


conv_vjp.defvjp(_conv_vjp_fwd, _conv_vjp_bwd)


@partial(jax.custom_vjp, nondiff_argnums=_SETTINGS)
def conv_vjp_stopped_weight(x, w, b, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    return plain_conv(x, w, b, stride, padding, dilation, groups)


def _stopped_weight_bwd(stride, padding, dilation, groups, saved, dy):
    x, w = saved
    settings = (stride, padding, dilation, groups)
    _, input_pullback = jax.vjp(lambda x: _conv(x, lax.stop_gradient(w), *settings), x)
    _, weight_pullback = jax.vjp(lambda w: _conv(x, w, *settings), w)
    (dx,), (dw,) = input_pullback(dy), weight_pullback(dy)
    return dx, dw, dy.sum(axis=(0, 2, 3))


conv_vjp_stopped_weight.defvjp(_conv_vjp_fwd, _stopped_weight_bwd)


@partial(jax.custom_jvp, nondiff_argnums=_SETTINGS)
def conv_jvp(x, w, b, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    return plain_conv(x, w, b, stride, padding, dilation, groups)


@conv_jvp.defjvp
def _conv_jvp_rule(stride, padding, dilation, groups, primals, tangents):
    x, w, b = primals
    x_t, w_t, b_t = tangents
    settings = (stride, padding, dilation, groups)
    out = plain_conv(x, w, b, *settings)
    out_t = _conv(x_t, w, *settings) + _conv(x, w_t, *settings) + b_t.reshape(1, -1, 1, 1)
    return out, out_t


@partial(jax.custom_jvp, nondiff_argnums=_SETTINGS)
def conv_jvp_forgets_weight(x, w, b, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    return plain_conv(x, w, b, stride, padding, dilation, groups)


@conv_jvp_forgets_weight.defjvp
def _forgets_weight_rule(stride, padding, dilation, groups, primals, tangents):
    x, w, b = primals
    x_t, _, b_t = tangents  # the weight's tangent is left out
    out = plain_conv(x, w, b, stride, padding, dilation, groups)
    return out, _conv(x_t, w, stride, padding, dilation, groups) + b_t.reshape(1, -1, 1, 1)


conv_jit = jax.jit(plain_conv, static_argnames=("stride", "padding", "dilation", "groups"))


@partial(jax.custom_jvp, nondiff_argnums=_SETTINGS)
def conv_jvp_wrong_value(x, w, b, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    return plain_conv(x, w, b, stride, padding, dilation, groups)


@conv_jvp_wrong_value.defjvp
def _wrong_value_rule(stride, padding, dilation, groups, primals, tangents):
    x, w, b = primals
    x_t, w_t, b_t = tangents
    value = _conv(x, w, stride, padding, dilation, groups)  # the bias left out of the value
    tangent = _conv(x_t, w, stride, padding, dilation, groups) + _conv(x, w_t, stride, padding, dilation, groups)
    return value, tangent + b_t.reshape(1, -1, 1, 1)
