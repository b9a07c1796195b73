"""How a framework layer's own parameter names are read as conv settings and constructor arguments.

A torch.autograd.Function's forward, a jax function or a Module's constructor names its settings
in its own words (`pad`, `strides`, `in_ch`); this is the one list of the words recognised, and how
settings are handed to such a layer: one int when every axis agrees (what most layers take),
else a tuple per axis.
"""

from __future__ import annotations

import inspect
from typing import Any, Collection, Optional

from convgrad.errors import ImplementationError, literal
from convgrad.geometry import LayerGeometry, format_shape
from convgrad.adapters.functions import NEUTRAL, SETTING_NAMES

__all__ = ["undeclared_rank", "NAMES", "setting_of", "setting_value", "untaken_setting", "settings_after"]

# Parameter names by what they mean; the first of each is torch's own.
NAMES = {
    "in_channels": ("in_channels", "in_ch", "in_chans", "c_in", "input_channels", "n_in"),
    "out_channels": ("out_channels", "out_ch", "out_chans", "c_out", "output_channels", "n_out", "filters",
                     "num_filters", "n_filters"),
    "kernel_size": ("kernel_size", "kernel", "k", "ksize", "filter_size"),
    "stride": ("stride", "strides", "window_strides"),
    "padding": ("padding", "pad"),
    "dilation": ("dilation", "rhs_dilation"),
    "groups": ("groups", "feature_group_count"),
    "bias": ("bias", "use_bias"),
}


def setting_of(parameter: str) -> Optional[str]:
    """Which conv setting a parameter name means, if any."""
    return next((s for s in SETTING_NAMES if parameter in NAMES[s]), None)


def setting_value(values: Any, default: Any = None, *, per_axis: bool = False) -> Any:
    """One int when every axis agrees, else the tuple. A parameter whose default is a tuple or list
    gets a tuple always, as does any parameter without an int default when `per_axis` (jax's lax
    takes sequences: a jax layer mostly hands its settings straight to it)."""
    if isinstance(values, int):
        values = (values,)
    values = tuple(values)
    if isinstance(default, (tuple, list)) or (per_axis and not isinstance(default, int)):
        return values
    return values[0] if len(set(values)) == 1 else values


def untaken_setting(taken: Collection[str], geometry: LayerGeometry, what: str) -> Optional[str]:
    """Why a layer taking only the settings `taken` cannot run `geometry`, or None."""
    for setting, values in geometry.conv_settings().items():
        per_axis = values if isinstance(values, tuple) else (values,)
        if setting not in taken and any(v != NEUTRAL[setting] for v in per_axis):
            return f"{what} takes no {setting}, and this case needs {setting} {format_shape(per_axis)}"
    return None


def settings_after(parameters: list[inspect.Parameter], name: str, what: str) -> list[inspect.Parameter]:
    """The parameters after x, w and b; raises ImplementationError if one of them is required but
    names no setting (nothing convgrad could pass)."""
    rest = parameters[3:]
    unknown = [
        p.name for p in rest
        if setting_of(p.name) is None and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if unknown:
        raise ImplementationError(
            f"{literal(name)}: {literal(what)} needs {literal(', '.join(unknown))}, which is no conv setting; "
            f"name its settings {', '.join(SETTING_NAMES)} (or give the others defaults)",
            parameter="impl",
        )
    return rest


def undeclared_rank(target: Any, geometry: LayerGeometry, what: str) -> Optional[str]:
    """Why `target` cannot run `geometry` if it declares `spatial_dims` (an int or a tuple) without its rank."""
    declared = getattr(target, "spatial_dims", None)
    if declared is None:
        return None
    dims = (declared,) if isinstance(declared, int) else tuple(declared)
    if geometry.ndim in dims:
        return None
    return f"{what} handles {' or '.join(f'{d}-D' for d in dims)} layers only (spatial_dims) and this case is {geometry.ndim}-D"
