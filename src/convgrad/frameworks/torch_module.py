"""A torch layer checked as it is written: a `torch.nn.Module` (an instance, or a class built per
case) or a `torch.autograd.Function` subclass, with gradients from its own backward via autograd.

- An nn.Module instance is called with the checker's w and b in place of its own weight and
  bias, which may sit anywhere below it (`self.conv.weight`), so its forward, its hooks, a
  checkpoint it runs and whatever autograd.Function it wraps are what is checked. It can only run
  the cases it was built for: the channels, kernel shape, stride, padding ('valid', 'same' or
  ints), dilation and groups it holds are read from it (from the module holding the weight
  first), and any other case is skipped with what differs.
- An nn.Module class (torch.nn.Conv2d itself, a subclass, or a module wrapping one) is built for
  each case from the constructor parameters it has (frameworks/signatures.py); a setting it does
  not take skips the cases that need it, and a case its constructor raises on fails with that error.
- An autograd.Function is called as Fn.apply(x, w, b, ...), or Fn.apply(x, w, ...) for a bias-free
  one, its further forward parameters filled by name (stride, padding or pad, dilation, groups).

Parameters are recognised by name: weight (weights, kernel, w, W, filters) and bias (b, biases).
A layer without a bias (a Function without one, a module holding none, or one declared bias =
false) gets convgrad's bias added to its output: O, dX and dK are checked, and db is "no bias". A
module class asked for a bias that holds none fails: its bias would never be trained.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import sys
from dataclasses import replace
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from convgrad.errors import ImplementationError
from convgrad.geometry import LayerGeometry, format_padding, format_shape, same_padding
from convgrad.adapters.failure import ImplementationFailure, describe_exception
from convgrad.adapters.live import Mode, Variant
from convgrad.adapters.protocol import Unsupported, call_geometry
from convgrad.adapters.declare import Declarations, declared_refusal
from convgrad.adapters.vocabulary import NEUTRAL, ROLES, SETTING_NAMES, setting_of, untaken_setting
from convgrad.adapters.hints import trial_runs, with_crash_reason
from convgrad.frameworks.signatures import (
    NOT_FOR_FRAMEWORKS,
    constructor_parameters,
    forward_parameters,
    handed,
    with_bias_added,
)
from convgrad.frameworks.tensors import DEFAULT_DEVICE, Cotangents, Tangents, TorchArrays

__all__ = ["torch_implementation", "ModuleLayer", "ModuleClassLayer", "FunctionLayer"]

WEIGHT_NAMES = ("weight", *(n for n in ROLES["weights"] if n != "weight"))  # torch's own name first
BIAS_NAMES = ("bias", *(n for n in ROLES["bias"] if n != "bias"))


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

    has_bias = True  # False for a layer without a bias: db is convgrad's own, shown as "no bias"

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
        geometry = call_geometry(x, w, settings)

        def value() -> Any:
            with contextlib.ExitStack() as held:
                return self._arrays.value(self._function(geometry, held), (x, w, b))

        return with_crash_reason("forward", geometry, self.declared, value, lambda plain: trial_runs(self, "forward", plain))

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray, **settings: Any) -> Any:
        geometry = call_geometry(x, w, settings)

        def gradients() -> Any:
            with contextlib.ExitStack() as held:  # the checker's tensors stay in the module until backward is done
                return self._arrays.gradients(self._function(geometry, held), dy, (x, w, b))

        return with_crash_reason("backward", geometry, self.declared, gradients,
                                 lambda plain: trial_runs(self, "backward", plain))

    def backward_derivatives(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, b: np.ndarray,
                             cotangents: Cotangents, **settings: Any) -> Any:
        with contextlib.ExitStack() as held:  # the checker's tensors stay in the module while autograd runs
            function = self._function(call_geometry(x, w, settings), held)
            return self._arrays.backward_derivatives(function, dy, (x, w, b), cotangents)

    def jvp(self, x: np.ndarray, w: np.ndarray, b: np.ndarray, tangents: Tangents, **settings: Any) -> Any:
        with contextlib.ExitStack() as held:
            return self._arrays.jvp(self._function(call_geometry(x, w, settings), held), (x, w, b), tangents)

    def _function(self, geometry: LayerGeometry, held: contextlib.ExitStack) -> Callable[..., Any]:
        """f(x, w, b) for `geometry`; what it puts into a module stays there until `held` closes."""
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
            if self._added is not None:
                y = with_bias_added(y, self._added)
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
        declared.refuse(("constructor",), "a torch module instance, which is built already")
        self.module = module.to(arrays.device)
        names = _parameter_names(module, type(module).__name__)
        if isinstance(names, str):
            raise ImplementationError(f"{name}: {names}", parameter="impl")
        self.weight_name, self.bias_name = names
        if not declared.bias and self.bias_name is not None:
            raise ImplementationError(
                f"{declared.source} declares bias = false, and {name} holds a bias parameter "
                f"({self.bias_name}); remove the declaration, or build the module without a bias",
                parameter="impl",
            )
        self.has_bias = self.bias_name is not None

    def unsupported(self, geometry: LayerGeometry) -> Optional[str]:
        # Its padding is compared per side with the case's ('same' pads the odd one after, as a case may):
        # it pads as it holds, so padding per side is no declaration of its.
        declared = replace(self.declared, uneven_padding=True)
        return declared_refusal(self.name, declared, geometry, kernel_size_passed=False) or self._cannot_run(geometry)

    def _cannot_run(self, geometry: LayerGeometry) -> Optional[str]:
        mismatch = _module_mismatch(self.module, self.weight_name, geometry, self.name, unknown_is_neutral=True)
        # An instance holds one layer: its class builds one for every case.
        return None if mismatch is None else f"{mismatch} (pass its class to build one per case)"

    def _function(self, geometry: LayerGeometry, held: contextlib.ExitStack) -> Callable[..., Any]:
        return _functional(self.module, self.weight_name, self.bias_name, held)

    def _instance(self, geometry: LayerGeometry, variant: Variant) -> tuple[Callable[..., Any], Any, Optional[str], Optional[str]]:
        if not variant.bias and self.has_bias:
            raise Unsupported(f"{self.name} is one module, built with its bias")
        module = copy.deepcopy(self.module)  # a second layer of the same class: class-level state is shared
        module = module.to(dtype=getattr(self._arrays.torch, geometry.dtype))
        return module, module, self.weight_name, self.bias_name


class _Built(NamedTuple):
    """A module built for one case, and the dotted names of its weight and bias (None: none)."""

    module: Any
    weight_name: str
    bias_name: Optional[str]


class _NotOneConv(Exception):
    """A built module that is not one conv layer (no weight, or several): the reason, in words."""


class ModuleClassLayer(_TorchLayer):
    """An nn.Module class, built for each case from the constructor parameters it takes.

    A class taking `bias` is built with bias=True (bias=False when it declares bias = false); one
    without is checked with the bias its modules hold, or as bias-free when they hold none."""

    def __init__(self, cls: Any, name: str, arrays: TorchArrays, declared: Declarations) -> None:
        super().__init__(name, arrays, declared)
        self.cls = cls
        self._parameters = constructor_parameters(cls, name, declared)
        self._takes_bias = "bias" in self._parameters
        self.has_bias = declared.bias  # and, for a class not told, whether the module built for the case holds one
        self._built: dict[tuple[Any, ...], _Built] = {}

    def _cannot_run(self, geometry: LayerGeometry) -> Optional[str]:
        untaken = untaken_setting(set(self._parameters), geometry, f"{self.cls.__name__}()")
        if untaken is not None:
            return untaken
        try:
            built = self._build(geometry)
        except Exception:
            return None  # not a declared limit: the case runs, and fails with what the constructor raised
        if not self._takes_bias:
            self.has_bias = self.declared.bias and built.bias_name is not None
        return _module_mismatch(built.module, built.weight_name, geometry, self.cls.__name__, unknown_is_neutral=False)

    def interface_mismatch(self, geometry: LayerGeometry) -> Optional[str]:
        """A built module that cannot be checked as the layer it says it is: a failure, not a skip."""
        try:
            built = self._build(geometry)
        except _NotOneConv as reason:
            return str(reason)
        except Exception:
            return None  # the case fails with what the constructor raised
        what = self.cls.__name__
        if self._takes_bias and self.declared.bias and built.bias_name is None:
            # Its db would be convgrad's own and pass: the bias the layer was asked for is never trained.
            return (f"{what}(bias=True) holds no bias parameter, so no optimiser would train its bias; make the "
                    "bias an nn.Parameter (or declare bias = false if the layer has none)")
        if not self.declared.bias and built.bias_name is not None:
            asked = "(bias=False)" if self._takes_bias else ""
            return (f"{what}{asked} holds a bias parameter ({built.bias_name}) and the layer declares bias = false; "
                    "remove the declaration")
        return None

    def _function(self, geometry: LayerGeometry, held: contextlib.ExitStack) -> Callable[..., Any]:
        built = self._build(geometry)
        return _functional(built.module, built.weight_name, built.bias_name, held)

    def _instance(self, geometry: LayerGeometry, variant: Variant) -> tuple[Callable[..., Any], Any, Optional[str], Optional[str]]:
        if not variant.bias and self.has_bias and not self._takes_bias:
            raise Unsupported(f"{self.cls.__name__}() takes no bias parameter")
        try:
            built = self._construct(geometry, variant.bias and self.declared.bias)
        except Exception as error:
            raise ImplementationFailure(f"creating {self.cls.__name__} raised {describe_exception(error)}") from error
        return built.module, built.module, built.weight_name, built.bias_name

    def _build(self, geometry: LayerGeometry) -> _Built:
        """The module for `geometry` (any batch), built once."""
        key = (geometry.in_shape, geometry.kernel_shape, geometry.stride, geometry.padding_pairs, geometry.dilation,
               geometry.groups, geometry.dtype)
        if key not in self._built:
            self._built[key] = self._construct(geometry, self.declared.bias)
        return self._built[key]

    def _construct(self, geometry: LayerGeometry, bias: bool) -> _Built:
        """A new module; raising here fails the case with the class's own error."""
        values = {"in_channels": geometry.channels, "out_channels": geometry.filters, "bias": bias}
        arguments = {
            parameter.name: values[meaning] if meaning in values else handed(self.declared, meaning, geometry, parameter.default)
            for meaning, parameter in self._parameters.items()
        }
        torch = self._arrays.torch
        module = self.cls(**arguments).to(device=self._arrays.device, dtype=getattr(torch, geometry.dtype))
        names = _parameter_names(module, self.cls.__name__)
        if isinstance(names, str):
            raise _NotOneConv(names)
        return _Built(module, *names)


