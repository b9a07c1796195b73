"""A jax function checked as it is written: `f(x, w, b, ...) -> y`, differentiated by jax.vjp.

A `jax.custom_vjp` function is checked through its own bwd; a `jax.jit` function or a plain
function of jax arrays (one whose module imports jax) through the derivative jax computes. The
parameters after x, w and b are filled by name (stride, padding or pad, dilation, groups, ...);
settings go in as one int when every axis has the same value, else a tuple per axis (a
custom_vjp takes them best as `nondiff_argnums`).
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any, Optional

import numpy as np

from convgrad.geometry import LayerGeometry
from convgrad.adapters.declare import Declarations, declared_refusal
from convgrad.adapters.vocabulary import setting_of, setting_value, settings_after, untaken_setting
from convgrad.adapters.live import LiveLayer, Variant
from convgrad.adapters.protocol import stream_of
from convgrad.frameworks.tensors import DEFAULT_DEVICE, JaxArrays

__all__ = ["jax_implementation", "JaxFunctionLayer"]


def jax_implementation(
    target: Any, name: str, device: str = DEFAULT_DEVICE, declared: Declarations = Declarations()
) -> Optional["JaxFunctionLayer"]:
    """The layer for `target` if it is a jax function, else None (jax is never imported here)."""
    jax = sys.modules.get("jax")
    if jax is None or not _is_jax_function(jax, target):
        return None
    return JaxFunctionLayer(target, name, JaxArrays(device), declared)


def _is_jax_function(jax: Any, target: Any) -> bool:
    if isinstance(target, (jax.custom_vjp, jax.custom_jvp)):
        return True
    if type(target).__module__.split(".")[0] in ("jax", "jaxlib") and callable(target):
        return True  # jax.jit and friends
    if not inspect.isfunction(target):
        return False
    uses = target.__globals__.values()
    return any(isinstance(v, types.ModuleType) and v.__name__.split(".")[0] == "jax" for v in uses)


class JaxFunctionLayer:
    """f(x, w, b, **settings) -> y, its gradients from jax.vjp."""

    has_bias = True  # a layer built without a bias is skipped (its reason says so), not checked

    def __init__(self, function: Any, name: str, arrays: JaxArrays, declared: Declarations) -> None:
        from convgrad.frameworks.torch_module import NOT_FOR_FRAMEWORKS

        declared.refuse(NOT_FOR_FRAMEWORKS, "a jax function, whose backward jax runs")
        self.declared = declared
        self.name = name
        self.function = function
        primal = getattr(function, "fun", None) or inspect.unwrap(function)  # custom_vjp keeps it as .fun
        shown = getattr(primal, "__name__", name)
        parameters = list(inspect.signature(primal).parameters.values())
        self._settings = {
            p.name: p.default for p in settings_after(parameters, name, shown) if setting_of(p.name) is not None
        }
        self._what = shown
        self._arrays = arrays

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        taken = {s for s in map(setting_of, self._settings) if s is not None}
        return declared_refusal(self.name, self.declared, geometry) or untaken_setting(taken, geometry, self._what)

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        return None  # one function: its bwd (or jax's derivative) belongs to it

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        return self._arrays.value(self._bound(settings), (x, w, b))

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        return self._arrays.gradients(self._bound(settings), dy, (x, w, b))

    def live(self, geometry: LayerGeometry, w: np.ndarray, b: np.ndarray, variant: Variant) -> LiveLayer:
        return stream_of(self, geometry, w, b, variant)

    def _bound(self, settings: dict[str, Any]) -> Any:
        keywords = {
            p: settings["groups"] if setting_of(p) == "groups"
            else setting_value(settings[setting_of(p) or ""], default, per_axis=True)
            for p, default in self._settings.items()
        }
        return lambda x, w, b: self.function(x, w, b, **keywords)
