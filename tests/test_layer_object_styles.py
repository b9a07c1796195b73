"""Layer objects as people write them, checked as they are, with at most a declaration: a
constructor taking the weights, methods named their own way, parameters in dicts or parameter
objects, backwards returning their gradients in any of the usual shapes, weights made in a build
step or the first forward, settings as tuples, and the hints a crashing class gets.

The layers are in tests/implementations/objects_*.py; each correct one passes, each wrong variant
fails naming the tensor. Two representative classes run the standard suite; the rest one case."""

from __future__ import annotations

import json
import os
import textwrap
from typing import Any, Optional

import numpy as np
import pytest
from click.testing import CliRunner

from checking import check_layer
from convgrad.adapters.adapter import Adapter
from convgrad.adapters.declare import parse_declarations
from convgrad.adapters.layer_objects import StatefulCalls, is_layer_class
from convgrad.adapters.loading import as_implementation
from convgrad.cli import cli
from convgrad.errors import ImplementationError
from convgrad.geometry import LayerGeometry, resolve_geometry
from convgrad.options import CheckOptions
from convgrad.report import CaseReport
from convgrad.run.case import run_case

HERE = os.path.dirname(os.path.abspath(__file__))
LAYERS = os.path.join(HERE, "implementations")
STANDARD = os.path.join(os.path.dirname(HERE), "configs", "standard.toml")

# A case with stride, padding and a batch, with a square and with a rectangular kernel.
SQUARE = resolve_geometry("3x7x6", "4x3x3x3", batch=2, stride=2, padding=1)
STRIDED = resolve_geometry("3x7x6", "4x3x3x2", batch=2, stride=2, padding=1)


def layer(spec: str) -> str:
    return os.path.join(LAYERS, spec)


def check(spec: str, geometry: LayerGeometry = SQUARE, config: Optional[str] = None) -> CaseReport:
    return run_case(geometry, as_implementation(layer(spec), config=config), CheckOptions())


def wrong_tensors(case: CaseReport) -> set[str]:
    return {t.name for t in case.tensors if not t.passed}


def standard_suite(spec: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["check", "--impl", layer(spec), "--config", STANDARD, "--json"])
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == 0, [c["reason"] for c in report["cases"] if c["status"] not in ("passed", "skipped")]
    return report


def toml(tmp_path: Any, text: str) -> str:
    path = tmp_path / "conv.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def stateful(spec: str) -> StatefulCalls:
    implementation = as_implementation(layer(spec))
    assert isinstance(implementation, Adapter) and isinstance(implementation.calls, StatefulCalls)
    return implementation.calls


# --- 1. a constructor that takes the weights ----------------------------------------------------


@pytest.mark.slow
def test_a_layer_built_from_its_weights_passes_the_standard_suite_with_rectangular_kernels():
    """ConvLayer(W, b, stride, pad) declares one_int; it reads the kernel off W, so rectangular
    kernels are not skipped (takes_kernel_size), while per-axis strides are."""
    report = standard_suite("objects_weights_given.py:ConvLayer")
    passed = [c for c in report["cases"] if c["status"] == "passed"]
    assert len(passed) >= 15
    assert any(len(set(c["settings"]["kernels"][2:])) > 1 for c in passed)
    skipped = {c["skipped"] for c in report["cases"] if c["skipped"]}
    assert any("(one_int) and this case needs stride" in s for s in skipped)
    assert not any("needs kernel size" in s for s in skipped)

    wrong = check("objects_weights_given.py:ConvLayerStrideIgnoredInDx", STRIDED)
    assert wrong_tensors(wrong) == {"dX"} and wrong.failure_summary.startswith("dX: 252 of 252 coordinates differ, "
                                                                               "looks like the stride was ignored")


