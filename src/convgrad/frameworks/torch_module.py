"""A torch layer checked as it is written: a `torch.nn.Module` (an instance, or a class built per
case) or a `torch.autograd.Function` subclass, with gradients from its own backward via autograd.

- An nn.Module instance is called with the checker's w and b in place of its own weight and
  bias (`torch.func.functional_call`), so its forward, its hooks and whatever autograd.Function
  it wraps are what is checked. It can only run the cases it was built for: the channels, kernel
  shape, stride, padding ('valid', 'same' or ints), dilation and groups it holds are read from it,
  and any other case is skipped with what differs.
- An nn.Module class (torch.nn.Conv2d itself, or a subclass) is built for each case from the
  constructor parameters it has (in_channels, out_channels, kernel_size, stride, padding,
  dilation, groups, bias, or their common short names); a setting it does not take skips the
  cases that need it, and a case its constructor raises on fails with that error.
- An autograd.Function is called as Fn.apply(x, w, b, ...), its further forward parameters filled
  by name (stride, padding or pad, dilation, groups).

Parameters are recognised by name: weight (weights, kernel, w, W, filters) and bias (b, biases).
Settings go in as one int when every axis has the same value, else as a tuple per axis.
"""

from __future__ import annotations

import copy
import inspect
import sys
from typing import Any, Callable, Optional, Sequence

import numpy as np

from convgrad.errors import ImplementationError, literal
from convgrad.geometry import LayerGeometry, format_shape
from convgrad.harness.guard import ImplementationFailure, describe_exception
from convgrad.adapters.live import Mode, Variant
from convgrad.adapters.protocol import Unsupported
from convgrad.adapters.declare import Declarations, declared_refusal
from convgrad.adapters.vocabulary import (
    NAMES,
    NEUTRAL,
    SETTING_NAMES,
    setting_of,
    setting_value,
    settings_after,
    untaken_setting,
)
from convgrad.frameworks.tensors import DEFAULT_DEVICE, TorchArrays

__all__ = ["torch_implementation", "ModuleLayer", "ModuleClassLayer", "FunctionLayer"]

WEIGHT_NAMES = ("weight", "weights", "kernel", "kernels", "w", "W", "filters")
# Declarations about how a NumPy layer is called; a framework layer is called through its framework.
NOT_FOR_FRAMEWORKS = ("forward", "backward", "backward_parts", "backward_returns", "bias_shape", "attributes",
                      "set_weights", "build", "tensor")
BIAS_NAMES = ("bias", "b", "biases")


