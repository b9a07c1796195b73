"""What convgrad checks: the conv layer protocol, and convgrad's own layer that speaks it.

    forward(x, w, b, *, stride, padding, dilation, groups) -> y
    backward(dy, x, w, b, *, stride, padding, dilation, groups) -> (dx, dw, db)

Arrays are (N, C, *spatial), (F, C/groups, *k), (F,) and (N, F, *out); settings are one int per
spatial axis (groups one int), padding a (before, after) pair per axis for a layer that declares it
takes them (declare.py: uneven_padding). `Implementation` is a layer behind convgrad's adapter: it also has
a name and says which geometries it cannot run.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Protocol, runtime_checkable

import numpy as np

from convgrad import reference
from convgrad.geometry import LayerGeometry, as_padding_pairs
from convgrad.adapters.live import FULL, LiveLayer, StreamLayer, Variant

__all__ = ["ConvLayer", "Implementation", "DifferentiableLayer", "DoubleBackward", "differentiable", "ReferenceLayer", "Unsupported", "stream_of",
           "call_geometry"]


class Unsupported(Exception):
    """Raised by a layer (from forward, backward or supports) for a case it cannot express; the
    case is skipped with str(self) as the reason. Import it as `convgrad.Unsupported`."""


@runtime_checkable
class ConvLayer(Protocol):
    """A conv layer in convgrad's own convention (see the module docstring)."""

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any: ...

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any: ...


class Implementation(ConvLayer, Protocol):
    """A layer ready to be checked: named, and able to say which geometries it cannot run."""

    @property
    def name(self) -> str: ...

    @property
    def has_bias(self) -> bool:
        """False for a bias-free layer: db is not the layer's, and is not checked."""

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        """Why the layer cannot express `geometry` (the case is skipped), or None."""

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        """Why forward and backward disagree about `geometry` (the case fails), or None."""

    def live(self, geometry: LayerGeometry, w: np.ndarray, b: np.ndarray, variant: Variant) -> LiveLayer:
        """One instance of the layer as a network holds it (live.py), holding copies of w and b;
        raises Unsupported for a variant the layer cannot express."""


class DoubleBackward(NamedTuple):
    """What a framework returns when it differentiates a layer's backward (`backward_derivatives`).

    recorded: dX, dK, db as the backward returned them while recorded for differentiation (torch's
        create_graph=True, jax's vjp of the vjp): the gradients a gradient penalty is made of.
    per_gradient: for each of dX, dK, db given a cotangent t (None: left out), the derivatives of
        <t, gradient> with respect to x, w, b and dy; each None where no path was found.
    together: the derivatives of the sum of those inner products, every cotangent at once (what a
        penalty on several gradients asks), with respect to x, w, b and dy.
    """

    recorded: tuple[Any, ...]
    per_gradient: tuple[Optional[tuple[Any, ...]], ...]
    together: tuple[Any, ...]


@runtime_checkable
class DifferentiableLayer(Protocol):
    """A layer whose framework differentiates it further (torch's autograd, jax): what `--order 2`
    and `--jvp` call. NumPy layers have neither; their backward is not a function anything can
    differentiate.

    backward_derivatives: a `DoubleBackward`, the framework differentiating the layer's own backward.
    jvp: (the output, its forward-mode derivative along `tangents`; None: a tensor not moved, and
        an output that carries no tangent).
    """

    def backward_derivatives(
        self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray,
        cotangents: tuple[Optional[np.ndarray], ...], **settings: Any,
    ) -> Any: ...

    def jvp(
        self, x: np.ndarray, w: np.ndarray, b: np.ndarray, tangents: tuple[Optional[np.ndarray], ...], **settings: Any
    ) -> Any: ...


def differentiable(layer: Any) -> Optional[DifferentiableLayer]:
    """The layer as its framework differentiates it, or None (a NumPy layer). A built-in framework
    layer behind the adapter speaks convgrad's protocol as it is, so it is its own."""
    if isinstance(layer, DifferentiableLayer):
        return layer
    target = getattr(layer, "target", None)
    plain = (getattr(layer, "layout", "nchw"), getattr(layer, "weight_layout", "oihw")) == ("nchw", "oihw")
    return target if plain and isinstance(target, DifferentiableLayer) and isinstance(target, ConvLayer) else None


class ReferenceLayer:
    """convgrad's own layer (reference.py): the default implementation under test."""

    name = "reference"
    has_bias = True
    CONVGRAD = {"uneven_padding": True}  # reference.py pads each side as asked

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> np.ndarray:
        return reference.forward(x, w, b, **settings)

    def backward(
        self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return reference.backward(dy, x, w, b, **settings)

    def live(self, geometry: LayerGeometry, w: np.ndarray, b: np.ndarray, variant: Variant) -> LiveLayer:
        return stream_of(self, geometry, w, b, variant)


def stream_of(layer: ConvLayer, geometry: LayerGeometry, w: np.ndarray, b: np.ndarray, variant: Variant) -> LiveLayer:
    """A layer of pure functions in convgrad's protocol, as one call stream (convgrad's own layers)."""
    if variant != FULL:
        raise Unsupported(f"convgrad's own layers run {variant.describe()} nowhere in a network")
    settings = geometry.conv_settings()
    return StreamLayer(
        lambda x, w_, b_: layer.forward(x, w_, b_, **settings),
        lambda dy, x, w_, b_: layer.backward(dy, x, w_, b_, **settings),
        geometry, w, b,
    )


def call_geometry(x: np.ndarray, w: np.ndarray, settings: dict[str, Any]) -> LayerGeometry:
    """The layer one protocol call describes, from its arrays and settings (padding an int per axis,
    or a (before, after) pair per axis): what every layer that works per call reads its case from."""
    pairs = as_padding_pairs(settings["padding"])
    return LayerGeometry(
        in_shape=tuple(x.shape[1:]), kernel_shape=tuple(w.shape), batch=x.shape[0],
        stride=tuple(settings["stride"]), padding=tuple(b for b, _ in pairs), dilation=tuple(settings["dilation"]),
        groups=int(settings["groups"]), dtype="float32" if x.dtype == np.float32 else "float64",
        padding_after=tuple(a for _, a in pairs),
    )
