"""What the parameters of a torch or jax layer mean, and how convgrad's values are handed to them.

- A function's tensors: (x, weight, bias, settings...), or (x, weight, settings...) for a bias-free
  layer, whose third parameter already names a setting (`forward(ctx, x, weight, stride=1)`). A
  torch.autograd.Function's forward takes ctx first, unless it defines setup_context (the new style).
- A torch.nn.Module class's constructor: its parameters as declared (`constructor`), else by name
  (vocabulary.NAMES); a subclass that passes *args and **kwargs on is read through the first
  __init__ in its MRO that names them (torch's own nn.Conv2d).
- Settings and the kernel size: one int when every axis agrees, else a tuple (setting_value);
  declared one_int, one int always; declared per_axis, a tuple always; declared padding_modes,
  padding as 'valid' or 'same'; groups an int.
- A layer without a bias gets convgrad's added to its output (`with_bias_added`).
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

from convgrad.errors import ImplementationError, Parameter
from convgrad.geometry import LayerGeometry
from convgrad.adapters.declare import Declarations
from convgrad.adapters.vocabulary import NAMES, handed_over, setting_of, settings_after, takes_pairs

__all__ = ["NOT_FOR_FRAMEWORKS", "BUILT_BY", "ForwardParameters", "forward_parameters", "takes_bias", "constructor_parameters", "handed",
           "with_bias_added"]

# Declarations about how a NumPy layer is called; a framework layer is called through its framework.
NOT_FOR_FRAMEWORKS = ("forward", "backward", "backward_parts", "backward_returns", "bias_shape", "attributes",
                      "set_weights", "build", "tensor", "batched")

# What convgrad hands a torch module class's constructor (the rest of CONSTRUCTOR_MEANINGS is for layer objects).
BUILT_BY = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias")
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


class ForwardParameters(NamedTuple):
    """A function's parameters after its tensors, and whether a bias is among the tensors."""

    settings: tuple[inspect.Parameter, ...]
    takes_bias: bool
    bias_default: Any  # None: the function also runs without a bias


def takes_bias(parameters: list[inspect.Parameter]) -> bool:
    """Whether the parameter after x and weight is a bias: it is, unless it names a setting."""
    third = parameters[2] if len(parameters) > 2 else None
    return third is not None and third.kind in (third.POSITIONAL_ONLY, third.POSITIONAL_OR_KEYWORD) and (
        setting_of(third.name) is None
    )


def forward_parameters(function: Any, torch: Any, name: str) -> ForwardParameters:
    """The parameters of a torch.autograd.Function's forward; raises ImplementationError when it
    takes fewer than two tensors."""
    new_style = getattr(function, "setup_context", None) is not getattr(torch.autograd.Function, "setup_context", None)
    parameters = list(inspect.signature(function.forward).parameters.values())[0 if new_style else 1:]
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2:
        after = "" if new_style else " after ctx"
        written = "forward(x, weight, bias, ...) with setup_context" if new_style else "forward(ctx, x, weight, bias, ...)"
        raise ImplementationError(
            f"{name}: {function.__name__}.forward takes {len(positional)} tensors{after}; checking it "
            f"needs {written} (or no bias, for a bias-free layer)",
            parameter="impl",
        )
    bias = takes_bias(positional)
    settings = settings_after(positional, name, f"{function.__name__}.forward", first=3 if bias else 2)
    return ForwardParameters(tuple(settings), bias, positional[2].default if bias else None)


def constructor_parameters(cls: Any, name: str, declared: Declarations) -> dict[str, inspect.Parameter]:
    """What each constructor parameter of `cls` means: {meaning: the parameter}; raises
    ImplementationError for a parameter convgrad cannot fill, or a declared one it does not take."""
    parameters, open_ended = _constructor_signature(cls)
    foreign = [m for m in declared.constructor if m not in BUILT_BY]
    if foreign:
        raise ImplementationError(
            f"{name}: {declared.source} declares constructor {', '.join(foreign)}, which "
            f"convgrad does not hand a torch module; map only {', '.join(BUILT_BY)}",
            parameter="impl",
        )
    found: dict[str, inspect.Parameter] = {}
    for meaning, own in declared.constructor.items():
        if own in parameters:
            found[meaning] = parameters[own]
        elif open_ended:  # **kwargs takes it on
            found[meaning] = inspect.Parameter(own, inspect.Parameter.KEYWORD_ONLY)
        else:
            raise ImplementationError(
                f"{name}: {declared.source} declares constructor {meaning} = "
                f"{own!r}, and {cls.__name__}() takes no {own} (it takes "
                f"{', '.join(parameters) or 'nothing'}); name one of its parameters",
                parameter="impl",
            )
    for meaning in BUILT_BY:
        taken = {p.name for p in found.values()}
        automatic = next((n for n in NAMES[meaning] if n in parameters and n not in taken), None)
        if meaning not in found and automatic is not None:
            found[meaning] = parameters[automatic]
    taken = {p.name for p in found.values()}
    unknown = [n for n, p in parameters.items() if n not in taken and p.default is p.empty]
    missing = [m for m in ("in_channels", "out_channels", "kernel_size") if m not in found]
    if unknown or missing:
        raise ImplementationError(
            f"{name}: convgrad builds {cls.__name__} for each case by its constructor parameters, "
            f"and cannot tell what {', '.join(unknown or missing)} means; name them in_channels, "
            "out_channels, kernel_size, stride, padding, dilation, groups, or declare constructor = "
            '{in_channels = "...", ...} (or point ', Parameter("impl"), " at an instance)",
            parameter="impl",
        )
    return found


def _constructor_signature(cls: Any) -> tuple[dict[str, inspect.Parameter], bool]:
    """The named constructor parameters of `cls`, and whether it also takes any keyword (**kwargs
    to the end). An __init__ passing *args or **kwargs on adds the next one's in its MRO."""
    named: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        try:
            parameters = list(inspect.signature(init).parameters.values())[1:]  # after self
        except (TypeError, ValueError):
            return named, True
        for parameter in parameters:
            if parameter.kind not in _VARIADIC:
                named.setdefault(parameter.name, parameter)
        if not any(p.kind in _VARIADIC for p in parameters):
            return named, False
    return named, True


def handed(declared: Declarations, setting: str, geometry: LayerGeometry, default: Any = None, *,
           sequences: bool = False) -> Any:
    """A setting (stride, padding, dilation, groups) or the kernel size as the layer takes it.
    `sequences`: a parameter without an int default gets a tuple (jax's lax takes sequences)."""
    if setting == "groups":
        return geometry.groups
    if setting == "padding" and declared.padding_modes is not None:
        return declared.padding_word(geometry)  # unsupported() skipped the cases it is None
    if setting == "padding" and (declared.uneven_padding or takes_pairs(default)):
        return geometry.padding_pairs  # a layer that takes pairs gets them in every case
    values = geometry.kernel_size if setting == "kernel_size" else getattr(geometry, setting)
    return handed_over(values, default, one_int=declared.one_int, per_axis=declared.per_axis, sequences=sequences)


def with_bias_added(y: Any, b: Any) -> Any:
    """A bias-free layer's output (a torch tensor or jax array) plus convgrad's bias b: db is then
    convgrad's own. No b (a network layer without one): y as it is; no array: as it is, for the guard."""
    if b is None or not hasattr(y, "ndim"):
        return y
    return y + b.reshape((1, -1) + (1,) * (y.ndim - 2))
