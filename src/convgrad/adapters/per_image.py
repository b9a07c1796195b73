"""Layers that take one image at a time (declared `batched = false`): convgrad loops over the batch.

forward runs on each image (C, *spatial) and the outputs are stacked; backward runs on each
image with its own dy, dx is stacked and dw and db are summed, as the batch's gradients are the
sums of its images'. A live layer (the network scenario) runs forward on the image again before
each image's backward, so the cache backward reads is that image's.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from convgrad.adapters.live import Mode
from convgrad.adapters.returns import Gradients, unpack_gradients
from convgrad.adapters.failure import ImplementationFailure

__all__ = ["each_image_forward", "each_image_backward", "PerImageLive"]


def each_image_forward(forward: Callable[[Any], Any], x: np.ndarray) -> np.ndarray:
    """forward(image) for each image of the batch x, stacked."""
    return _stacked([forward(x[n]) for n in range(x.shape[0])], "forward", "the output")


def each_image_backward(
    backward: Callable[[Any, Any], Any], dy: np.ndarray, x: np.ndarray, pattern: Optional[tuple[Any, ...]]
) -> Gradients:
    """backward(dy_image, x_image) for each image: dx stacked, dw and db summed."""
    parts = [unpack_gradients(backward(dy[n], x[n]), pattern) for n in range(x.shape[0])]
    parts = [(*part, None) if isinstance(part, (tuple, list)) and len(part) == 2 else part for part in parts]  # (dx, dw)
    for part in parts:
        if not isinstance(part, (tuple, list)) or len(part) != 3:
            raise ImplementationFailure(
                f"backward returned {type(part).__name__} for one image; it returns (dx, dw, db) (or declare "
                "backward_returns)"
            )
    dx = _stacked([p[0] for p in parts], "backward", "dX")
    return Gradients(dx, _summed([p[1] for p in parts]), _summed([p[2] for p in parts]))


def _stacked(items: list[Any], what: str, name: str) -> np.ndarray:
    arrays = []
    for item in items:
        try:
            arrays.append(np.asarray(item))
        except Exception:
            raise ImplementationFailure(f"{what} returned a {type(item).__name__} for {name} of one image") from None
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1 or any(a.dtype == object for a in arrays):
        raise ImplementationFailure(f"{what} returned {name} of different shapes for the images of one batch")
    return np.stack(arrays)


def _summed(items: list[Any]) -> Any:
    if any(item is None for item in items):
        return None
    return np.sum([np.asarray(item) for item in items], axis=0)


class PerImageLive:
    """A live layer of an unbatched style, driven one image at a time (see the module docstring)."""

    def __init__(self, own: Any, pattern: Optional[tuple[Any, ...]]) -> None:
        self.geometry = own.geometry
        self._own, self._pattern = own, pattern
        self._x: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray, *, mode: Mode = "train", record: bool = True) -> Any:
        if record:
            self._x = np.array(x, copy=True)
        return each_image_forward(lambda image: self._own.forward(image, mode=mode, record=record), np.asarray(x))

    def backward(self, dy: np.ndarray) -> Any:
        if self._x is None:
            raise RuntimeError("backward before forward")

        def one(dy_image: Any, x_image: Any) -> Any:
            self._own.forward(x_image, mode="train", record=True)
            return self._own.backward(dy_image)

        return each_image_backward(one, np.asarray(dy), self._x, self._pattern)

    def update(self, w: Any, b: Any) -> None:
        self._own.update(w, b)

    def held(self) -> tuple[Any, Any]:
        return self._own.held()