class FunctionLayer(_TorchLayer):
    """A torch.autograd.Function: Fn.apply(x, w, b, ...), or Fn.apply(x, w, ...) without a bias,
    its backward run by autograd."""

    def __init__(self, function: Any, name: str, arrays: TorchArrays, declared: Declarations) -> None:
        super().__init__(name, arrays, declared)
        declared.refuse(("constructor",), "a torch.autograd.Function, which has no constructor")
        self.function = function
        self._forward = forward_parameters(function, arrays.torch, name)
        self.has_bias = self._forward.takes_bias and declared.bias

    def _cannot_run(self, geometry: LayerGeometry) -> Optional[str]:
        taken = {s for s in (setting_of(p.name) for p in self._forward.settings) if s is not None}
        return untaken_setting(taken, geometry, f"{self.function.__name__}.forward")

    def _function(self, geometry: LayerGeometry, held: contextlib.ExitStack) -> Callable[..., Any]:
        extra = []
        for parameter in self._forward.settings:
            setting = setting_of(parameter.name)
            extra.append(parameter.default if setting is None else handed(self.declared, setting, geometry, parameter.default))
        apply = self.function.apply
        if self.has_bias:
            return lambda x, w, b: apply(x, w, b, *extra)
        if self._forward.takes_bias:  # declared bias = false: it runs without its bias, convgrad adds one
            return lambda x, w, b: with_bias_added(apply(x, w, None, *extra), b)
        return lambda x, w, b: with_bias_added(apply(x, w, *extra), b)

    def _instance(self, geometry: LayerGeometry, variant: Variant) -> tuple[Callable[..., Any], Any, Optional[str], Optional[str]]:
        if not variant.bias and self.has_bias and self._forward.bias_default is not None:
            raise Unsupported(f"{self.function.__name__}.forward's bias has no default None")
        return self._function(geometry, contextlib.ExitStack()), None, None, None


