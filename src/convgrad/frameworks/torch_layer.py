"""`--impl torch`: torch's convNd for the forward pass and autograd for the backward pass (padding
that differs before and after by F.pad first)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from convgrad.geometry import LayerGeometry, as_padding_pairs
from convgrad.adapters.live import LiveLayer, Variant
from convgrad.adapters.protocol import stream_of
from convgrad.frameworks.tensors import DEFAULT_DEVICE, Cotangents, Tangents, TorchArrays

__all__ = ["TorchLayer"]


class TorchLayer:
    """torch.nn.functional.conv1d/2d/3d; gradients from autograd with dy as the upstream gradient."""

    CONVGRAD = {"uneven_padding": True}  # pads each side as asked

    name = "torch"

    def __init__(self, device: str = DEFAULT_DEVICE) -> None:
        self._arrays = TorchArrays(device)
        functional = self._arrays.torch.nn.functional
        self._conv = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        return self._arrays.value(functools.partial(self._call, **settings), (x, w, b))

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        return self._arrays.gradients(functools.partial(self._call, **settings), dy, (x, w, b))

    def backward_derivatives(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray,
                             cotangents: Cotangents, **settings: Any) -> Any:
        return self._arrays.backward_derivatives(functools.partial(self._call, **settings), dy, (x, w, b), cotangents)

    def jvp(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, tangents: Tangents, **settings: Any) -> Any:
        return self._arrays.jvp(functools.partial(self._call, **settings), (x, w, b), tangents)

    def live(self, geometry: LayerGeometry, w: np.ndarray, b: np.ndarray, variant: Variant) -> LiveLayer:
        return stream_of(self, geometry, w, b, variant)

    def _call(self, x: Any, w: Any, b: Any, *, stride: Any, padding: Any, dilation: Any, groups: int) -> Any:
        conv = self._conv[x.dim() - 2]
        pairs = as_padding_pairs(padding)
        if any(before != after for before, after in pairs):  # convNd pads both sides alike: F.pad first
            widths = [side for pair in reversed(pairs) for side in pair]  # F.pad starts at the last axis
            x, pairs = self._arrays.torch.nn.functional.pad(x, widths), tuple((0, 0) for _ in pairs)
        return conv(x, w, b, stride=tuple(stride), padding=tuple(p for p, _ in pairs), dilation=tuple(dilation),
                    groups=groups)