def torch_implementation(
    target: Any, name: str, device: str = DEFAULT_DEVICE, declared: Declarations = Declarations()
) -> Optional["_TorchLayer"]:
    """The layer for `target` if it is a torch Module (instance or class) or autograd.Function, else None.

    torch is not imported here: an object from torch can only exist once torch is imported."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    if inspect.isclass(target):
        if issubclass(target, torch.autograd.Function):
            return FunctionLayer(target, name, TorchArrays(device), declared)
        if issubclass(target, torch.nn.Module):
            return ModuleClassLayer(target, name, TorchArrays(device), declared)
    elif isinstance(target, torch.nn.Module):
        return ModuleLayer(target, name, TorchArrays(device), declared)
    return None


class _TorchLayer:
    """What the three kinds share: a function of (x, w, b) per case, differentiated by autograd."""

    has_bias = True  # False for a module built without a bias: db is convgrad's own, shown as "no bias"

    def __init__(self, name: str, arrays: TorchArrays, declared: Declarations) -> None:
        self.name = name
        self._arrays = arrays
        declared.refuse(NOT_FOR_FRAMEWORKS, "a torch layer, whose backward autograd runs")
        self.declared = declared

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        return (declared_refusal(self.name, self.declared, geometry, kernel_size_passed=isinstance(self, ModuleClassLayer))
                or self._cannot_run(geometry))

    def _cannot_run(self, geometry: LayerGeometry) -> Optional[str]:
        raise NotImplementedError

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        return None  # one forward, differentiated by autograd: the two always compute the same layer

    def forward(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        return self._arrays.value(self._function(x, w, settings), (x, w, b))

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        return self._arrays.gradients(self._function(x, w, settings), dy, (x, w, b))

    def _function(self, x: np.ndarray, w: np.ndarray, settings: dict[str, Any]) -> Callable[..., Any]:
        raise NotImplementedError

    def live(self, geometry: LayerGeometry, w: np.ndarray, b: np.ndarray, variant: Variant) -> "TorchLive":
        """A new instance with parameters of its own, trained as a torch loop trains it (TorchLive)."""
        if variant.learning_rate:
            raise Unsupported(f"{self.name} takes no learning rate: an optimiser steps torch layers")
        return TorchLive(self._arrays, *self._instance(geometry, variant), geometry, w, b, variant)

    def _instance(self, geometry: LayerGeometry, variant: Variant) -> tuple[Callable[..., Any], Any, Optional[str], Optional[str]]:
        """(call, module, weight name, bias name) of a new instance; call(x, w, b) for a Function,
        call(x) for a module (None when the instance is a Function)."""
        raise NotImplementedError


class TorchLive:
    """A torch layer as a training loop holds it: parameters made once (a module's own, given the
    values of w and b) and updated in place under no_grad; forward recording in train mode, its
    output what the step uses; backward by autograd with every .grad cleared first (zero_grad);
    eval mode without recording. Frozen inputs do not require a gradient, and a gradient the
    layer drops for an input that does comes back None."""

    has_modes = True  # evaluation (no recording, eval()) is another path than training

    def __init__(
        self, arrays: TorchArrays, call: Callable[..., Any], module: Any, weight_name: Optional[str],
        bias_name: Optional[str], geometry: LayerGeometry, w: np.ndarray, b: np.ndarray, variant: Variant,
    ) -> None:
        torch = arrays.torch
        self.geometry, self._arrays, self._call, self._module, self._variant = geometry, arrays, call, module, variant
        if module is not None:
            assert weight_name is not None
            self._w = module.get_parameter(weight_name)
            own_bias = module.get_parameter(bias_name) if bias_name is not None else None
        else:
            self._w = arrays.tensor(np.array(w, copy=True))
            own_bias = arrays.tensor(np.array(b, copy=True)) if variant.bias else None
        # A bias-free module gets convgrad's bias added to its output (db is convgrad's, as in the check).
        self._added = arrays.tensor(np.array(b, copy=True)) if module is not None and bias_name is None and variant.bias else None
        self._b = own_bias
        with torch.no_grad():
            self._w.copy_(torch.from_numpy(np.asarray(w)))
            if own_bias is not None:
                own_bias.copy_(torch.from_numpy(np.asarray(b)))
        for tensor, name in ((self._w, "w"), (self._b, "b"), (self._added, "b")):
            if tensor is not None:
                tensor.requires_grad_(name not in variant.frozen)
        self._recorded: Optional[tuple[Any, Any]] = None
        self._updates = 0

    def forward(self, x: np.ndarray, *, mode: Mode = "train", record: bool = True) -> Any:
        torch, module = self._arrays.torch, self._module
        x_tensor = self._arrays.tensor(x, grad=record and "x" not in self._variant.frozen)
        if module is not None:
            module.train(mode == "train")
        with self._arrays.one_thread(), torch.set_grad_enabled(record):
            y = self._call(x_tensor) if module is not None else self._call(x_tensor, self._w, self._b)
            if self._added is not None and isinstance(y, torch.Tensor):
                y = y + self._added.reshape(1, -1, *([1] * (y.dim() - 2)))
        if record:
            self._recorded = (y, x_tensor)
        return self._arrays.numpy(y)

    def backward(self, dy: np.ndarray) -> Any:
        if self._recorded is None:
            raise RuntimeError("backward before forward")
        y, x_tensor = self._recorded
        leaves = (x_tensor, self._w, self._b if self._added is None else self._added)
        for leaf in leaves[1:]:
            if leaf is not None:
                leaf.grad = None
        with self._arrays.one_thread():
            y.backward(self._arrays.tensor(dy))
        return tuple(
            None if leaf is None or not leaf.requires_grad else self._arrays.numpy(leaf.grad) for leaf in leaves
        )

    def update(self, w: np.ndarray, b: Optional[np.ndarray]) -> None:
        """In place, as optimisers do it: every other update under no_grad (as torch.optim does,
        which bumps the tensor's version), the others through `.data` (as older optimisers and
        weight averaging do, which leaves the version alone)."""
        torch = self._arrays.torch
        self._updates += 1
        bias = self._b if self._added is None else self._added
        pairs = [(self._w, w)] + ([(bias, b)] if bias is not None and b is not None else [])
        with torch.no_grad():
            for parameter, values in pairs:
                target = parameter if self._updates % 2 else parameter.data
                target.copy_(torch.from_numpy(np.asarray(values)))

    def held(self) -> tuple[Any, Any]:
        bias = self._b if self._added is None else self._added
        return self._arrays.numpy(self._w).copy(), (None if bias is None else self._arrays.numpy(bias).copy())


class ModuleLayer(_TorchLayer):
    """An nn.Module instance, its own weight and bias replaced by the checker's on every call."""

    def __init__(self, module: Any, name: str, arrays: TorchArrays, declared: Declarations) -> None:
        super().__init__(name, arrays, declared)
        self.module = module.to(arrays.device)
        self.weight_name, self.bias_name = _parameter_names(module, name)
        self.has_bias = self.bias_name is not None

    def _cannot_run(self, geometry: LayerGeometry) -> Optional[str]:
        mismatch = _module_mismatch(self.module, self.weight_name, self.bias_name, geometry, self.name)
        # An instance holds one layer: its class builds one for every case.
        return None if mismatch is None else f"{mismatch} (pass its class to build one per case)"

    def _function(self, x: np.ndarray, w: np.ndarray, settings: dict[str, Any]) -> Callable[..., Any]:
        return _functional(self._arrays.torch, self.module, self.weight_name, self.bias_name)

    def _instance(self, geometry: LayerGeometry, variant: Variant) -> tuple[Callable[..., Any], Any, Optional[str], Optional[str]]:
        if not variant.bias:
            raise Unsupported(f"{self.name} is one module, built with its bias")
        module = copy.deepcopy(self.module)  # a second layer of the same class: class-level state is shared
        module = module.to(dtype=getattr(self._arrays.torch, geometry.dtype))
        return module, module, self.weight_name, self.bias_name


