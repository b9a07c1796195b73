"""`--order 2` and `--jvp`: the double backward and the forward-mode derivative of torch and jax layers.

The layers are in tests/implementations/derivative_layers_torch.py and derivative_layers_jax.py:
every one is right at first order, and each wrong one makes one mistake in its second derivatives
or its forward mode. Each correct one must pass on settings that move every index (stride,
padding, dilation, groups, batch); each wrong one must fail on the row its mistake is in, with the
reason that names the mistake, and on no other row.
"""

from __future__ import annotations

import importlib.util
import json
import os
import xml.etree.ElementTree as ElementTree

import pytest
from click.testing import CliRunner

from conftest import assert_bad_input
from convgrad.cli import cli
from convgrad.errors import SettingError
from convgrad.options import CheckOptions

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_LAYERS = os.path.join(HERE, "implementations", "derivative_layers_torch.py")
JAX_LAYERS = os.path.join(HERE, "implementations", "derivative_layers_jax.py")
STANDARD = os.path.join(os.path.dirname(HERE), "configs", "standard.toml")
SECOND_ORDER_ROWS = ["dX wrt w", "dX wrt dy", "dK wrt x", "dK wrt dy", "db wrt dy"]
FORWARD_MODE_ROWS = ["jvp x", "jvp w", "jvp b"]
# Every index moves: a strided, padded, dilated, grouped layer of two images.
MOVING = ["--in", "4x9x8", "--kernels", "6x2x3x2", "--stride", "2", "--padding", "1", "--dilation", "2",
          "--groups", "2", "--batch", "2"]
PLAIN = ["--in", "3x7x7", "--kernels", "4x3x3x3", "--padding", "1"]


# A jax function compiles for every batch size the check stacks: several seconds a case.
slow_for_jax = pytest.mark.slow


def run(*args: str):
    return CliRunner().invoke(cli, ["check", *args], env={"COLUMNS": "120"})


def one_case(spec: str, *args: str) -> tuple[int, dict]:
    result = run("--impl", spec, *args, "--json")
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)["cases"][0]


def rows(case: dict) -> dict[str, dict]:
    return {row["label"]: row for row in case["derivatives"]}


def failing(case: dict) -> list[str]:
    every = case["tensors"] + case["reference_gradients"] + case["derivatives"]
    return [row["label"] for row in every if not row["passed"]]


def kinds(case: dict, label: str) -> set[str]:
    return {d["kind"] for d in case["diagnosis"] if d["tensor"] == label}


def why(case: dict) -> str:
    """Every diagnosis in full, as the table's "why:" lines say them."""
    return " ".join(d["message"] for d in case["diagnosis"])


