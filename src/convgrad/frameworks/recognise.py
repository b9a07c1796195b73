"""Layers written in torch or jax, recognised by what they are and checked through their framework.

`framework_implementation` is the one place `as_implementation` asks: a torch.nn.Module (instance
or class) or torch.autograd.Function goes to frameworks/torch_module.py, a jax function to
frameworks/jax_function.py; anything else is a NumPy layer for the adapter. Neither framework is
imported unless the object comes from it. A framework layer takes NC(D)HW arrays and OI(D)HW
weights, as its framework's conv does: another layout, given or declared, is refused.
"""

from __future__ import annotations

from typing import Any, Optional

from convgrad.errors import Parameter, SettingError
from convgrad.adapters.declare import Declarations
from convgrad.adapters.protocol import Implementation, differentiable
from convgrad.options import CheckOptions
from convgrad.frameworks.tensors import DEFAULT_DEVICE

__all__ = ["framework_implementation", "refuse_device", "refuse_undifferentiable"]


def framework_implementation(
    target: Any, name: str, *, layout: Optional[str] = None, weight_layout: Optional[str] = None,
    device: str = DEFAULT_DEVICE, declared: Declarations = Declarations(),
) -> Optional[Implementation]:
    """The torch or jax layer for `target`, or None if it is neither."""
    from convgrad.frameworks.jax_function import jax_implementation
    from convgrad.frameworks.torch_module import torch_implementation

    found: Optional[Implementation] = torch_implementation(target, name, device, declared) or jax_implementation(
        target, name, device, declared
    )
    if found is not None and (declared.layout or "nchw", declared.weight_layout or "oihw") != ("nchw", "oihw"):
        declared.refuse(("layout", "weight_layout"), "a framework layer, called with NC(D)HW arrays and OI(D)HW weights")
    if found is not None and (layout or "nchw", weight_layout or "oihw") != ("nchw", "oihw"):
        raise SettingError(
            f"{name} is a framework layer, called with NC(D)HW arrays and OI(D)HW weights as "
            "torch.nn.functional.conv2d takes them; drop ", Parameter("layout", layout), " and ",
            Parameter("weight_layout", weight_layout),
        )
    return found


def refuse_device(device: str, name: str) -> None:
    """A NumPy layer runs where NumPy does: any device but the CPU is bad input for it."""
    if device != DEFAULT_DEVICE:
        raise SettingError(
            Parameter("device", device), f" applies to torch and jax layers; {name} runs on the CPU with NumPy; drop ",
            Parameter("device"),
        )


def refuse_undifferentiable(implementation: Implementation, options: CheckOptions) -> None:
    """`--order 2` and `--jvp` differentiate the layer with its framework: a NumPy layer has none,
    and a framework layer called through other layouts is called through convgrad's adapter."""
    asked: list[Parameter] = [Parameter("order", 2)] if options.order == 2 else []
    asked += [Parameter("jvp")] if options.jvp else []
    if not asked or differentiable(implementation) is not None:
        return
    both: tuple[str | Parameter, ...] = (asked[0], " and ", asked[1]) if len(asked) > 1 else (asked[0],)
    verb = "differentiate" if len(asked) > 1 else "differentiates"
    target = getattr(implementation, "target", None)
    if differentiable(target) is not None:  # a built-in given --layout or --weight-layout
        given = [Parameter(name) for name, plain in (("layout", "nchw"), ("weight_layout", "oihw"))
                 if getattr(implementation, name, plain) != plain]
        drop: tuple[str | Parameter, ...] = (given[0], " and ", given[1]) if len(given) > 1 else tuple(given)
        raise SettingError(
            *both, f" {verb} {implementation.name} in its own NC(D)HW and OI(D)HW layouts; drop ", *drop,
        )
    raise SettingError(
        *both, f" {verb} the layer with torch's autograd or jax, and {implementation.name} is a NumPy layer, whose "
        "backward nothing can differentiate; check a torch or jax layer, or drop ", *both,
    )