def _parameter_names(module: Any, what: str) -> tuple[str, Optional[str]] | str:
    """The dotted names of the module's weight and bias parameters (no bias: None), or why it is
    not one conv layer."""
    shapes = {n: tuple(p.shape) for n, p in module.named_parameters()}
    parameters = list(shapes)

    def find(names: tuple[str, ...]) -> list[str]:
        return [n for n in parameters if n.rsplit(".", 1)[-1] in names]

    weights, biases = find(WEIGHT_NAMES), find(BIAS_NAMES)
    if not weights:
        return (f"{what} has no weight parameter (its parameters: {', '.join(parameters) or 'none'}); a conv module "
                f"holds its kernels as an nn.Parameter named {', '.join(WEIGHT_NAMES[:3])}, ...")
    if len(weights) > 1 or len(biases) > 1:
        return (f"{what} holds several weights or biases ({', '.join(weights + biases)}), and convgrad checks one "
                "conv layer; check each conv on its own (its class, or the module holding just it)")
    # A parameter under another name (shift, offset, beta) is never taken for no bias: its gradient
    # would go unchecked. One of shape (F,) is the bias; anything else is not one conv layer.
    others = [n for n in parameters if n not in weights + biases]
    if not biases and len(others) == 1 and shapes[others[0]] == shapes[weights[0]][:1]:
        return weights[0], others[0]
    if others:
        return (f"{what} holds parameters besides its weight{' and bias' if biases else ''} "
                f"({', '.join(others)}), whose gradients convgrad would not check; check the conv on its own, or name "
                f"its bias {', '.join(BIAS_NAMES)}")
    return weights[0], (biases[0] if biases else None)