class ModuleClassLayer(_TorchLayer):
    """An nn.Module class, built for each case from the constructor parameters it takes."""

    def __init__(self, cls: Any, name: str, arrays: TorchArrays, declared: Declarations) -> None:
        super().__init__(name, arrays, declared)
        self.cls = cls
        self._parameters = _constructor_parameters(cls, name)
        self._built: dict[tuple[Any, ...], tuple[Any, str, Optional[str]]] = {}

    def _cannot_run(self, geometry: LayerGeometry) -> Optional[str]:
        untaken = untaken_setting(self._parameters, geometry, f"{self.cls.__name__}()")
        if untaken is not None:
            return untaken
        try:
            module, weight_name, bias_name = self._build(
                geometry.channels, geometry.kernel_shape, geometry.conv_settings(), geometry.dtype
            )
        except Exception:
            return None  # not a declared limit: the case runs, and fails with what the constructor raised
        if bias_name is None:  # it was asked for a bias: a db of convgrad's own would pass as the layer's
            return f"{self.cls.__name__}(bias=True) has no bias parameter; pass an instance to check it without one"
        return _module_mismatch(module, weight_name, bias_name, geometry, self.cls.__name__)

    def _function(self, x: np.ndarray, w: np.ndarray, settings: dict[str, Any]) -> Callable[..., Any]:
        module, weight_name, bias_name = self._build(x.shape[1], w.shape, settings, str(x.dtype))
        return _functional(self._arrays.torch, module, weight_name, bias_name)

    def _instance(self, geometry: LayerGeometry, variant: Variant) -> tuple[Callable[..., Any], Any, Optional[str], Optional[str]]:
        if not variant.bias and "bias" not in self._parameters:
            raise Unsupported(f"{self.cls.__name__}() takes no bias parameter")
        try:
            module, weight_name, bias_name = self._construct(
                geometry.channels, geometry.kernel_shape, geometry.conv_settings(), geometry.dtype, variant.bias
            )
        except Exception as error:
            raise ImplementationFailure(f"creating {self.cls.__name__} raised {describe_exception(error)}") from error
        return module, module, weight_name, bias_name

    def _build(
        self, channels: int, kernel_shape: Sequence[int], settings: Any, dtype: str
    ) -> tuple[Any, str, Optional[str]]:
        key = (channels, tuple(kernel_shape), *(_as_key(dict(settings)[s]) for s in SETTING_NAMES), dtype)
        if key not in self._built:
            self._built[key] = self._construct(channels, kernel_shape, settings, dtype)
        return self._built[key]

    def _construct(
        self, channels: int, kernel_shape: Sequence[int], settings: Any, dtype: str, bias: bool = True
    ) -> tuple[Any, str, Optional[str]]:
        """A new module; raising here fails the case with the class's own error."""
        settings = dict(settings)
        values = {
            "in_channels": channels,
            "out_channels": kernel_shape[0],
            "kernel_size": setting_value(tuple(kernel_shape[2:])),
            "bias": bias,
            **{s: setting_value(settings[s]) for s in SETTING_NAMES},
        }
        arguments = {name: values[meaning] for meaning, name in self._parameters.items()}
        module = self.cls(**arguments)
        torch = self._arrays.torch
        module = module.to(device=self._arrays.device, dtype=getattr(torch, dtype))
        return (module, *_parameter_names(module, self.name))


