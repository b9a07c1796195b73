"""A jax function checked as it is written: `f(x, w, b, ...) -> y`, differentiated by jax.vjp.

A `jax.custom_vjp` function is checked through its own bwd; a `jax.jit` function or a plain
function of jax arrays (one whose module imports jax) through the derivative jax computes. The
parameters after x, w and b (after x and w for a bias-free `f(x, w, stride=1)`, which gets
convgrad's bias added) are filled by name (stride, padding or pad, dilation, groups, ...);
settings go in as a tuple per axis unless the default is an int (lax takes sequences), or as
declared (frameworks/signatures.py: `handed`); a custom_vjp takes them best as `nondiff_argnums`.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
import sys
import types
from typing import Any, Callable, Optional

import numpy as np

from convgrad.geometry import LayerGeometry
from convgrad.adapters.declare import Declarations, declared_refusal
from convgrad.adapters.vocabulary import setting_of, settings_after, takes_pairs, untaken_setting
from convgrad.adapters.live import LiveLayer, Variant
from convgrad.adapters.hints import trial_runs, with_crash_reason
from convgrad.adapters.protocol import call_geometry, stream_of
from convgrad.frameworks.signatures import NOT_FOR_FRAMEWORKS, handed, takes_bias, with_bias_added
from convgrad.frameworks.tensors import DEFAULT_DEVICE, Cotangents, JaxArrays, Tangents

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
    """f(x, w, b, **settings) -> y (or f(x, w, **settings) without a bias), its gradients from jax.vjp."""

    def __init__(self, function: Any, name: str, arrays: JaxArrays, declared: Declarations) -> None:
        declared.refuse(NOT_FOR_FRAMEWORKS + ("constructor",), "a jax function, whose backward jax runs")
        self.declared = declared
        self.name = name
        self.function = function
        primal = getattr(function, "fun", None) or inspect.unwrap(function)  # custom_vjp keeps it as .fun
        shown = getattr(primal, "__name__", name)
        parameters = list(inspect.signature(primal).parameters.values())
        self._takes_bias = takes_bias(parameters)
        # False: db is convgrad's own (the bias it adds), shown as "no bias"
        self.has_bias = self._takes_bias and declared.bias
        self._settings = {
            p.name: p.default for p in settings_after(parameters, name, shown, first=3 if self._takes_bias else 2)
            if setting_of(p.name) is not None
        }
        if any(setting_of(n) == "padding" and takes_pairs(d) for n, d in self._settings.items()):
            self.declared = replace(declared, uneven_padding=True)  # padding=((0, 0), (0, 0)), as lax takes it
        self._what = shown
        self._arrays = arrays

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        taken = {s for s in map(setting_of, self._settings) if s is not None}
        # The kernel size is read off w: one_int does not limit it.
        return (declared_refusal(self.name, self.declared, geometry, kernel_size_passed=False)
                or untaken_setting(taken, geometry, self._what))

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        return None  # one function: its bwd (or jax's derivative) belongs to it

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        geometry = call_geometry(x, w, settings)
        return with_crash_reason("forward", geometry, self.declared,
                                 lambda: self._arrays.value(self._bound(geometry), (x, w, b)),
                                 lambda plain: trial_runs(self, "forward", plain))

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        geometry = call_geometry(x, w, settings)
        return with_crash_reason("backward", geometry, self.declared,
                                 lambda: self._arrays.gradients(self._bound(geometry), dy, (x, w, b)),
                                 lambda plain: trial_runs(self, "backward", plain))

    def backward_derivatives(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray,
                             cotangents: Cotangents, **settings: Any) -> Any:
        return self._arrays.backward_derivatives(self._bound(call_geometry(x, w, settings)), dy, (x, w, b), cotangents)

    def jvp(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, tangents: Tangents, **settings: Any) -> Any:
        return self._arrays.jvp(self._bound(call_geometry(x, w, settings)), (x, w, b), tangents)

    def live(self, geometry: LayerGeometry, w: np.ndarray, b: np.ndarray, variant: Variant) -> LiveLayer:
        return stream_of(self, geometry, w, b, variant)

    def _bound(self, geometry: LayerGeometry) -> Callable[[Any, Any, Any], Any]:
        keywords = {
            p: handed(self.declared, setting_of(p) or "", geometry, default, sequences=True)
            for p, default in self._settings.items()
        }
        function = self.function
        if self.has_bias:
            return lambda x, w, b: function(x, w, b, **keywords)
        if self._takes_bias:  # declared bias = false: it runs without its bias, convgrad adds one
            return lambda x, w, b: with_bias_added(function(x, w, None, **keywords), b)
        return lambda x, w, b: with_bias_added(function(x, w, **keywords), b)