def _functional(module: Any, weight_name: str, bias_name: Optional[str], held: contextlib.ExitStack) -> Callable[..., Any]:
    """f(x, w, b): the module run with w and b as its weight and bias. They stay in the module until
    `held` closes, so that a checkpoint recomputing the forward in backward computes it with them."""
    def call(x: Any, w: Any, b: Any) -> Any:
        replaced = {weight_name: w} if bias_name is None else {weight_name: w, bias_name: b}
        held.enter_context(_replaced(module, replaced))
        y = module(x)
        return with_bias_added(y, b) if bias_name is None else y  # a bias-free module: convgrad adds b

    return call


@contextlib.contextmanager
def _replaced(module: Any, tensors: dict[str, Any]) -> Any:
    """The module's parameters (dotted names) replaced by `tensors`, restored on exit."""
    kept = []
    for dotted, tensor in tensors.items():
        path, _, leaf = dotted.rpartition(".")
        owner = module.get_submodule(path)
        kept.append((owner, leaf, owner._parameters[leaf]))
        owner._parameters[leaf] = tensor  # a plain tensor: setattr would insist on an nn.Parameter
    try:
        yield
    finally:
        for owner, leaf, own in reversed(kept):
            owner._parameters[leaf] = own


def _module_mismatch(
    module: Any, weight_name: str, geometry: LayerGeometry, what: str, *, unknown_is_neutral: bool
) -> Optional[str]:
    """Why a built module cannot run `geometry`, or None. Its settings are read from the module
    holding the weight, then from `module`; a setting neither holds is the neutral one when
    `unknown_is_neutral` (an instance), else not compared (a class built with the case's own)."""
    weight = module.get_parameter(weight_name)
    if weight.dim() - 2 != geometry.ndim:
        return f"{what} has {weight.dim() - 2}-D weights ({format_shape(tuple(weight.shape))}) and this case is {geometry.ndim}-D"
    if tuple(weight.shape) != geometry.w_shape:
        return (
            f"{what} has weight {format_shape(tuple(weight.shape))} and this case needs "
            f"{format_shape(geometry.w_shape)}"
        )
    holders = (module.get_submodule(weight_name.rpartition(".")[0]), module)
    mode = _held(holders, "padding_mode", "zeros")
    if mode != "zeros":
        return f"{what} pads with {mode!r}; the reference convolution pads with zeros"
    for setting in SETTING_NAMES:
        value = _held(holders, setting, NEUTRAL[setting] if unknown_is_neutral else None)
        if value is None:
            continue
        axes = _held_values(value, geometry.ndim) if setting != "groups" and not isinstance(value, str) else None
        if axes is not None and len(axes) != geometry.ndim:  # nn.Conv2d built with a 3-D kernel size
            return (f"{what} has {setting} {format_shape(axes)}, for {len(axes)}-D layers, and this case is "
                    f"{geometry.ndim}-D")
        if setting == "padding":
            pairs = _held_padding(value, geometry)
            if pairs is not None and pairs != geometry.padding_pairs:
                return (f"{what} has padding {_padding_text(pairs)} and this case needs padding "
                        f"{_padding_text(geometry.padding_pairs)}")
            continue
        held = _held_values(value, 1 if setting == "groups" else geometry.ndim)
        needed = (geometry.groups,) if setting == "groups" else tuple(getattr(geometry, setting))
        if held is not None and held != needed:
            return f"{what} has {setting} {format_shape(held)} and this case needs {setting} {format_shape(needed)}"
    return None