def test_each_object_is_built_with_the_weights_of_its_own_case():
    calls = stateful("objects_weights_given.py:ConvLayer")
    assert calls.constructor == {"weights": "W", "bias_values": "b", "stride": "stride", "padding": "pad"}
    assert not calls.takes_kernel_size
    geometry = resolve_geometry("3x5x5", "2x3x3x3")
    w, b = np.random.default_rng(1).standard_normal((2, 3, 3, 3)), np.arange(2.0)
    layer_ = calls._layer({"padding": 0}, geometry, w, b)
    assert np.array_equal(layer_.W, w) and np.array_equal(layer_.b, b)
    assert layer_.W is not w  # its own copy: later weights reach it through the attribute
    moved = w + 1.0
    calls.forward(np.zeros((1, 3, 5, 5)), moved, b, {"padding": 0}, geometry)
    assert np.array_equal(layer_.W, moved)


def test_weights_named_filters_and_biases_found_declared_or_renamed(tmp_path):
    assert check("objects_weights_given.py:Conv2d").passed
    config = toml(tmp_path, '[impl]\nconstructor = {weights = "filters", bias_values = "biases"}\n')
    assert check("objects_weights_given.py:Conv2d", config=config).passed
    assert check("objects_weights_given.py:ConvFromBank").passed  # bank, offsets, step, border: declared

    wrong = check("objects_weights_given.py:Conv2dBiasAveraged")
    assert wrong_tensors(wrong) == {"db"} and "average over the batch" in wrong.failure_summary


# --- 2. methods named their own way -------------------------------------------------------------


@pytest.mark.parametrize("cls", ["Conv2D", "TrainingFlagConv", "KeywordFlagConv"])
def test_declared_methods_with_fixed_arguments_are_called_as_declared(cls):
    case = check(f"objects_named_methods.py:{cls}", SQUARE)
    assert case.passed, case.failure_summary
    assert "network scenario" in {c.part for c in case.calls}


def test_a_wrong_layer_with_declared_methods_fails_naming_the_tensor():
    case = check("objects_named_methods.py:Conv2DKernelFlippedInDx", resolve_geometry("3x6x6", "4x3x3x3"))
    assert wrong_tensors(case) == {"dX"} and case.failure_summary.startswith("dX: 108 of 108 coordinates differ, "
                                                                             "looks like the kernels were not rotated")


class _TrainingFlag:
    def __init__(self, in_channels, out_channels, kernel_size):
        self.W = np.zeros((out_channels, in_channels, kernel_size, kernel_size))
        self.b = np.zeros(out_channels)

    def pass_forward(self, x, training):
        return x

    def pass_backward(self, dout):
        return dout


def test_a_declared_forward_makes_a_layer_class_when_its_call_fits():
    def declared(**keys: Any) -> Any:
        return parse_declarations(keys, "test")

    assert not is_layer_class(_TrainingFlag)
    assert not is_layer_class(_TrainingFlag, declared(forward="pass_forward(x, True)"))  # no method backward
    assert is_layer_class(_TrainingFlag, declared(forward="pass_forward(x, True)", backward="pass_backward"))
    assert is_layer_class(_TrainingFlag, declared(forward="pass_forward(x, training=False)", backward="pass_backward"))

    class NoFlagGiven(_TrainingFlag):
        CONVGRAD = {"forward": "pass_forward", "backward": "pass_backward"}

    with pytest.raises(ImplementationError, match=r"NoFlagGiven.pass_forward cannot be called as pass_forward\(x\); "
                                                   r"declare the arguments it takes"):
        as_implementation(NoFlagGiven)


def test_a_declared_forward_handed_what_a_layer_object_never_gets_is_an_error():
    class HandedW(_TrainingFlag):
        CONVGRAD = {"forward": "pass_forward(x, w)", "backward": "pass_backward"}

    with pytest.raises(ImplementationError, match=r"forward is handed x only, not w"):
        as_implementation(HandedW)


# --- 3. parameters and gradients in dicts -------------------------------------------------------


