"""torch Modules, autograd Functions and jax functions checked directly: a correct and a wrong
layer of each style, the cases a fixed module cannot run skipped with what differs, the device,
and torch or jax never imported for a NumPy layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from conftest import assert_bad_input
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry
from processes import CONVGRAD, convgrad_env
from zoo import FOLDER as ZOO

TORCH_LAYERS = os.path.join(ZOO, "torch_layers.py")
JAX_LAYERS = os.path.join(ZOO, "jax_layers.py")
STANDARD = os.path.join(os.path.dirname(ZOO), os.pardir, "configs", "standard.toml")


def run(args: list[str]):
    return CliRunner().invoke(cli, ["check", *args], env={"COLUMNS": "120"})


def check_json(args: list[str]) -> tuple[int, dict]:
    result = run([*args, "--json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.output)


def failing(case: dict) -> list[str]:
    return [t["name"] for t in case["tensors"] if not t["passed"]]


@pytest.mark.parametrize("spec, wrong", [
    ("TextbookConvFunction", []),
    ("KernelNotFlippedFunction", ["dX"]),
    ("OwnConv", []),
    ("HookScaledConv", ["dX"]),
])
def test_torch_function_and_module_classes_are_checked_through_their_own_backward(torch, spec, wrong):
    code, report = check_json(["--impl", f"{TORCH_LAYERS}:{spec}", "--in", "3x7x6", "--kernels", "4x3x3x2",
                               "--padding", "1", "--batch", "2"])
    case = report["cases"][0]
    assert case["skipped"] is None
    assert failing(case) == wrong
    assert code == (1 if wrong else 0)


@pytest.mark.parametrize("spec, wrong", [("conv", []), ("conv_without_db", ["db"]), ("plain_conv", [])])
@pytest.mark.slow
def test_jax_custom_vjp_and_plain_functions_are_checked_through_their_own_vjp(jax, spec, wrong):
    code, report = check_json(["--impl", f"{JAX_LAYERS}:{spec}", "--in", "2x6x5", "--kernels", "3x2x2x3",
                               "--stride", "2", "--padding", "1", "--dtype", "float32"])
    assert failing(report["cases"][0]) == wrong
    assert code == (1 if wrong else 0)


LAX_STYLE = """
from functools import partial
import jax
from jax import lax

def _conv(x, w, b, stride, padding):
    y = lax.conv_general_dilated(x, w, window_strides=stride, padding=[(p, p) for p in padding])
    return y + b.reshape((1, -1) + (1,) * (x.ndim - 2))

@partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def conv(x, w, b, stride, padding):
    return _conv(x, w, b, stride, padding)

def conv_fwd(x, w, b, stride, padding):
    return _conv(x, w, b, stride, padding), (x, w)

def conv_bwd(stride, padding, res, dy):
    x, w = res
    _, vjp = jax.vjp(lambda x_, w_: lax.conv_general_dilated(
        x_, w_, window_strides=stride, padding=[(p, p) for p in padding]), x, w)
    dx, dw = vjp(dy)
    return dx, dw, dy.sum(axis=(0,) + tuple(range(2, dy.ndim)))