def _padding_text(pairs: tuple[tuple[int, int], ...]) -> str:
    """1x4, as the other settings are shown; per side (0,1x1) when some axis is padded unevenly."""
    before, after = [b for b, _ in pairs], [a for _, a in pairs]
    return format_shape(before) if before == after else format_padding(before, after)


def _held(holders: tuple[Any, ...], attribute: str, default: Any) -> Any:
    return next((getattr(h, attribute) for h in holders if hasattr(h, attribute)), default)


def _held_values(value: Any, axes: int) -> Optional[tuple[int, ...]]:
    """A module's stride, dilation or groups per axis; None when it is not numbers."""
    if isinstance(value, int):
        return (value,) * axes
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        return None


def _held_padding(value: Any, geometry: LayerGeometry) -> Optional[tuple[tuple[int, int], ...]]:
    """A module's padding as (before, after) per axis: 'valid', 'same' (torch's: stride 1, total
    d*(k-1), the odd one after) or ints; None when it is none of them."""
    if value == "valid":
        return ((0, 0),) * geometry.ndim
    if value == "same":  # at stride 1, TensorFlow's and torch's 'same' are one padding
        return tuple(same_padding(h, k, 1, d) for h, k, d in zip(geometry.spatial, geometry.kernel_size, geometry.dilation))
    held = _held_values(value, geometry.ndim) if not isinstance(value, str) else None
    return None if held is None else tuple((p, p) for p in held)
