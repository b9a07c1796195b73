"""`--impl jax`: jax.lax.conv_general_dilated for the forward pass and jax.vjp for the backward."""

from __future__ import annotations

from typing import Any

import numpy as np

from convgrad.geometry import LayerGeometry, as_padding_pairs
from convgrad.adapters.live import LiveLayer, Variant
from convgrad.adapters.protocol import stream_of
from convgrad.frameworks.tensors import DEFAULT_DEVICE, Cotangents, JaxArrays, Tangents

__all__ = ["JaxLayer"]


class JaxLayer:
    """Convolution in NC(D)HW / OI(D)HW layout, float64 enabled so float64 checks mean it."""

    CONVGRAD = {"uneven_padding": True}  # pads each side as asked

    name = "jax"

    def __init__(self, device: str = DEFAULT_DEVICE) -> None:
        self._arrays = JaxArrays(device)
        self._compiled: dict[tuple[Any, ...], Any] = {}

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        return self._arrays.value(self._conv(**settings), (x, w, b))

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        return self._arrays.gradients(self._conv(**settings), dy, (x, w, b))

    def backward_derivatives(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray,
                             cotangents: Cotangents, **settings: Any) -> Any:
        return self._arrays.backward_derivatives(self._conv(**settings), dy, (x, w, b), cotangents)

    def jvp(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, tangents: Tangents, **settings: Any) -> Any:
        return self._arrays.jvp(self._conv(**settings), (x, w, b), tangents)

    def live(self, geometry: LayerGeometry, w: np.ndarray, b: np.ndarray, variant: Variant) -> LiveLayer:
        return stream_of(self, geometry, w, b, variant)

    def _conv(self, *, stride: Any, padding: Any, dilation: Any, groups: int) -> Any:
        """The conv for these settings, compiled once: a gradient check calls it thousands of times."""
        key = (tuple(stride), as_padding_pairs(padding), tuple(dilation), groups)
        if key not in self._compiled:
            jax = self._arrays.jax

            def conv(x: Any, w: Any, b: Any) -> Any:
                y = jax.lax.conv_general_dilated(
                    x,
                    w,
                    window_strides=key[0],
                    padding=list(key[1]),  # (before, after) per axis
                    rhs_dilation=key[2],
                    feature_group_count=groups,
                )
                return y + jax.numpy.reshape(b, (1, -1) + (1,) * (x.ndim - 2))

            self._compiled[key] = jax.jit(conv)
        return self._compiled[key]