class FunctionLayer(_TorchLayer):
    """A torch.autograd.Function: Fn.apply(x, w, b, ...), its backward run by autograd."""

    def __init__(self, function: Any, name: str, arrays: TorchArrays, declared: Declarations) -> None:
        super().__init__(name, arrays, declared)
        self.function = function
        parameters = list(inspect.signature(function.forward).parameters.values())[1:]  # after ctx
        positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if len(positional) < 3:
            raise ImplementationError(
                f"{literal(name)}: {function.__name__}.forward takes {len(positional)} tensors after ctx; "
                "checking it needs forward(ctx, x, weight, bias, ...)",
                parameter="impl",
            )
        self._extra = settings_after(positional, name, f"{function.__name__}.forward")
        self._bias_default = positional[2].default  # None: the Function also runs without a bias

    def _cannot_run(self, geometry: LayerGeometry) -> Optional[str]:
        taken = {s for s in (setting_of(p.name) for p in self._extra) if s is not None}
        return untaken_setting(taken, geometry, f"{self.function.__name__}.forward")

    def _function(self, x: np.ndarray, w: np.ndarray, settings: dict[str, Any]) -> Callable[..., Any]:
        extra = []
        for parameter in self._extra:
            setting = setting_of(parameter.name)
            extra.append(parameter.default if setting is None else setting_value(settings[setting]))
        return lambda x_, w_, b_: self.function.apply(x_, w_, b_, *extra)

    def _instance(self, geometry: LayerGeometry, variant: Variant) -> tuple[Callable[..., Any], Any, Optional[str], Optional[str]]:
        if not variant.bias and self._bias_default is not None:
            raise Unsupported(f"{self.function.__name__}.forward's bias has no default None")
        return self._function(np.empty(0), np.empty(0), dict(geometry.conv_settings())), None, None, None


def _as_key(values: Any) -> Any:
    return tuple(values) if isinstance(values, (tuple, list)) else values


