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
from convgrad.impl.functions import KeywordCalls, UserSettings
from convgrad.impl.guard import ImplementationFailure

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

    def forward(self, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        return _data(self._call(x, w, b, settings)[0], "the output")

    def backward(self, dy: Any, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        out, inputs = self._call(x, w, b, settings)
        try:
            out.backward(dy)
        except Exception:  # a library whose backward takes its own tensor type
            out.backward(self.tensor(np.array(dy)))
        gradients = [_data(getattr(t, "grad", None), f"the .grad of {n}") for t, n in zip(inputs, ("x", "w", "b"))]
        return (*gradients, None) if len(gradients) == 2 else tuple(gradients)  # bias-free: db is the adapter's

    def _call(self, x: Any, w: Any, b: Any, settings: UserSettings) -> tuple[Any, tuple[Any, ...]]:
        inputs = tuple(self.tensor(np.array(a)) for a in (x, w, b) if a is not None)
        accepted = self.keywords.forward_accepts
        kept = settings if accepted is None else {k: v for k, v in settings.items() if k in accepted}
        return self.function(*inputs, **kept), inputs


def _data(value: Any, what: str) -> Any:
    """The array a tensor holds (`.data`), or the value itself when it is an array already."""
    if value is None:
        raise ImplementationFailure(f"{what} is None: backward did not reach it")
    data = getattr(value, "data", value)
    return data if not isinstance(data, memoryview) else value  # a NumPy array's .data is its buffer
