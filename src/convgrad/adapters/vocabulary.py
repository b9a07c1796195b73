"""convgrad's one vocabulary for other people's layers: what their parameters, attributes and
layouts are called, and how settings are handed to them.

Every calling style reads names from here: a keyword function's `s` or `pad`, a layer class's
constructor `n_filters`, a torch Module's `in_chans`, the attribute `dW` or the dict entry
`params["W"]`. A name means the same thing in every style; declarations (declare.py) name what
this table does not know.
"""

from __future__ import annotations

import inspect
from typing import Any, Collection, Literal, Optional, get_args

from convgrad.errors import ImplementationError
from convgrad.geometry import LayerGeometry, format_shape

__all__ = [
    "SETTING_NAMES", "NEUTRAL", "NAMES", "ROLES", "CONTAINERS", "LEARNING_RATE", "PLACEHOLDERS",
    "PARAMETER_FIELDS", "ZERO_GRAD", "BUILD_METHODS",
    "Layout", "WeightLayout", "LAYOUTS", "WEIGHT_LAYOUTS", "CONSTRUCTOR_MEANINGS",
    "setting_of", "meaning_of", "setting_value", "handed_over", "takes_pairs", "untaken_setting", "settings_after",
]

SETTING_NAMES = ("stride", "padding", "dilation", "groups")
NEUTRAL = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1}  # what a layer without the setting does

# Parameter names by what they mean, most common first (the first is torch's own).
NAMES: dict[str, tuple[str, ...]] = {
    "in_channels": ("in_channels", "in_ch", "in_chans", "in_c", "c_in", "cin", "n_in", "num_in", "input_channels",
                    "in_depth", "n_c", "channels", "n_channels", "num_channels", "in_features", "in_dim", "inC"),
    "out_channels": ("out_channels", "out_ch", "out_chans", "out_c", "c_out", "cout", "n_out", "num_out",
                     "output_channels", "filters", "num_filters", "n_filters", "nb_filters", "n_f", "out_depth",
                     "out_dim", "outC"),
    "kernel_size": ("kernel_size", "kernel", "ksize", "k", "filter_size", "kernel_shape", "f", "size", "field"),
    "stride": ("stride", "strides", "s", "window_strides"),
    "padding": ("padding", "pad", "p", "pad_size", "pads"),
    "dilation": ("dilation", "dilation_rate", "rhs_dilation"),
    "groups": ("groups", "feature_group_count"),
    "bias": ("bias", "use_bias"),  # a constructor's flag: with or without a bias
    "in_shape": ("input_shape", "in_shape"),  # (C, *spatial) of one image, or (*spatial, C) channels last
    "weights": ("W", "w", "weight", "weights", "kernel", "kernels", "filters", "K"),  # a constructor taking them
    "bias_values": ("b", "B", "biases"),
}
# What a layer class's constructor can be told, in convgrad's words.
CONSTRUCTOR_MEANINGS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                        "in_shape", "weights", "bias", "bias_values")

# Where a layer object keeps its parameters and their gradients: attribute names, or keys of a dict
# held in one of CONTAINERS (`self.params["W"]`, `self.grads["dW"]` or `self.grads["W"]`).
ROLES: dict[str, tuple[str, ...]] = {
    "weights": ("W", "w", "weights", "weight", "kernel", "kernels", "filters", "K"),
    "bias": ("b", "bias", "biases", "B"),
    "grad_weights": ("dW", "dw", "grad_W", "grad_w", "dweights", "dweight", "d_weights", "grad_weights",
                     "grad_weight", "weights_grad", "weight_grad", "W_grad", "dK", "dkernel", "dkernels",
                     "kernel_grad", "grad_kernel", "dfilters", "filters_grad", "weights_gradient", "weight_gradient"),
    "grad_bias": ("db", "grad_b", "dbias", "d_bias", "dbiases", "grad_bias", "bias_grad", "b_grad", "dB",
                  "biases_grad", "grad_biases", "bias_gradient", "biases_gradient"),
}
CONTAINERS: dict[str, tuple[str, ...]] = {
    "parameters": ("params", "parameters", "param", "weights"),
    "gradients": ("grads", "gradients", "grad", "dparams", "d_params", "param_grads", "dparam"),
}
LEARNING_RATE = ("lr", "learning_rate", "eta", "alpha", "step_size")  # a backward that also takes a step
# A parameter a layer object holds as an object of its own: where its value and its gradient are
# (`self.W.data`, `self.W.grad`), and the method that clears gradients a backward accumulates.
PARAMETER_FIELDS: dict[str, tuple[str, ...]] = {"value": ("data", "value", "val"), "gradient": ("grad", "gradient")}
ZERO_GRAD = ("zero_grad", "zero_grads", "zerograd", "clear_grad", "clear_grads", "clear_gradients", "zero_gradients",
             "reset_grad", "reset_grads", "reset_gradients")