@pytest.mark.parametrize("cls", ["Conv2D", "ConvLayer", "ShortDictConv"])
def test_parameters_and_gradients_kept_in_dicts(cls):
    case = check(f"objects_param_dicts.py:{cls}", SQUARE)
    assert case.passed, case.failure_summary


def test_dict_entries_found_and_declared(tmp_path):
    assert {r: str(p) for r, p in stateful("objects_param_dicts.py:Conv2D").attributes.items()} == {
        "weights": "parameters.W", "bias": "parameters.b"}
    config = toml(tmp_path, '[impl]\nattributes = {weights = "params.W", grad_weights = "grads.dW"}\n')
    assert check("objects_param_dicts.py:ConvLayer", config=config).passed

    wrong = check("objects_param_dicts.py:ConvLayerBiasMean", resolve_geometry("3x6x6", "4x3x3x3", batch=2))
    assert wrong_tensors(wrong) == {"db"} and "db is 1/32 of the right values everywhere" in wrong.failure_summary


# --- 4. what backward returns -------------------------------------------------------------------


@pytest.mark.parametrize("cls", ["ConvGradsList", "ConvAllThree", "ConvGradsDict", "ConvGradsFirst"])
def test_gradients_returned_in_the_usual_shapes_or_a_declared_one(cls):
    case = check(f"objects_returns.py:{cls}", SQUARE)
    assert case.passed, case.failure_summary


def test_a_return_that_does_not_fit_the_declared_shape_says_so(tmp_path):
    config = toml(tmp_path, '[impl]\nbackward_returns = "dx, (dw, db)"\n')
    case = check("objects_returns.py:ConvGradsFirst", resolve_geometry("3x6x6", "4x3x3x3"), config=config)
    assert wrong_tensors(case) == {"dX", "dK", "db"}
    assert "where backward_returns declares (dw, db)" in case.failure_summary

    wrong = check("objects_returns.py:ConvGradsListBatchMean")
    assert wrong_tensors(wrong) == {"dK"} and "dK is 1/2 of the right values everywhere" in wrong.failure_summary


# --- 5. weights made after the constructor ------------------------------------------------------


@pytest.mark.parametrize("cls, step", [("BuiltConv", "build(input_shape=in_shape)"), ("PreppedConv", "prep(x=x)"),
                                       ("LazyConv", None), ("AllocatedConv", "allocate(x_shape)")])
def test_weights_made_by_a_build_step_or_the_first_forward(cls, step):
    calls = stateful(f"objects_build_step.py:{cls}")
    assert (None if calls.build is None else str(calls.build)) == step
    assert calls.lazy == (cls == "LazyConv")
    case = check(f"objects_build_step.py:{cls}", SQUARE)
    assert case.passed, case.failure_summary


def test_gradient_buffers_made_in_the_first_forward_and_added_to_fail_at_the_second_call():
    case = check("objects_build_step.py:LazyConvAccumulatingBias", resolve_geometry("3x6x6", "4x3x3x3", batch=2))
    assert all(t.passed for t in case.tensors)
    second = next(c for c in case.failing_calls if c.name == "second call")
    assert "the second backward returned db plus the first call's db" in (second.reason or "")


def test_a_layer_without_weights_after_any_step_is_told_to_declare_build():
    class WeightsFromAFile:
        def __init__(self, in_channels, out_channels, kernel_size):
            self.W = None

        def load(self, path):
            self.W = np.load(path)

        def forward(self, x):
            return self.W

        def backward(self, dout):
            return dout

    with pytest.raises(ImplementationError, match=r"has no weights .*also after a build step or a first forward; .*"
                                                   r"build = \"build\(in_shape\)\""):
        as_implementation(WeightsFromAFile)


# --- 6. and 7. settings and kernel sizes as tuples or one int -----------------------------------


