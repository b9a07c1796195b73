"""The calling style of a small autograd library: a conv function on the library's own tensors.

    out = conv2d(Tensor(x), Tensor(w), Tensor(b), stride=1, padding=0)
    out.backward(dy)                  (or out.backward(Tensor(dy)))
    then x.grad, w.grad, b.grad       (arrays, or tensors holding them in .data)

Declared as `tensor = "Tensor"` (the class in the layer's module that wraps an array) with
`forward = "conv2d"`. Every call wraps fresh tensors, so gradients accumulated on them by an
earlier call cannot leak into the next. The rest is read off the library itself:

- backward: `out.backward(dy)`, else `out.backward(Tensor(dy))`. A backward that takes no
  gradient (it seeds grad = 1 on a scalar, as micrograd's does) gets the scalar sum(y * dy),
  built with the library's own ops: `(out * Tensor(dy)).sum()`, or its function `sum` beside the
  tensor class. The first way that works is kept for the later calls.
- the bias: the conv's third positional parameter, a keyword-only `b` or `bias`, or none at all
  (`conv2d(x, w, stride=1)`: a bias-free conv, whose bias the adapter adds).
- settings: a tuple where the signature's default is one (`stride=(1, 1)`) or the layer declares
  per_axis, one int for every axis when it declares one_int, else one int where every axis agrees.
- precision: an output in a lower precision than its inputs (a tensor class that converts its data
  to float32) fails with the declaration that checks the layer in its own dtype.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Literal, NamedTuple, Optional

import numpy as np

from convgrad.geometry import DTYPES, LayerGeometry
from convgrad.adapters.functions import Fitted, KeywordCalls, UserSettings, parameters
from convgrad.adapters.vocabulary import PLACEHOLDERS
from convgrad.adapters.failure import ImplementationFailure, describe_exception
from convgrad.adapters.live import Mode, Variant, write_in_place

__all__ = ["AutogradCalls"]

Graph = tuple[Any, tuple[Any, ...]]  # an output tensor, and the leaf tensors (x, w[, b]) it was computed from
# How out.backward is called: with dy as an array, as the library's tensor, or with no gradient on sum(y * dy).
BackwardWay = Literal["array", "tensor", "scalar"]


class _Bias(NamedTuple):
    """How the conv function takes its bias, read off its signature."""

    parameter: Optional[str]  # None: it takes none; "": the third positional parameter; else its keyword
    optional: bool  # it defaults to None: the conv also runs without one


@dataclass(frozen=True)
class AutogradCalls:
    """A conv function on tensors of type `tensor` (see the module docstring)."""

    function: Callable[..., Any]
    tensor: Callable[..., Any]
    style: Literal["autograd"] = "autograd"
    _learned: dict[str, BackwardWay] = field(default_factory=dict, init=False, compare=False, repr=False)

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        return self.keywords.unsupported(geometry)

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        return None

    @cached_property
    def fitted(self) -> Fitted:
        """The settings the conv function takes, under its own names, and their defaults."""
        return Fitted.of(self.function)

    @cached_property
    def keywords(self) -> KeywordCalls:
        """The conv as a keyword function: which settings it accepts, and what it cannot express."""
        fitted = self.fitted
        return KeywordCalls(self.function, self.function, fitted.accepts, fitted.accepts,
                            fitted_forward=fitted, fitted_backward=fitted)

    @cached_property
    def _bias(self) -> _Bias:
        return _bias_of(self.function, self.fitted)

    @property
    def takes_bias(self) -> bool:
        """Whether the conv takes a bias at all (else the adapter adds one, and db is not the layer's)."""
        return self._bias.parameter is not None

    @property
    def takes_no_bias(self) -> bool:
        return self._bias.optional

    takes_learning_rate = False
    takes_kernel_size = False

    def setting_default(self, setting: str) -> Any:
        """The conv's own default (stride=(1, 1): tuples), else an int: engines compute with ints."""
        default = self.fitted.defaults.get(setting)
        return default if isinstance(default, (int, tuple, list)) else 0

    def live(self, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any, variant: Variant) -> "TensorLayer":
        return TensorLayer(self, settings, geometry, w, b)

    def forward(self, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        out = _data(self._graph(x, w, b, settings)[0], "the output")
        self.same_precision(out, x)
        return out

    def backward(self, dy: Any, x: Any, w: Any, b: Any, settings: UserSettings, geometry: LayerGeometry) -> Any:
        leaves = self.backpropagate(self._graph(x, w, b, settings), dy, lambda: self._graph(x, w, b, settings))
        return _gradients(leaves)

    def wrap(self, array: Any) -> Any:
        """A fresh leaf tensor holding a copy of `array` (in its dtype: a float32 case stays float32),
        asked to record its gradient where the class takes requires_grad (as torch's does, off by default)."""
        if self._takes_requires_grad:
            return self.tensor(np.array(array), requires_grad=True)
        return self.tensor(np.array(array))

    @cached_property
    def _takes_requires_grad(self) -> bool:
        return "requires_grad" in (parameters(self.tensor) or {})

    def _graph(self, x: Any, w: Any, b: Any, settings: UserSettings) -> Graph:
        leaves = tuple(self.wrap(a) for a in (x, w, b) if a is not None)
        return self.apply(leaves, settings), leaves

    def apply(self, leaves: tuple[Any, ...], settings: UserSettings) -> Any:
        """The conv function on the library's tensors (x, w[, b]), given only the settings it accepts."""
        names = self.fitted.names  # None: **kwargs, every setting under convgrad's name
        kept = {k if names is None else names[k]: v for k, v in settings.items() if names is None or k in names}
        bias = self._bias.parameter
        if len(leaves) == 3 and bias:  # a keyword-only bias: conv2d(x, w, *, bias=None, stride=1)
            return self.function(*leaves[:2], **{bias: leaves[2]}, **kept)
        return self.function(*leaves, **kept)

    def backpropagate(self, graph: Graph, dy: Any, remake: Callable[[], Graph]) -> tuple[Any, ...]:
        """Backpropagate dy from the graph's output in the first way the library takes (kept for the
        later calls); returns the leaves holding the gradients. Each further way runs on a fresh
        graph (`remake`), so what a failed way left in the .grad of some tensor is not added to."""
        known = self._learned.get("backward")
        ways = (known,) if known is not None else self._ways(graph[0])
        failures: dict[BackwardWay, Exception] = {}
        for attempt, way in enumerate(ways):
            if attempt:
                graph = remake()
            try:
                self._run_backward(way, graph[0], dy)
            except Exception as error:
                failures[way] = error
                continue
            self._learned["backward"] = way
            return graph[1]
        # A backward taking a gradient may take only the library's tensors: its error is the telling one.
        raise failures.get("tensor", failures[ways[-1]])

    def _ways(self, out: Any) -> tuple[BackwardWay, ...]:
        backward = getattr(out, "backward", None)
        if not callable(backward):
            raise ImplementationFailure(
                f"{_name(self.function)} returned a {type(out).__name__}, which has no backward(); return the "
                f"library's {_name(self.tensor)}"
            )
        return ("array", "tensor", "scalar") if _takes_gradient(backward) else ("scalar",)

    def _run_backward(self, way: BackwardWay, out: Any, dy: Any) -> None:
        if way == "array":
            out.backward(dy)
        elif way == "tensor":
            out.backward(self.wrap(dy))
        else:
            self._weighted_sum(out, dy).backward()

    def _weighted_sum(self, out: Any, dy: Any) -> Any:
        """sum(y * dy) with the library's own ops: a scalar whose gradient at y is dy."""
        tensor = _name(self.tensor)
        why = f"{tensor}.backward() takes no gradient, so convgrad backpropagates the scalar sum(y * dy)"
        try:
            product = out * self.wrap(dy)
        except TypeError as error:
            raise ImplementationFailure(
                f"{why}, and y * {tensor}(dy) raised {describe_exception(error)}; give {tensor} a __mul__"
            ) from error
        own = getattr(product, "sum", None)
        if callable(own):
            return own()
        homes = dict.fromkeys(getattr(f, "__module__", "") for f in (self.tensor, self.function))
        for module in (sys.modules.get(home) for home in homes):
            function = getattr(module, "sum", None)
            if callable(function):
                return function(product)
        raise ImplementationFailure(
            f"{why}, and {tensor} has no sum(); give {tensor} a sum() method (or define sum(t) beside it)"
        )

    def same_precision(self, out: Any, x: Any) -> None:
        """Raise when the output is in a lower precision than x: the library computes in it, and at
        x's precision its gradients cannot be told from its rounding."""
        got, given = getattr(out, "dtype", None), getattr(x, "dtype", None)
        if not (isinstance(got, np.dtype) and isinstance(given, np.dtype) and got.kind == given.kind == "f"
                and got.itemsize < given.itemsize):
            return
        held = getattr(_data(self.wrap(x), "a tensor"), "dtype", None)
        where = f"{_name(self.tensor)} converts its data to {held}" if held == got else f"{_name(self.function)} does"
        fix = (f'declare dtypes = ["{got}"] to check it in {got}' if got.name in DTYPES
               else f"convgrad checks {' and '.join(DTYPES)} layers only")
        raise ImplementationFailure(
            f"forward returned the output as {got} for {given} inputs: the layer computed in {got} ({where}); {fix}"
        )


class TensorLayer:
    """A conv on an autograd library's tensors as a network holds it: the weight and bias tensors
    are made once and updated in place, their .grad zeroed before each backward (as an
    optimiser's zero_grad does), and x wrapped anew for every forward."""

    def __init__(self, calls: AutogradCalls, settings: UserSettings, geometry: LayerGeometry, w: Any, b: Any) -> None:
        self.geometry = geometry
        self._calls, self._settings = calls, settings
        self._weights = tuple(calls.wrap(a) for a in (w, b) if a is not None)
        self._recorded: Optional[tuple[Graph, Any]] = None  # the graph of the latest training forward, and its x

    def forward(self, x: Any, *, mode: Mode = "train", record: bool = True) -> Any:
        graph = self._graph(x)
        if record:
            self._recorded = (graph, x)
        out = _data(graph[0], "the output")
        self._calls.same_precision(out, x)
        return out

    def _graph(self, x: Any) -> Graph:
        leaves = (self._calls.wrap(x), *self._weights)
        return self._calls.apply(leaves, self._settings), leaves

    def backward(self, dy: Any) -> Any:
        if self._recorded is None:
            raise RuntimeError("backward before forward")
        graph, x = self._recorded

        def remake() -> Graph:
            self._zero_grads()
            return self._graph(x)

        self._zero_grads()
        return _gradients(self._calls.backpropagate(graph, dy, remake))

    def _zero_grads(self) -> None:
        for tensor in self._weights:
            _zero_grad(tensor)

    def update(self, w: Any, b: Any) -> None:
        for tensor, value in zip(self._weights, (w, b)):
            held = _data(tensor, "a weight")
            if value is not None and isinstance(held, np.ndarray):
                write_in_place(held, value)

    def held(self) -> tuple[Any, Any]:
        held = [_data(t, "a weight") for t in self._weights]
        return held[0], (held[1] if len(held) > 1 else None)


def _bias_of(function: Callable[..., Any], fitted: Fitted) -> _Bias:
    """The third leading tensor, a keyword-only b or bias, or no bias: conv2d(x, w, stride=1).
    A conv whose signature cannot be read, or that takes *tensors, gets b third."""
    found = parameters(function)
    if found is None or fitted.tensors is None:
        return _Bias("", False)
    listed = list(found.values())
    if fitted.tensors >= 3:
        return _Bias("", listed[2].default is None)
    keyword = next((p for p in listed if p.kind is p.KEYWORD_ONLY and p.name in PLACEHOLDERS["b"]), None)
    return _Bias(None, False) if keyword is None else _Bias(keyword.name, keyword.default is None)


def _takes_gradient(backward: Callable[..., Any]) -> bool:
    """Whether backward has a parameter for the gradient: not micrograd's backward(), nor a
    backward(retain_graph=False) whose only parameter is a flag. One it cannot read is tried."""
    found = parameters(backward)
    if found is None:
        return True
    positional = [p for p in found.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    return bool(positional) and not isinstance(positional[0].default, bool)


def _gradients(leaves: tuple[Any, ...]) -> tuple[Any, ...]:
    """(dx, dw, db) from the leaves' .grad; db None for a conv without a bias (the adapter's)."""
    gradients = [_data(getattr(t, "grad", None), f"the .grad of {n}") for t, n in zip(leaves, ("x", "w", "b"))]
    return (*gradients, None) if len(gradients) == 2 else tuple(gradients)


def _zero_grad(tensor: Any) -> None:
    """tensor.grad back to zero in the library's own terms: an array (or the array a tensor holds)
    zeroed in place, as it is kept and added to; a number (micrograd's grad = 0) set to 0; anything
    else set to None."""
    grad = getattr(tensor, "grad", None)
    if grad is None:
        return
    array = grad if isinstance(grad, np.ndarray) else getattr(grad, "data", None)
    if isinstance(array, np.ndarray) and array.flags.writeable:
        array[...] = 0
        return
    try:
        tensor.grad = 0 if isinstance(grad, (int, float, np.number)) else None
    except Exception:
        pass  # a library that keeps its .grad read-only resets it itself


def _data(value: Any, what: str) -> Any:
    """The array a tensor holds (`.data`), or the value itself when it is an array already."""
    if value is None:
        raise ImplementationFailure(f"{what} is None: backward did not reach it")
    data = getattr(value, "data", value)
    return data if not isinstance(data, memoryview) else value  # a NumPy array's .data is its buffer


def _name(value: Any) -> str:
    return str(getattr(value, "__name__", type(value).__name__))