# A layer object's step that makes its weights after the constructor (`layer.build(input_shape)`).
BUILD_METHODS = ("build", "prep", "prepare", "initialize", "init_params", "init_weights", "initialize_weights", "setup")

# The names a declared call (`pass_forward(x, True)`) may use for the values convgrad hands over.
PLACEHOLDERS: dict[str, tuple[str, ...]] = {
    "x": ("x", "X", "inputs", "input", "a_prev", "A_prev"),
    "dy": ("dy", "dout", "d_out", "grad", "grad_output", "delta", "dY", "dA", "dZ", "error", "output_gradient"),
    "w": ("w", "W", "weights", "weight", "kernel"),
    "b": ("b", "bias"),
    "cache": ("cache",),
    "lr": LEARNING_RATE,
    "in_shape": ("in_shape", "input_shape"),
    "x_shape": ("x_shape", "batch_shape"),
    "in_channels": ("in_channels",),
    "out_channels": ("out_channels",),
    "kernel_size": ("kernel_size",),
    **{setting: (setting,) for setting in SETTING_NAMES},  # a function's settings, as convgrad hands them over
}

Layout = Literal["nchw", "nhwc"]  # channels first or last, for any number of spatial axes
# (F, C/g, *k), (*k, C/g, F), or (C/g, F, *k): channels in first, as some engines and transposed convs keep them
WeightLayout = Literal["oihw", "hwio", "iohw"]
LAYOUTS: tuple[Layout, ...] = get_args(Layout)
WEIGHT_LAYOUTS: tuple[WeightLayout, ...] = get_args(WeightLayout)


def meaning_of(parameter: str, meanings: Collection[str] = tuple(NAMES)) -> Optional[str]:
    """What a parameter name means among `meanings`, if any."""
    return next((m for m in meanings if parameter in NAMES[m]), None)


def setting_of(parameter: str) -> Optional[str]:
    """Which conv setting (stride, padding, dilation, groups) a parameter name means, if any."""
    return meaning_of(parameter, SETTING_NAMES)


def setting_value(values: Any, default: Any = None, *, per_axis: bool = False) -> Any:
    """One int when every axis agrees, else the tuple. A parameter whose default is a tuple or list
    gets a tuple always, as does any parameter without an int default when `per_axis` (jax's lax
    takes sequences; a layer declared per_axis takes tuples)."""
    if isinstance(values, int):
        values = (values,)
    values = tuple(values)
    if isinstance(default, (tuple, list)) or (per_axis and not isinstance(default, int)):
        return values
    return values[0] if len(set(values)) == 1 else values


def handed_over(values: Any, default: Any = None, *, one_int: bool = False, per_axis: bool = False,
                sequences: bool = False) -> Any:
    """A setting or kernel size as a layer takes it, the one rule for every style: declared
    one_int, one int (declared_refusal skipped the cases whose axes differ); declared per_axis, a
    tuple; else by the parameter's `default` (setting_value; `sequences`: a tuple unless it
    defaults to an int)."""
    values = (values,) if isinstance(values, int) else tuple(values)
    if one_int:
        return values[0] if len(set(values)) == 1 else values
    if per_axis:
        return values
    return setting_value(values, default, per_axis=sequences)


def takes_pairs(default: Any) -> bool:
    """Whether a padding parameter's default is a (before, after) pair per axis: ((0, 0), (0, 0))."""
    return isinstance(default, (tuple, list)) and len(default) > 0 and all(
        isinstance(d, (tuple, list)) and len(d) == 2 for d in default)


def untaken_setting(taken: Collection[str], geometry: LayerGeometry, what: str) -> Optional[str]:
    """Why a layer taking only the settings `taken` cannot run `geometry`, or None. (Whether it
    takes padding that differs before and after is declared: declare.declared_refusal.)"""
    for setting, values in geometry.conv_settings().items():
        per_axis = values if isinstance(values, tuple) else (values,)
        if setting not in taken and any(v != NEUTRAL[setting] for v in per_axis):
            shown = geometry.padding_shown if setting == "padding" else format_shape(per_axis)
            return f"{what} takes no {setting}, and this case needs {setting} {shown}"
    return None


def settings_after(parameters: list[inspect.Parameter], name: str, what: str, first: int = 3) -> list[inspect.Parameter]:
    """The parameters after the `first` tensors (x, w and b); raises ImplementationError if one of
    them is required but names no setting (nothing convgrad could pass)."""
    rest = parameters[first:]
    unknown = [
        p.name for p in rest
        if setting_of(p.name) is None and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if unknown:
        raise ImplementationError(
            f"{name}: {what} needs {', '.join(unknown)}, which is no conv setting; "
            f"name its settings {', '.join(SETTING_NAMES)} (or give the others defaults)",
            parameter="impl",
        )
    return rest