def _parameter_names(module: Any, name: str) -> tuple[str, Optional[str]]:
    """The dotted names of the module's weight and bias parameters; no bias is None."""
    parameters = [n for n, _ in module.named_parameters()]

    def find(names: Sequence[str]) -> list[str]:
        return [n for n in parameters if n.rsplit(".", 1)[-1] in names]

    weights, biases = find(WEIGHT_NAMES), find(BIAS_NAMES)
    if len(weights) != 1 or len(biases) > 1:
        found = ", ".join(parameters) or "none"
        what = "no weight parameter" if not weights else "several weight or bias parameters"
        raise ImplementationError(
            f"{literal(name)} has {what} (its parameters: {literal(found)}); a conv module checked "
            f"directly holds one weight (named {', '.join(WEIGHT_NAMES[:3])}, ...) and at most one bias",
            parameter="impl",
        )
    return weights[0], (biases[0] if biases else None)


def _functional(torch: Any, module: Any, weight_name: str, bias_name: Optional[str]) -> Callable[..., Any]:
    def call(x: Any, w: Any, b: Any) -> Any:
        if bias_name is None:  # a bias-free module: convgrad adds b, and its db is not the module's
            y = torch.func.functional_call(module, {weight_name: w}, (x,))
            return y + b.reshape(1, -1, *([1] * (y.dim() - 2)))
        return torch.func.functional_call(module, {weight_name: w, bias_name: b}, (x,))

    return call


def _module_mismatch(
    module: Any, weight_name: str, bias_name: Optional[str], geometry: LayerGeometry, what: str
) -> Optional[str]:
    """Why a built module cannot run `geometry`, or None."""
    weight = module.get_parameter(weight_name)
    if weight.dim() - 2 != geometry.ndim:
        return f"{what} has {weight.dim() - 2}-D weights ({format_shape(tuple(weight.shape))}) and this case is {geometry.ndim}-D"
    if tuple(weight.shape) != geometry.w_shape:
        return (
            f"{what} has weight {format_shape(tuple(weight.shape))} and this case needs "
            f"{format_shape(geometry.w_shape)}"
        )
    mode = getattr(module, "padding_mode", "zeros")
    if mode != "zeros":
        return f"{what} pads with {mode!r}; the reference convolution pads with zeros"
    for setting, needed in geometry.conv_settings().items():
        held = _held_setting(getattr(module, setting, NEUTRAL[setting]), setting, geometry)
        needed_values: tuple[int, ...] = needed if isinstance(needed, tuple) else (needed,)
        if held is not None and held != needed_values:
            return f"{what} has {setting} {format_shape(held)} and this case needs {setting} {format_shape(needed_values)}"
    return None


def _held_setting(value: Any, setting: str, geometry: LayerGeometry) -> Optional[tuple[int, ...]]:
    """A module's stride/padding/... per axis; 'valid' and 'same' as the padding they mean here."""
    axes = 1 if setting == "groups" else geometry.ndim
    if isinstance(value, str):
        if value == "valid":
            return (0,) * axes
        if value == "same":  # torch: stride 1, total padding d*(k-1), the odd one on the end
            totals = [d * (k - 1) for d, k in zip(geometry.dilation, geometry.kernel_size)]
            if any(t % 2 for t in totals):
                return None  # asymmetric: no symmetric padding says it; the module's own output decides
            return tuple(t // 2 for t in totals)
        return None
    if isinstance(value, int):
        return (value,) * axes
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        return None


def _constructor_parameters(cls: Any, name: str) -> dict[str, str]:
    """What each constructor parameter of `cls` means: {meaning: its own name}."""
    try:
        parameters = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    found = {}
    for meaning, names in NAMES.items():
        own = next((n for n in names if n in parameters), None)
        if own is not None:
            found[meaning] = own
    unknown = [
        n for n, p in parameters.items()
        if n not in found.values() and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    missing = [m for m in ("in_channels", "out_channels", "kernel_size") if m not in found]
    if unknown or missing:
        raise ImplementationError(
            f"{literal(name)}: convgrad builds {cls.__name__} for each case by its constructor parameters, "
            f"and cannot tell what {literal(', '.join(unknown or missing))} means; name them in_channels, "
            "out_channels, kernel_size, stride, padding, dilation, groups (or point {impl} at an instance)",
            parameter="impl",
        )
    return found