conv.defvjp(conv_fwd, conv_bwd)
"""


@pytest.mark.slow
def test_a_jax_layer_that_hands_its_settings_to_lax_gets_them_per_axis(jax, tmp_path):
    # lax takes sequences; a custom_vjp written the usual way passes stride and padding straight on.
    path = tmp_path / "lax_style.py"
    path.write_text(LAX_STYLE)
    code, report = check_json(["--impl", f"{path}:conv", "--in", "2x6x5", "--kernels", "3x2x2x3",
                               "--stride", "2", "--padding", "1"])
    assert code == 0, report["cases"][0]["reason"]
    code, report = check_json(["--impl", f"{path}:conv", "--in", "2x6x6", "--kernels", "3x2x3x3"])
    assert code == 0, report["cases"][0]["reason"]


@pytest.mark.slow
def test_a_plain_jax_function_takes_dilation_and_groups_by_name(jax):
    code, report = check_json(["--impl", f"{JAX_LAYERS}:plain_conv", "--in", "4x9", "--kernels", "4x2x3",
                               "--dilation", "2", "--groups", "2"])
    assert code == 0 and report["cases"][0]["skipped"] is None


def test_settings_a_function_does_not_take_skip_the_case_with_the_setting_named(torch, jax):
    code, report = check_json(["--impl", f"{TORCH_LAYERS}:TextbookConvFunction", "--in", "3x7x7",
                               "--kernels", "4x3x3x3", "--stride", "2"])
    assert report["cases"][0]["skipped"] == (
        "TextbookConvFunction.forward takes no stride, and this case needs stride 2x2"
    )
    code, report = check_json(["--impl", f"{JAX_LAYERS}:conv", "--in", "4x7", "--kernels", "2x2x3", "--groups", "2"])
    assert report["cases"][0]["skipped"] == "conv takes no groups, and this case needs groups 2"


def test_a_module_instance_runs_the_case_it_was_built_for_and_skips_the_others(torch):
    code, report = check_json(["--impl", f"{TORCH_LAYERS}:conv", "--in", "3x9x9", "--kernels", "5x3x3x3",
                               "--stride", "2", "--padding", "1"])
    assert code == 0 and report["cases"][0]["skipped"] is None
    code, report = check_json(["--impl", f"{TORCH_LAYERS}:conv", "--in", "3x9x9", "--kernels", "5x3x3x3"])
    assert code == 1
    assert report["cases"][0]["skipped"].startswith(
        f"{TORCH_LAYERS}:conv has stride 2x2 and this case needs stride 1x1 (pass its class"
    )


def test_torch_conv_class_is_built_per_case_and_skips_other_ranks(torch, tmp_path):
    suite = tmp_path / "suite.toml"
    suite.write_text(textwrap.dedent("""
        [[case]]
        name = "same padding, dilated, grouped"
        in = "4x8x7"
        kernels = "6x2x3x3"
        padding = 2
        dilation = 2
        groups = 2
        batch = 2
        [[case]]
        name = "1-D"
        in = "3x9"
        kernels = "2x3x3"
    """))
    code, report = check_json(["--impl", "torch.nn:Conv2d", "--config", str(suite)])
    first, one_d = report["cases"]
    assert first["passed"] and first["skipped"] is None
    assert one_d["skipped"] == "Conv2d has 2-D weights (2x3x3x3) and this case is 1-D"
    assert code == 0


def test_a_module_with_padding_same_is_compared_with_the_padding_it_means(torch):
    import convgrad

    same = torch.nn.Conv2d(2, 3, kernel_size=(3, 5), padding="same", dilation=(1, 2))
    report = convgrad.check(same, in_shape="2x6x9", kernel_shape="3x2x3x5", padding=(1, 4), dilation=(1, 2))
    assert report.passed and report.skipped is None
    report = convgrad.check(same, in_shape="2x6x9", kernel_shape="3x2x3x5", padding=1, dilation=(1, 2))
    assert report.skipped == "Conv2d has padding 1x4 and this case needs padding 1x1 (pass its class to build one per case)"


@pytest.mark.slow
def test_a_correct_module_class_goes_green_on_the_standard_suite_with_its_limits_skipped(torch):
    code, report = check_json(["--impl", f"{TORCH_LAYERS}:OwnConv", "--config", STANDARD])
    assert code == 0
    skipped = [c["skipped"] for c in report["cases"] if c["skipped"]]
    assert report["summary"]["failed"] == 0 and report["summary"]["passed"] >= 10
    assert all("takes no dilation" in s or "takes no groups" in s or "2-D layers only" in s
               or "declare uneven_padding = true" in s for s in skipped), skipped


@pytest.mark.slow
def test_python_objects_are_recognised_without_a_file(torch, jax):
    import convgrad
    import importlib.util

    spec = importlib.util.spec_from_file_location("zoo_jax_layers", JAX_LAYERS)
    layers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(layers)
    assert not convgrad.check(layers.conv_without_db, in_shape="2x5x5", kernel_shape="2x2x3x3").passed
    assert convgrad.check(torch.nn.Conv1d, in_shape="2x9", kernel_shape="4x2x3", stride=2).passed


@pytest.mark.slow
def test_unavailable_device_is_one_line_and_exit_2(torch, jax):
    for impl in (f"{TORCH_LAYERS}:conv", "torch", "jax", f"{JAX_LAYERS}:conv"):
        result = run(["--impl", impl, "--device", "cuda", "--in", "3x9x9", "--kernels", "5x3x3x3"])
        assert_bad_input(result, "--device cuda is not available to")
    result = run(["--device", "cuda", "--in", "3x9x9", "--kernels", "5x3x3x3"])
    assert_bad_input(result, "--device cuda applies to torch and jax layers; reference runs on the CPU")


def test_layouts_are_refused_for_a_framework_layer(torch):
    result = run(["--impl", f"{TORCH_LAYERS}:conv", "--layout", "nhwc", "--in", "3x9x9", "--kernels", "5x3x3x3"])
    assert_bad_input(result, "is a framework layer, called with NC(D)HW arrays")


def test_framework_layers_that_cannot_be_called_are_bad_input(torch, tmp_path):
    path = tmp_path / "odd.py"
    path.write_text(textwrap.dedent("""
        import torch

        class Scaled(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x, w, b, scale):
                return x

        class NoWeight(torch.nn.Module):
            def forward(self, x):
                return x

        no_weight = NoWeight()

        class Builder(torch.nn.Module):
            def __init__(self, shape):
                super().__init__()
    """))
    assert_bad_input(run(["--impl", f"{path}:Scaled", "--in", "3x5x5", "--kernels", "2x3x3x3"]),
                     "Scaled.forward needs scale, which is no conv setting")
    assert_bad_input(run(["--impl", f"{path}:no_weight", "--in", "3x5x5", "--kernels", "2x3x3x3"]),
                     "has no weight parameter (its parameters: none)")
    assert_bad_input(run(["--impl", f"{path}:Builder", "--in", "3x5x5", "--kernels", "2x3x3x3"]),
                     "cannot tell what shape means")


def test_a_case_the_constructor_raises_on_fails_with_its_error(torch, tmp_path):
    path = tmp_path / "square.py"
    path.write_text(textwrap.dedent("""
        import torch

        class SquareOnly(torch.nn.Conv2d):
            def __init__(self, in_channels, out_channels, kernel_size):
                if not isinstance(kernel_size, int):
                    raise ValueError("square kernels only")
                super().__init__(in_channels, out_channels, kernel_size)
    """))
    code, report = check_json(["--impl", f"{path}:SquareOnly", "--in", "3x5x5", "--kernels", "2x3x3x2"])
    assert code == 1 and report["cases"][0]["skipped"] is None
    assert "raised ValueError: square kernels only (at square.py:7)" in report["cases"][0]["reason"]
    code, report = check_json(["--impl", f"{path}:SquareOnly", "--in", "3x5x5", "--kernels", "2x3x3x3"])
    assert code == 0


def test_a_module_without_bias_is_checked_and_its_db_row_says_no_bias(torch):
    import convgrad

    report = convgrad.check(torch.nn.Conv2d(2, 3, 3, bias=False), in_shape="2x5x5", kernel_shape="3x2x3x3")
    assert report.passed and report.skipped is None
    assert report.tensor("db").absent == "no bias"
    assert report.compared_gradients == ("dX", "dK")


def test_a_bias_free_module_with_a_wrong_backward_still_fails(torch):
    import convgrad

    class HalfInputGradient(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, grad):
            return grad * 0.5

    class NoBiasHalvedDx(torch.nn.Conv2d):
        def forward(self, x):
            return super().forward(HalfInputGradient.apply(x))

    report = convgrad.check(NoBiasHalvedDx(2, 3, 3, bias=False), in_shape="2x5x5", kernel_shape="3x2x3x3")
    assert not report.passed and [t.name for t in report.wrong] == ["dX"]


def test_a_numpy_layer_imports_neither_torch_nor_jax():
    probe = (
        "import sys; from convgrad.adapters.loading import load_implementation; "
        f"load_implementation({os.path.join(ZOO, 'student_conv.py')!r}); load_implementation('reference'); "
        "print(sorted(m for m in ('torch', 'jax') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=convgrad_env())
    assert result.stdout.strip() == "[]", result.stderr


@pytest.mark.slow
def test_the_command_line_checks_a_torch_module_in_a_child_process(torch):
    # The whole path a user takes: load in the parent, fork per case, convert, check.
    geometry = resolve_geometry("3x9x9", "5x3x3x3", stride=2, padding=1)
    result = subprocess.run(
        [*CONVGRAD, "check", "--impl", f"{TORCH_LAYERS}:conv", "--in", "3x9x9", "--kernels", "5x3x3x3",
         "--stride", "2", "--padding", "1", "--quiet"],
        capture_output=True, text=True, env=convgrad_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"in all {sum(map(_size, (geometry.x_shape, geometry.w_shape, geometry.b_shape)))} coordinates" in result.stdout


def _size(shape):
    size = 1
    for n in shape:
        size *= n
    return size


def test_the_fuzz_reproduction_carries_the_device():
    from convgrad.cli import _check_command

    geometry = resolve_geometry("3x9x9", "5x3x3x3")
    assert "--device cuda:1" in _check_command(geometry, "my_layers.py:MyConv", device="cuda:1")
    assert "--device" not in _check_command(geometry, "my_layers.py:MyConv")
