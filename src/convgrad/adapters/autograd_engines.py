"""The calling style of a small autograd library: a conv function on the library's own tensors.

    out = conv2d(Tensor(x), Tensor(w), Tensor(b), stride=1, padding=0)
    out.backward(dy)                  (or out.backward(Tensor(dy)))
    then x.grad, w.grad, b.grad       (arrays, or tensors holding them in .data)

Declared as `tensor = "Tensor"` (the class in the layer's module that wraps an array) with
`forward = "conv2d"`. Every call wraps fresh tensors, so gradients accumulated on them by an
earlier call cannot leak into the next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional

import numpy as np

from convgrad.geometry import LayerGeometry
from convgrad.adapters.functions import KeywordCalls, UserSettings
from convgrad.harness.guard import ImplementationFailure
from convgrad.adapters.live import Mode, Variant, write_in_place

__all__ = ["AutogradCalls"]


@dataclass(frozen=True)
class AutogradCalls:
    """A conv function on tensors of type `tensor` (see the module docstring)."""

    function: Callable[..., Any]
    tensor: Callable[[Any], Any]
    keywords: KeywordCalls  # which settings the function accepts, and what it cannot express
    style: Literal["autograd"] = "autograd"

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        return self.keywords.unsupported(geometry)

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        return None

    @property
    def takes_no_bias(self) -> bool:
        return self.keywords.takes_no_bias

    takes_learning_rate = False
    takes_kernel_size = False

    def live(self, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any, variant: Variant) -> "TensorLayer":
        return TensorLayer(self, settings, geometry, w, b)

    def forward(self, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        return _data(self._call(x, w, b, settings)[0], "the output")

    def backward(self, dy: Any, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        out, inputs = self._call(x, w, b, settings)
        self.backpropagate(out, dy)
        gradients = [_data(getattr(t, "grad", None), f"the .grad of {n}") for t, n in zip(inputs, ("x", "w", "b"))]
        return (*gradients, None) if len(gradients) == 2 else tuple(gradients)  # bias-free: db is the adapter's

    def _call(self, x: Any, w: Any, b: Any, settings: UserSettings) -> tuple[Any, tuple[Any, ...]]:
        inputs = tuple(self.tensor(np.array(a)) for a in (x, w, b) if a is not None)
        return self.apply(inputs, settings), inputs

    def apply(self, tensors: tuple[Any, ...], settings: UserSettings) -> Any:
        """The conv function on the library's tensors, given only the settings it accepts."""
        accepted = self.keywords.forward_accepts
        kept = settings if accepted is None else {k: v for k, v in settings.items() if k in accepted}
        return self.function(*tensors, **kept)

    def backpropagate(self, out: Any, dy: Any) -> None:
        try:
            out.backward(dy)
        except Exception:  # a library whose backward takes its own tensor type
            out.backward(self.tensor(np.array(dy)))


class TensorLayer:
    """A conv on an autograd library's tensors as a network holds it: the weight and bias tensors
    are made once and updated in place, their .grad zeroed before each backward (as an
    optimiser's zero_grad does), and x wrapped anew for every forward."""

    def __init__(self, calls: AutogradCalls, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any) -> None:
        self.geometry = geometry
        self._calls, self._settings = calls, settings
        self._weights = tuple(calls.tensor(np.array(a)) for a in (w, b) if a is not None)
        self._recorded: Optional[tuple[Any, Any]] = None  # (out, x) of the latest training forward

    def forward(self, x: Any, *, mode: Mode = "train", record: bool = True) -> Any:
        x_tensor = self._calls.tensor(np.array(x))
        out = self._calls.apply((x_tensor, *self._weights), self._settings)
        if record:
            self._recorded = (out, x_tensor)
        return _data(out, "the output")

    def backward(self, dy: Any) -> Any:
        if self._recorded is None:
            raise RuntimeError("backward before forward")
        out, x_tensor = self._recorded
        for tensor in self._weights:
            _zero_grad(tensor)
        self._calls.backpropagate(out, dy)
        leaves = (x_tensor, *self._weights)
        gradients = [_data(getattr(t, "grad", None), f"the .grad of {n}") for t, n in zip(leaves, ("x", "w", "b"))]
        return (*gradients, None) if len(gradients) == 2 else tuple(gradients)

    def update(self, w: Any, b: Any) -> None:
        for tensor, value in zip(self._weights, (w, b)):
            held = _data(tensor, "a weight")
            if value is not None and isinstance(held, np.ndarray):
                write_in_place(held, value)

    def held(self) -> tuple[Any, Any]:
        held = [_data(t, "a weight") for t in self._weights]
        return held[0], (held[1] if len(held) > 1 else None)


def _zero_grad(tensor: Any) -> None:
    """tensor.grad to zero where it is an array (kept and added to), else to None."""
    grad = getattr(tensor, "grad", None)
    data = getattr(grad, "data", grad)
    if isinstance(data, np.ndarray) and data.flags.writeable:
        data[...] = 0
    elif grad is not None:
        try:
            tensor.grad = None
        except Exception:
            pass  # a library that keeps its .grad read-only resets it itself


def _data(value: Any, what: str) -> Any:
    """The array a tensor holds (`.data`), or the value itself when it is an array already."""
    if value is None:
        raise ImplementationFailure(f"{what} is None: backward did not reach it")
    data = getattr(value, "data", value)
    return data if not isinstance(data, memoryview) else value  # a NumPy array's .data is its buffer
