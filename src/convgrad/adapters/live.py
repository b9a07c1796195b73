"""A layer as a network holds it: built once, its weights kept and updated in place, forward on one
batch now and backward on it later, with other layers called in between.

The call protocol (guard.py) calls forward(x, w, b) and backward(dy, x, w, b) like pure functions,
on fresh arrays every time. A training loop does not: it builds each layer once, keeps the
weights in arrays it updates in place, calls forward on several layers before it calls their
backward passes in reverse, and freezes some inputs. `LiveLayer` is that life, in convgrad's
layouts; every implementation makes one per instance with `Implementation.live`, in the way its
style lives (one object of a layer class each, one call stream of a pair of functions, a torch
module with parameters of its own). run/scenario.py drives them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, Protocol

import numpy as np

from convgrad.geometry import LayerGeometry

__all__ = ["Variant", "LiveLayer", "StreamLayer", "FULL", "Mode", "write_in_place"]

Input = str  # "x", "w" or "b"
Mode = Literal["train", "eval"]  # a module's mode (torch's train() and eval())


@dataclass(frozen=True)
class Variant:
    """How a network uses one instance of the layer."""

    bias: bool = True  # False: built without a bias (b = None)
    frozen: frozenset[Input] = frozenset()  # inputs that do not require a gradient (torch's requires_grad)
    learning_rate: float = 0.0  # > 0: backward(dout, lr) also takes the SGD step (layer objects that train)

    def describe(self) -> str:
        parts = [] if self.bias else ["b = None"]
        parts += [f"{name} frozen" for name in sorted(self.frozen)]
        if self.learning_rate:
            parts.append(f"lr = {self.learning_rate:g}")
        return ", ".join(parts) or "as built by default"


FULL = Variant()


class LiveLayer(Protocol):
    """One instance of a layer in a network, in convgrad's layouts (see the module docstring)."""

    def forward(self, x: np.ndarray, *, mode: Mode = "train", record: bool = True) -> Any:
        """y for x with the weights the layer holds, in `mode`; `record`: keep what backward needs
        (torch: gradients enabled), else the forward of an evaluation that has no backward."""

    def backward(self, dy: np.ndarray) -> Any:
        """(dx, dw, db) of the latest recorded forward; None for a gradient not asked for."""

    def update(self, w: np.ndarray, b: Optional[np.ndarray]) -> None:
        """Write new weights into the arrays the layer holds, in place, as an optimiser does."""

    def held(self) -> tuple[Any, Any]:
        """The weights the layer holds now (after a backward that took a step, the new ones)."""


Forward = Callable[[Any, Any, Any], Any]  # (x, w, b) -> y, settings bound
Backward = Callable[[Any, Any, Any, Any], Any]  # (dy, x, w, b) -> (dx, dw, db), settings bound


class StreamLayer:
    """A pair of pure functions as one layer of a network: one call stream, holding its own weight
    arrays (updated in place: the same objects every call) and the input of its latest forward.
    In whatever layouts the functions take."""

    def __init__(self, forward: Forward, backward: Backward, geometry: LayerGeometry, w: Any, b: Any) -> None:
        self.geometry = geometry
        self._forward, self._backward = forward, backward
        self._w, self._b = np.array(w, copy=True), (None if b is None else np.array(b, copy=True))
        self._x: Any = None

    def forward(self, x: Any, *, mode: Mode = "train", record: bool = True) -> Any:
        if record:
            self._x = x
        return self._forward(x, self._w, self._b)

    def backward(self, dy: Any) -> Any:
        if self._x is None:
            raise RuntimeError("backward before forward")
        return self._backward(dy, self._x, self._w, self._b)

    def update(self, w: Any, b: Any) -> None:
        write_in_place(self._w, w)
        if self._b is not None and b is not None:
            write_in_place(self._b, b)

    def held(self) -> tuple[Any, Any]:
        return self._w, self._b


def write_in_place(target: np.ndarray, values: Any) -> None:
    """New values into an array the layer holds, keeping the object (its shape may be the layer's own)."""
    np.copyto(target, np.reshape(np.asarray(values), target.shape))
