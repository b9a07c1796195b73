"""`--impl torch`: torch's convNd for the forward pass and autograd for the backward pass."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from convgrad.impl.extras import require

__all__ = ["TorchLayer"]


class TorchLayer:
    """torch.nn.functional.conv1d/2d/3d; gradients from autograd with dy as the upstream gradient."""

    name = "torch"

    def __init__(self) -> None:
        self._torch = require("torch", "torch")
        functional = self._torch.nn.functional
        self._conv = {1: functional.conv1d, 2: functional.conv2d, 3: functional.conv3d}
        # torch imports much of itself on the first backward; done here, in the process that
        # forks every case's child, instead of once per case (0.6 s each).
        one = np.ones((1, 1, 1))
        self.backward(one, one, one, np.ones(1), stride=(1,), padding=(0,), dilation=(1,), groups=1)

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> np.ndarray:
        torch = self._torch
        with torch.no_grad(), self._one_thread():
            y = self._call(*(torch.from_numpy(a) for a in (x, w, b)), **settings)
        return y.numpy()

    def backward(
        self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        torch = self._torch
        inputs = [torch.from_numpy(a).requires_grad_(True) for a in (x, w, b)]
        with self._one_thread():
            y = self._call(*inputs, **settings)
            y.backward(torch.from_numpy(dy))
        dx, dw, db = (t.grad.numpy() for t in inputs)
        return dx, dw, db

    @contextlib.contextmanager
    def _one_thread(self) -> Iterator[None]:
        """A check makes thousands of calls on small tensors, where torch's worker threads only spin:
        on two cores they made the standard suite 12x slower. The caller's setting is restored."""
        before = self._torch.get_num_threads()
        self._torch.set_num_threads(1)
        try:
            yield
        finally:
            self._torch.set_num_threads(before)

    def _call(self, x: Any, w: Any, b: Any, *, stride: Any, padding: Any, dilation: Any, groups: int) -> Any:
        conv = self._conv[x.dim() - 2]
        return conv(x, w, b, stride=tuple(stride), padding=tuple(padding), dilation=tuple(dilation), groups=groups)