@pytest.mark.parametrize("layer", ["TwiceDifferentiable", "SetupContextConv", "FunctionModule"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_correct_torch_layers_pass_every_derivative(torch, layer, dtype):
    code, case = one_case(f"{TORCH_LAYERS}:{layer}", *MOVING, "--dtype", dtype, "--order", "2", "--jvp")
    assert code == 0, case["reason"]
    assert list(rows(case)) == SECOND_ORDER_ROWS + FORWARD_MODE_ROWS
    assert all(row["checked"] == row["total"] > 0 for row in case["derivatives"])
    assert case["settings"]["order"] == 2 and case["settings"]["jvp"] is True


def test_torch_builtin_and_a_module_instance_pass(torch):
    for spec, geometry in (("torch", MOVING), (f"{TORCH_LAYERS}:correct_instance", PLAIN)):
        code, case = one_case(spec, *geometry, "--order", "2", "--jvp")
        assert code == 0, case["reason"]
        assert len(case["derivatives"]) == 8


@pytest.mark.parametrize("layer, row, kind, words", [
    ("DetachedWeight", "dX wrt w", "detached_in_backward", "grad_input is computed from a detached weight"),
    ("SetupContextDetachedWeight", "dX wrt w", "detached_in_backward", "grad_input is computed from a detached weight"),
    ("DetachedWeightModule", "dX wrt w", "detached_in_backward", "grad_input is computed from a detached weight"),
    ("DetachedInput", "dK wrt x", "detached_in_backward", "grad_weight is computed from a detached input"),
    ("GradInputGradFunction", "dX wrt w", "second_order_wrong", "a custom backward of the backward"),
    ("GradInputTiedToInput", "dX wrt x", "second_order_not_zero", "a convolution's dX does not depend on x"),
])
def test_a_wrong_double_backward_fails_on_its_row_with_why(torch, layer, row, kind, words):
    code, case = one_case(f"{TORCH_LAYERS}:{layer}", *MOVING, "--order", "2")
    assert code == 1
    assert failing(case) == [row]
    assert kinds(case, row) == {kind}
    assert words in why(case)
    assert case["tensors"] and all(t["passed"] for t in case["tensors"])  # first order is right


def test_one_gradient_outside_autograd_is_named(torch):
    code, case = one_case(f"{TORCH_LAYERS}:NoGradWeightGradient", *MOVING, "--order", "2")
    assert code == 1 and failing(case) == ["dK wrt x", "dK wrt dy"]
    assert kinds(case, "dK wrt x") == kinds(case, "dK wrt dy") == {"gradient_not_differentiable"}
    assert "computes grad_weight outside autograd" in why(case)


def test_a_double_backward_off_by_a_factor_names_the_factor(torch):
    code, case = one_case(f"{TORCH_LAYERS}:GradInputGradDoubled", *PLAIN, "--order", "2")
    assert code == 1 and failing(case) == ["dX wrt w", "dX wrt dy"]
    assert kinds(case, "dX wrt w") == {"second_order_scaled"} and "off by a factor of 2 everywhere" in why(case)


def test_a_backward_outside_autograd_fails_every_row_as_not_differentiable(torch):
    code, case = one_case(f"{TORCH_LAYERS}:NumpyBackward", *PLAIN, "--order", "2")
    assert code == 1 and failing(case) == SECOND_ORDER_ROWS
    assert all(kinds(case, row) == {"backward_not_differentiable"} for row in SECOND_ORDER_ROWS)
    assert "computed outside autograd" in case["cause"]


def test_once_differentiable_is_a_failed_check_with_the_fix(torch):
    code, case = one_case(f"{TORCH_LAYERS}:OnceDifferentiable", *PLAIN, "--order", "2")
    assert code == 1 and failing(case) == SECOND_ORDER_ROWS
    assert all(row["status"] == "failed" for row in case["derivatives"])
    assert "marked @once_differentiable" in case["reason"] and "drop the decorator" in case["reason"]


@pytest.mark.parametrize("layer, failing_rows, words", [
    ("JvpForgetsWeight", ["jvp w"], "the jvp forgets w's tangent"),
    ("JvpDoubled", FORWARD_MODE_ROWS, "off by a factor of 2 everywhere"),
    ("NoJvp", FORWARD_MODE_ROWS, "define the Function's jvp staticmethod"),
    ("JvpAbsTangent", ["jvp x"], "Jacobian entries differ"),
])
def test_a_wrong_forward_mode_fails_on_its_rows(torch, layer, failing_rows, words):
    code, case = one_case(f"{TORCH_LAYERS}:{layer}", *MOVING, "--jvp")
    assert code == 1 and failing(case) == failing_rows
    assert words in why(case) + case["reason"]


def test_forward_mode_says_where_along_which_direction(torch):
    _, case = one_case(f"{TORCH_LAYERS}:JvpForgetsWeight", *PLAIN, "--jvp")
    reason = rows(case)["jvp w"]["reason"]
    assert "Jacobian entries differ" in reason and "moving w along slot " in reason
    assert rows(case)["jvp x"]["passed"] and rows(case)["jvp b"]["passed"]


@slow_for_jax
@pytest.mark.parametrize("layer", ["conv_jvp", "conv_jit"])
def test_correct_jax_functions_pass_every_derivative(jax, layer):
    code, case = one_case(f"{JAX_LAYERS}:{layer}", *MOVING, "--order", "2", "--jvp")
    assert code == 0, case["reason"]
    assert list(rows(case)) == SECOND_ORDER_ROWS + FORWARD_MODE_ROWS


@slow_for_jax
def test_a_custom_vjp_is_right_at_second_order_and_has_no_forward_mode(jax):
    code, case = one_case(f"{JAX_LAYERS}:conv_vjp", *PLAIN, "--order", "2", "--jvp")
    assert code == 1 and failing(case) == FORWARD_MODE_ROWS
    assert "define it with jax.custom_jvp" in case["reason"]


@slow_for_jax
def test_a_custom_vjp_with_a_stopped_weight_fails_dx_wrt_w(jax):
    code, case = one_case(f"{JAX_LAYERS}:conv_vjp_stopped_weight", *PLAIN, "--order", "2")
    assert code == 1 and failing(case) == ["dX wrt w"]
    assert kinds(case, "dX wrt w") == {"detached_in_backward"}


@slow_for_jax
def test_derivatives_of_a_wrong_first_order_are_not_checked(jax):
    code, case = one_case(f"{JAX_LAYERS}:conv_jvp_forgets_weight", *PLAIN, "--order", "2", "--jvp")
    assert code == 1
    assert {row["status"] for row in case["derivatives"]} == {"not checked"}
    assert "dK" in failing(case)


def test_a_bias_free_layer_has_no_db_rows(torch):
    spec = os.path.join(HERE, "implementations", "torch_styles.py") + ":ConvNoBiasFunction"
    code, case = one_case(spec, *PLAIN, "--order", "2")
    assert code == 0, case["reason"]
    assert list(rows(case)) == SECOND_ORDER_ROWS[:4]
    table = run("--impl", spec, *PLAIN, "--order", "2").output
    assert "(dX wrt x, dK wrt w)" in " ".join(table.split())


def test_the_table_shows_each_row_and_how_it_was_compared(torch):
    result = run("--impl", f"{TORCH_LAYERS}:DetachedWeight", *PLAIN, "--order", "2", "--jvp")
    assert result.exit_code == 1
    for label in SECOND_ORDER_ROWS + FORWARD_MODE_ROWS:
        assert f" {label} " in result.output
    assert "second order: " in result.output and "forward mode: " in result.output
    assert "why: dX does not change with w" in result.output
    assert "FAIL: dX wrt w does not match" in result.output


def test_junit_names_the_derivative_rows(torch, tmp_path):
    junit = tmp_path / "report.xml"
    result = run("--impl", f"{TORCH_LAYERS}:DetachedWeight", *PLAIN, "--order", "2", "--junit", str(junit))
    assert result.exit_code == 1
    text = ElementTree.parse(junit).getroot().find(".//failure").text  # type: ignore[union-attr]
    assert "dX wrt w: FAIL" in text and "why (dX wrt w): dX does not change with w" in text


def test_a_numpy_layer_asked_for_derivatives_is_bad_input():
    for flags in (["--order", "2"], ["--jvp"], ["--order", "2", "--jvp"]):
        assert_bad_input(run(*PLAIN, *flags), "is a NumPy layer, whose backward nothing can differentiate")
    assert_bad_input(run(*PLAIN, "--order", "3"), "--order")
    assert_bad_input(run(*PLAIN, "--jvp", "--no-forward-check"), "--jvp compares the forward-mode derivative")


def test_the_options_refuse_other_orders():
    for order in (0, 3, True, "2", 2.0):
        with pytest.raises(SettingError, match="order"):
            CheckOptions(order=order)  # type: ignore[arg-type]
    with pytest.raises(SettingError, match="jvp"):
        CheckOptions(jvp=1)  # type: ignore[arg-type]


def _module(path: str):
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_pytest_api_takes_order_and_jvp(torch):
    import convgrad

    layers = _module(TORCH_LAYERS)
    report = convgrad.check(layers.TwiceDifferentiable, in_shape="3x7x7", kernel_shape="4x3x3x3", padding=1, order=2,
                            jvp=True)
    assert report.passed and [t.label for t in report.derivatives] == SECOND_ORDER_ROWS + FORWARD_MODE_ROWS
    with pytest.raises(AssertionError, match="dX wrt w"):
        convgrad.assert_conv_gradients(layers.DetachedWeight, in_shape="3x7x7", kernel_shape="4x3x3x3", order=2)
    with pytest.raises(SettingError, match="NumPy layer"):
        convgrad.check("reference", in_shape="3x7x7", kernel_shape="4x3x3x3", jvp=True)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [f"{TORCH_LAYERS}:SetupContextConv", f"{TORCH_LAYERS}:FunctionModule", "torch",
                                  f"{JAX_LAYERS}:conv_jvp"])
def test_the_standard_suite_passes_with_every_derivative(spec):
    pytest.importorskip("jax" if "jax" in spec else "torch")
    result = run("--impl", spec, "--config", STANDARD, "--order", "2", "--jvp", "--json")
    assert result.exit_code == 0, result.output[-2000:]
    cases = json.loads(result.stdout)["cases"]
    checked = [c for c in cases if c["skipped"] is None]
    assert len(checked) >= 40 and all(len(c["derivatives"]) == 8 for c in checked)


def test_a_suite_file_case_by_case_in_pytest_takes_order_and_jvp(torch):
    from convgrad.testing import assert_case, suite_cases

    layers = _module(TORCH_LAYERS)
    cases = [c.values[0] for c in suite_cases(STANDARD)]
    basic = next(c for c in cases if c.name == "basic 2")
    report = assert_case(basic, layers.SetupContextConv, order=2, jvp=True)
    assert [t.label for t in report.derivatives] == SECOND_ORDER_ROWS + FORWARD_MODE_ROWS
    with pytest.raises(AssertionError, match="dX wrt w"):
        assert_case(basic, layers.SetupContextDetachedWeight, order=2)


def test_a_double_backward_right_for_each_gradient_alone_but_not_together_fails(torch):
    code, case = one_case(f"{TORCH_LAYERS}:ElifDoubleBackward", *MOVING, "--order", "2")
    assert code == 1
    assert failing(case) and all(label.startswith("dX+dK+db wrt ") for label in failing(case))
    assert all(rows(case)[label]["passed"] for label in SECOND_ORDER_ROWS)  # each alone is right
    assert kinds(case, failing(case)[0]) == {"second_order_together"}


def test_tangents_and_cotangents_written_into_fail_instead_of_passing(torch):
    code, case = one_case(f"{TORCH_LAYERS}:JvpScalesTangentInPlace", *PLAIN, "--jvp")
    assert code == 1 and failing(case) == FORWARD_MODE_ROWS
    assert "modified the tangent of x in place" in case["reason"]


def test_a_backward_that_takes_another_path_when_recorded_fails_its_call(torch):
    code, case = one_case(f"{TORCH_LAYERS}:RecordedPathWrong", *MOVING, "--order", "2")
    assert code == 1
    recorded = next(c for c in case["calls"] if c["name"] == "recorded backward")
    assert recorded["status"] == "failed" and "when recorded for differentiation" in recorded["reason"]
    assert [t["name"] for t in recorded["tensors"] if not t["passed"]] == ["db"]


@slow_for_jax
def test_a_forward_mode_rule_with_the_wrong_value_fails_its_call(jax):
    code, case = one_case(f"{JAX_LAYERS}:conv_jvp_wrong_value", *PLAIN, "--jvp")
    assert code == 1 and failing(case) == []
    output = next(c for c in case["calls"] if c["name"] == "output in forward mode")
    assert output["status"] == "failed" and "is not the layer's output" in output["reason"]


def test_derivatives_of_a_layer_that_keeps_state_are_not_checked(torch):
    """The differences assume a backward without state: after the call protocol fails, no row blames
    the double backward for it."""
    code, case = one_case(f"{TORCH_LAYERS}:AccumulatesWeightGradient", *PLAIN, "--order", "2")
    assert code == 1
    assert {r["status"] for r in case["derivatives"]} == {"not checked"}
    assert all("the backward keeps state between calls" in r["reason"] for r in case["derivatives"])


@pytest.mark.parametrize("layer, words", [
    ("DoubleBackwardRaises", "raised ValueError: double backward not implemented"),
    ("DoubleBackwardNaN", "NaN"),
    ("DoubleBackwardWrongShape", "invalid gradient"),  # torch's own check of a Function's gradient shapes
    ("DoubleBackwardWritesWeight", "modified its input w in place"),
])
def test_a_double_backward_that_misbehaves_is_a_failed_row_with_why(torch, layer, words):
    code, case = one_case(f"{TORCH_LAYERS}:{layer}", *PLAIN, "--order", "2")
    assert code == 1 and failing(case) == SECOND_ORDER_ROWS and words in case["reason"]
    assert {r["status"] for r in case["derivatives"]} == {"failed"}


@pytest.mark.parametrize("layer, words", [
    ("JvpRaises", "raised RuntimeError: jvp: unsupported"), ("JvpWrongShape", "different size"), ("JvpNaN", "NaN"),
])
def test_a_jvp_that_misbehaves_is_a_failed_row_with_why(torch, layer, words):
    code, case = one_case(f"{TORCH_LAYERS}:{layer}", *PLAIN, "--jvp")
    assert code == 1 and failing(case) == FORWARD_MODE_ROWS and words in case["reason"]
    assert {r["status"] for r in case["derivatives"]} == {"failed"}


def test_float32_rows_read_off_the_output_move_it_past_its_rounding(torch):
    """A single filter over 64 channels: O is far larger than what a bias of one moves it by."""
    for seed in ("156", "949"):
        code, case = one_case("torch", "--in", "64x8x8", "--kernels", "1x64x3x3", "--padding", "1", "--dtype",
                              "float32", "--order", "2", "--seed", seed)
        assert code == 0, case["reason"]


def test_a_framework_layer_called_through_other_layouts_is_told_to_drop_them(torch):
    assert_bad_input(run(*PLAIN, "--impl", "torch", "--weight-layout", "hwio", "--order", "2"),
                     "layouts; drop --weight-layout")
    assert_bad_input(run(*PLAIN, "--impl", "torch", "--layout", "nhwc", "--weight-layout", "hwio", "--jvp"),
                     "drop --layout and --weight-layout")


def test_a_jvp_right_along_each_tensor_alone_but_not_together_fails(torch):
    code, case = one_case(f"{TORCH_LAYERS}:JvpFromDifferencedForward", *MOVING, "--jvp")
    assert code == 1 and failing(case) == ["jvp x+w+b"]
    row = rows(case)["jvp x+w+b"]
    assert row["together"] is True and row["wrt"] == "x+w+b"
    assert kinds(case, "jvp x+w+b") == {"jvp_together"}


def test_a_memory_layout_failure_leaves_the_derivatives_checked(torch):
    code, case = one_case(f"{TORCH_LAYERS}:ViewsGradOutput", *PLAIN, "--order", "2", "--jvp")
    assert code == 1 and any(c["part"] == "call protocol" and not c["passed"] for c in case["calls"])
    assert all(row["passed"] for row in case["derivatives"]) and len(case["derivatives"]) == 8


def test_rows_left_unchecked_say_why_in_the_table(torch):
    result = run("--impl", f"{TORCH_LAYERS}:AccumulatesWeightGradient", *PLAIN, "--order", "2")
    assert result.exit_code == 1
    assert "db wrt dy: not checked: second call" in " ".join(result.output.split())