def test_tuple_defaults_get_tuples_and_per_axis_layers_get_them_for_every_rank():
    assert check("objects_kernel_tuples.py:Conv2d", resolve_geometry("3x7x6", "4x3x3x3", batch=2, stride=(2, 1))).passed
    for geometry in (resolve_geometry("2x9", "3x2x3", batch=2, stride=2),
                     resolve_geometry("2x5x6x4", "3x2x3x2x2", padding=1), STRIDED):
        case = check("objects_kernel_tuples.py:ConvND", geometry)
        assert case.passed, case.failure_summary

    wrong = check("objects_kernel_tuples.py:Conv2dStrideIgnoredInDk", resolve_geometry("3x7x6", "4x3x3x2", stride=(2, 1)))
    assert wrong_tensors(wrong) == {"dK"} and wrong.failure_summary.startswith("dK: 72 of 72 coordinates differ, "
                                                                               "looks like the stride was ignored")


def test_one_int_skips_rectangular_kernels_only_where_the_constructor_takes_the_kernel_size():
    given = check("objects_weights_given.py:ConvLayer", resolve_geometry("3x7x6", "4x3x3x2"))
    assert given.skipped is None and given.passed
    sized = check("scratch_conv.py:Conv2D", resolve_geometry("3x7x6", "4x3x3x2"))
    assert sized.skipped is not None and "(one_int) and this case needs kernel size 3x2" in sized.skipped


# --- 8. hints for a class that crashes on shapes it was not written for -------------------------


@pytest.mark.parametrize("in_shape, kernels, hint", [
    ("3x6x6x6", "4x3x3x3x3", "this case is 3-D: if the layer handles 2-D layers only, declare spatial_dims = (2,)"),
    ("3x9", "4x3x3", "this case is 1-D: if the layer handles 2-D layers only, declare spatial_dims = (2,)"),
    ("3x6x6", "4x3x3x2", "this kernel is 3x2: if the layer takes square kernels only, declare square_kernels = true"),
])
def test_a_2d_class_crashing_on_other_shapes_is_told_what_to_declare(in_shape, kernels, hint):
    assert check("objects_crash_hints.py:Conv2D", resolve_geometry("3x6x6", "4x3x3x3")).passed
    case = check("objects_crash_hints.py:Conv2D", resolve_geometry(in_shape, kernels))
    assert case.tensor("O").status == "error" and case.reason is not None
    assert "raised" in case.reason and hint in case.reason


def test_a_class_returning_a_wrong_shape_on_another_rank_is_not_told_to_declare_2d():
    assert check("objects_crash_hints.py:ConvAnyRank", resolve_geometry("3x6x6x6", "4x3x3x3x3")).passed
    case = check("objects_crash_hints.py:ConvAnyRank", resolve_geometry("3x4x5x6", "4x3x3x3x3"))
    assert case.reason is not None and "forward returned shape 1x4x2x2x2 for the output" in case.reason
    assert "spatial_dims" not in case.reason


# --- 9. parameter objects with .data and .grad, and zero_grad -----------------------------------


@pytest.mark.slow
def test_parameter_objects_cleared_by_zero_grad_pass_the_standard_suite():
    report = standard_suite("objects_parameters.py:Conv2d")
    case = next(c for c in report["cases"] if c["status"] == "passed")
    assert {"no bias", "training steps"} <= {c["name"] for c in case["calls"]}
    calls = stateful("objects_parameters.py:Conv2d")
    assert (str(calls.attributes["weights"]), str(calls.attributes["bias"]), calls.zero_grad) == (
        "weight.data", "bias.data", "zero_grad")

    wrong = check_layer(resolve_geometry("3x6x6", "4x3x3x3", batch=2), layer("objects_parameters.py:Conv2dZeroGradForgetsBias"))
    assert all(t.passed for t in wrong.tensors)
    second = next(c for c in wrong.failing_calls if c.name == "second call")
    assert "the second backward returned db plus the first call's db" in (second.reason or "")
