"""jax layers as people write them, each correct one next to the mistake made in it.

Loaded only by tests that have jax (`pytest.importorskip("jax")` first): this file imports it.

- `conv`: a jax.custom_vjp conv whose bwd is the vjp of its forward; `conv_without_db` is the same
  with a bwd that drops the bias gradient.
- `plain_conv`: a plain function of jax arrays, differentiated by jax itself.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def _axes(value, ndim):
    return (value,) * ndim if isinstance(value, int) else tuple(value)


def plain_conv(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    ndim = x.ndim - 2
    y = jax.lax.conv_general_dilated(
        x, w, window_strides=_axes(stride, ndim), padding=[(p, p) for p in _axes(padding, ndim)],
        rhs_dilation=_axes(dilation, ndim), feature_group_count=groups,
    )
    return y + jnp.reshape(b, (1, -1) + (1,) * ndim)


def _custom(drop_db):
    @functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
    def conv(x, w, b, stride=1, padding=0):
        return plain_conv(x, w, b, stride, padding)

    def fwd(x, w, b, stride, padding):
        return conv(x, w, b, stride, padding), (x, w, b)

    def bwd(stride, padding, saved, dy):
        _, pullback = jax.vjp(lambda *a: plain_conv(*a, stride, padding), *saved)
        dx, dw, db = pullback(dy)
        return dx, dw, jnp.zeros_like(db) if drop_db else db

    conv.defvjp(fwd, bwd)
    return conv


conv = _custom(drop_db=False)
conv_without_db = _custom(drop_db=True)
