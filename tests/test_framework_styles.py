"""torch and jax layers in the shapes real model code gives them, checked as they are written:
bias-free and new-style autograd Functions, nn.Conv2d subclasses passing *args on, bias-free
module classes, wrappers and checkpointed modules; every declaration applying to them; and the
declaration that skips a case named when a layer raises on it.

The layers are in tests/implementations/torch_styles.py and jax_styles.py, each correct one next
to a realistic mistake; layers that need declarations of their own are written per test."""

from __future__ import annotations

import importlib.util
import json
import os
import textwrap

import pytest
from click.testing import CliRunner

from conftest import assert_bad_input
from convgrad.cli import cli

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_STYLES = os.path.join(HERE, "implementations", "torch_styles.py")
JAX_STYLES = os.path.join(HERE, "implementations", "jax_styles.py")
STANDARD = os.path.join(os.path.dirname(HERE), "configs", "standard.toml")
UNEVEN = "takes one padding per axis, and this case pads "  # a suite's cases padded more on one side
ONE_CASE = ["--in", "3x7x7", "--kernels", "4x3x3x3", "--stride", "2", "--padding", "1", "--batch", "2"]


def run(args: list[str]):
    return CliRunner().invoke(cli, ["check", *args], env={"COLUMNS": "120"})


def check_json(*args: str) -> tuple[int, dict]:
    result = run([*args, "--json"])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def one_case(spec: str, *args: str) -> tuple[int, dict]:
    code, report = check_json("--impl", spec, *args)
    return code, report["cases"][0]


def failing(case: dict) -> list[str]:
    return [t["name"] for t in case["tensors"] if not t["passed"]]


def db_row(case: dict) -> dict:
    return next(t for t in case["tensors"] if t["name"] == "db")


def write(tmp_path, name: str, source: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def config(tmp_path, text: str) -> str:
    return write(tmp_path, "impl.toml", "[impl]\n" + text)


@pytest.mark.slow
def test_a_new_style_function_goes_green_on_the_standard_suite(torch):
    code, report = check_json("--impl", f"{TORCH_STYLES}:Conv2dFunction", "--config", STANDARD)
    assert code == 0, report["summary"]
    assert report["summary"]["passed"] >= 30
    skipped = [c["skipped"] for c in report["cases"] if c["skipped"]]
    assert skipped and all("handles 2-D layers only (spatial_dims)" in s or UNEVEN in s for s in skipped), skipped


@pytest.mark.slow
def test_a_wrapper_module_goes_green_on_the_standard_suite(torch):
    # Built per case; its settings are read off the conv it holds, not off the wrapper.
    code, report = check_json("--impl", f"{TORCH_STYLES}:ConvBlock", "--config", STANDARD)
    assert code == 0, report["summary"]
    assert report["summary"]["passed"] >= 20
    skipped = [c["skipped"] for c in report["cases"] if c["skipped"]]
    assert all(s.startswith("ConvBlock has ") and "2-D" in s or "ConvBlock() takes no " in s or UNEVEN in s
               for s in skipped), skipped


@pytest.mark.parametrize("spec, bias_free, wrong, why", [
    ("ConvNoBiasFunction", True, None, None),
    ("ConvNoBiasBatchMeanFunction", True, "dK", "1/2 of the right values everywhere (an average over the batch)"),
    ("Conv2dFunctionMeanBias", False, "db", "(an average over the output positions)"),
    ("CountingConv2d", False, None, None),
    ("ConvNoBias", True, None, None),
    ("ConvNoBiasBatchMean", True, "dK", "1/2 of the right values everywhere (an average over the batch)"),
    ("ConvBlock", False, None, None),
    ("CheckpointedConv", False, None, None),  # recomputed in backward: with the checker's weights, or dX is wrong
    ("FunctionBlock", False, None, None),
    ("MeanBiasBlock", False, "db", "(an average over the output positions)"),
])
@pytest.mark.slow
def test_each_style_is_checked_through_its_own_backward(torch, spec, bias_free, wrong, why):
    code, case = one_case(f"{TORCH_STYLES}:{spec}", *ONE_CASE)
    assert case["skipped"] is None
    assert failing(case) == ([wrong] if wrong else []), case["reason"]
    assert code == (1 if wrong else 0)
    if wrong:
        assert case["reason"].startswith(f"{wrong}: ") and why in case["reason"]
    assert db_row(case)["absent"] == ("no bias" if bias_free else None)


def test_a_conv2d_subclass_that_rewrites_forward_without_dilation_fails_on_o(torch):
    code, case = one_case(f"{TORCH_STYLES}:NoDilationConv2d", "--in", "3x9x9", "--kernels", "4x3x3x3", "--dilation", "2")
    assert code == 1 and "O" in failing(case)
    assert case["reason"] == "forward returned shape 1x4x7x7 for the output, expected 1x4x5x5"


def test_a_module_class_asked_for_a_bias_it_does_not_hold_fails(torch, tmp_path):
    code, case = one_case(f"{TORCH_STYLES}:UnregisteredBiasConv", *ONE_CASE)
    assert code == 1 and case["skipped"] is None and "db" in failing(case)
    assert case["reason"].startswith("UnregisteredBiasConv(bias=True) holds no bias parameter, so no optimiser "
                                     "would train its bias; make the bias an nn.Parameter")
    # Declared bias-free, it is built with bias=False and checked without db.
    code, case = one_case(f"{TORCH_STYLES}:UnregisteredBiasConv", "--impl-config", config(tmp_path, "bias = false"),
                          *ONE_CASE)
    assert code == 0 and db_row(case)["absent"] == "no bias"


def test_declared_bias_free_builds_a_class_without_its_bias(torch, tmp_path):
    code, case = one_case(f"{TORCH_STYLES}:FlagConv", "--impl-config", config(tmp_path, "bias = false"), *ONE_CASE)
    assert code == 0 and db_row(case)["absent"] == "no bias"
    # Built with its bias, the same class is checked with db.
    code, case = one_case(f"{TORCH_STYLES}:FlagConv", *ONE_CASE)
    assert code == 0 and db_row(case)["absent"] is None


def test_a_wrapper_of_two_convs_says_why_it_cannot_be_checked(torch):
    code, case = one_case(f"{TORCH_STYLES}:ConvPair", *ONE_CASE)
    assert code == 1 and set(failing(case)) == {"O", "dX", "dK", "db"}
    assert case["reason"] == (
        "ConvPair holds several weights or biases (conv1.weight, conv2.weight, conv1.bias, conv2.bias), and "
        "convgrad checks one conv layer; check each conv on its own (its class, or the module holding just it)"
    )


@pytest.mark.parametrize("spec, case_args, hint", [
    ("ConvNoBiasFunction", ["--in", "3x9", "--kernels", "4x3x3"],
     "; this case is 1-D: if the layer handles 2-D layers only, declare spatial_dims = (2,) and such cases are skipped"),
    ("ConvNoBiasFunction", ["--in", "2x5x5x5", "--kernels", "3x2x3x3x3"],
     "; this case is 3-D: if the layer handles 2-D layers only, declare spatial_dims = (2,) and such cases are skipped"),
    ("ConvNoBias", ["--in", "3x7x7", "--kernels", "4x3x3x2"],
     "; this kernel is 3x2: if the layer takes square kernels only, declare square_kernels = true and such cases "
     "are skipped"),
])
def test_a_layer_that_raises_where_it_runs_2d_square_kernels_is_told_what_to_declare(torch, spec, case_args, hint):
    code, case = one_case(f"{TORCH_STYLES}:{spec}", *case_args)
    assert code == 1 and "O" in failing(case)
    assert case["reason"].startswith("forward raised ") and case["reason"].endswith(hint)


def test_a_layer_that_computes_the_wrong_shape_on_3d_is_not_told_to_declare_2d(torch):
    code, case = one_case(f"{TORCH_STYLES}:HandPaddedConv", "--in", "2x5x6x6", "--kernels", "3x2x3x3x3", "--padding", "1")
    assert code == 1 and "O" in failing(case)
    assert case["reason"] == "forward returned shape 1x3x3x6x6 for the output, expected 1x3x5x6x6"
    code, case = one_case(f"{TORCH_STYLES}:HandPaddedConv", "--in", "2x7x6", "--kernels", "3x2x3x2", "--padding", "1")
    assert code == 0, case["reason"]  # per_axis: a kernel size of (3, 2), as it unpacks it


DECLARED_2D = """
import torch
import torch.nn.functional as F

spatial_dims = (2,)


def supports(geometry):
    return geometry.groups == 1 or "grouped convs are not written yet"


class Conv2dFn(torch.autograd.Function):
    CONVGRAD = {"per_axis": True}

    @staticmethod
    def forward(ctx, x, w, b, stride=1, padding=0, groups=1):
        (sh, sw), (ph, pw) = stride, padding
        ctx.save_for_backward(x, w)
        ctx.settings = (sh, sw), (ph, pw), groups
        return F.conv2d(x, w, b, (sh, sw), (ph, pw), groups=groups)

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        stride, padding, groups = ctx.settings
        dx = torch.nn.grad.conv2d_input(x.shape, w, dy, stride, padding, groups=groups)
        dw = torch.nn.grad.conv2d_weight(x, w.shape, dy, stride, padding, groups=groups)
        return dx, dw, dy.sum((0, 2, 3)), None, None, None



class PlaneConv(torch.nn.Module):
    CONVGRAD = {"constructor": {"in_channels": "n_input_plane", "out_channels": "n_output_plane"}}

    def __init__(self, n_input_plane, n_output_plane, kernel_size, stride=1, padding=0, groups=1):
        super().__init__()
        self.conv = torch.nn.Conv2d(n_input_plane, n_output_plane, kernel_size, stride, padding, groups=groups)

    def forward(self, x):
        return self.conv(x)


class WordPaddedConv(torch.nn.Module):
    CONVGRAD = {"padding_modes": ["valid", "same"]}

    def __init__(self, in_channels, out_channels, kernel_size, padding="valid"):
        super().__init__()
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid' or 'same', not {padding!r}")
        self.conv = torch.nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)

    def forward(self, x):
        return self.conv(x)
"""


def test_module_level_declarations_apply_to_a_torch_function_and_module_class(torch, tmp_path):
    path = write(tmp_path, "declared_2d.py", DECLARED_2D)
    for name in ("Conv2dFn", "PlaneConv"):
        code, case = one_case(f"{path}:{name}", "--in", "3x9", "--kernels", "4x3x3")
        assert case["skipped"] == f"{path}:{name} handles 2-D layers only (spatial_dims) and this case is 1-D"
        code, case = one_case(f"{path}:{name}", "--in", "4x7x7", "--kernels", "4x2x3x3", "--groups", "2")
        assert case["skipped"] == f"{path}:{name}: grouped convs are not written yet"
        code, case = one_case(f"{path}:{name}", "--in", "3x7x6", "--kernels", "4x3x3x2", "--stride", "2",
                              "--padding", "1x0", "--batch", "2")
        assert code == 0 and case["skipped"] is None, case["reason"]


def test_padding_modes_hand_a_module_class_its_padding_as_a_word(torch, tmp_path):
    path = write(tmp_path, "declared_2d.py", DECLARED_2D)
    for padding in ("same", "0"):
        code, case = one_case(f"{path}:WordPaddedConv", "--in", "3x7x6", "--kernels", "4x3x3x3", "--padding", padding)
        assert code == 0 and case["skipped"] is None, case["reason"]
    code, case = one_case(f"{path}:WordPaddedConv", "--in", "3x7x6", "--kernels", "4x3x3x3", "--padding", "2")
    assert case["skipped"].endswith("takes padding 'valid' or 'same' only (padding_modes) and this case needs padding 2")


def test_a_wrapper_instance_runs_the_case_of_the_conv_it_holds(torch, tmp_path):
    import convgrad

    spec = importlib.util.spec_from_file_location("torch_styles_for_instances", TORCH_STYLES)
    styles = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(styles)
    block = styles.CheckpointedConv(3, 4, 3, stride=2, padding=1)
    assert convgrad.check(block, in_shape="3x7x7", kernel_shape="4x3x3x3", stride=2, padding=1).passed
    report = convgrad.check(block, in_shape="3x7x7", kernel_shape="4x3x3x3", padding=1)
    assert report.skipped == (
        "CheckpointedConv has stride 2x2 and this case needs stride 1x1 (pass its class to build one per case)"
    )
    path = write(tmp_path, "instance.py", f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("styles", {TORCH_STYLES!r})
        styles = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(styles)
        block = styles.ConvBlock(3, 4, 3)
        CONVGRAD = {{"bias": False}}
    """)
    assert_bad_input(run(["--impl", f"{path}:block", "--in", "3x7x7", "--kernels", "4x3x3x3"]),
                     "declares bias = false, and")


def test_a_module_padded_same_with_an_even_kernel_runs_the_case_padded_one_more_after(torch):
    import convgrad

    same = torch.nn.Conv2d(2, 3, kernel_size=2, padding="same")  # torch pads the odd pixel after
    report = convgrad.check(same, in_shape="2x5x6", kernel_shape="3x2x2x2", padding=((0, 1), (0, 1)))
    assert report.passed and report.skipped is None
    report = convgrad.check(torch.nn.Conv2d(2, 3, kernel_size=2, padding=1), in_shape="2x5x6",
                            kernel_shape="3x2x2x2", padding=((0, 1), (0, 1)))
    assert report.skipped == "Conv2d has padding 1x1 and this case needs padding 0,1 (pass its class to build one per case)"


def test_a_declared_constructor_parameter_the_class_does_not_take_is_bad_input(torch, tmp_path):
    path = write(tmp_path, "declared_2d.py", DECLARED_2D.replace('"n_output_plane"}', '"n_output_planes"}'))
    assert_bad_input(run(["--impl", f"{path}:PlaneConv", "--in", "3x7x7", "--kernels", "4x3x3x3"]),
                     "declares constructor out_channels = 'n_output_planes', and PlaneConv() takes no n_output_planes")
    path = write(tmp_path, "undeclared.py", DECLARED_2D.replace("    CONVGRAD = {", "    OTHER = {"))
    assert_bad_input(run(["--impl", f"{path}:PlaneConv", "--in", "3x7x7", "--kernels", "4x3x3x3"]),
                     "cannot tell what n_input_plane, n_output_plane means")


def test_declarations_that_cannot_apply_to_a_framework_layer_are_bad_input(torch, tmp_path):
    settings = config(tmp_path, 'layout = "nhwc"')
    assert_bad_input(run(["--impl", f"{TORCH_STYLES}:ConvBlock", "--impl-config", settings, "--in", "3x7x7",
                          "--kernels", "4x3x3x3"]), "declare layout, which cannot apply to a framework layer")
    settings = config(tmp_path, 'constructor = {in_channels = "cin"}')
    assert_bad_input(run(["--impl", f"{TORCH_STYLES}:Conv2dFunction", "--impl-config", settings, "--in", "3x7x7",
                          "--kernels", "4x3x3x3"]), "declare constructor, which cannot apply to a torch.autograd.Function")


def test_one_int_skips_a_rectangular_kernel_for_a_class_handed_one_int(torch, tmp_path):
    settings = config(tmp_path, "one_int = true")
    code, case = one_case(f"{TORCH_STYLES}:ConvNoBias", "--impl-config", settings, "--in", "3x7x7", "--kernels", "4x3x3x2")
    assert case["skipped"].endswith("ConvNoBias takes one int for every axis (one_int) and this case needs kernel size 3x2")


@pytest.mark.slow
def test_jax_layers_take_the_declarations_of_their_file(jax):
    code, case = one_case(f"{JAX_STYLES}:conv2d", "--in", "3x9", "--kernels", "4x3x3")
    assert case["skipped"] == f"{JAX_STYLES}:conv2d handles 2-D layers only (spatial_dims) and this case is 1-D"
    code, case = one_case(f"{JAX_STYLES}:conv2d", "--in", "3x7x7", "--kernels", "4x3x3x3", "--stride", "2x1")
    assert case["skipped"].endswith("takes one int for every axis (one_int) and this case needs stride 2x1")
    # one_int: (stride, stride) of an int; the kernel size is read off w, so a rectangular one runs.
    code, case = one_case(f"{JAX_STYLES}:conv2d", "--in", "3x7x7", "--kernels", "4x3x3x2", *ONE_CASE[4:])
    assert code == 0 and case["skipped"] is None, case["reason"]


@pytest.mark.parametrize("spec, wrong, bias_free", [
    ("conv2d_first_image_db", "db", False),
    ("conv2d_no_bias", None, True),
])
@pytest.mark.slow
def test_jax_functions_with_and_without_a_bias(jax, spec, wrong, bias_free):
    code, case = one_case(f"{JAX_STYLES}:{spec}", *ONE_CASE, "--dtype", "float32")
    assert failing(case) == ([wrong] if wrong else []), case["reason"]
    assert code == (1 if wrong else 0)
    assert db_row(case)["absent"] == ("no bias" if bias_free else None)


NEW_STYLE = textwrap.dedent("""
    import torch
    import torch.nn.functional as F

    class SavesSettings(torch.autograd.Function):
        @staticmethod
        def setup_context(ctx, inputs, output):
            x, w, b, *settings = inputs
            ctx.save_for_backward(x, w)
            ctx.settings = settings

        @staticmethod
        def backward(ctx, dy):
            x, w = ctx.saved_tensors
            dx = torch.nn.grad.conv2d_input(x.shape, w, dy, *ctx.settings)
            dw = torch.nn.grad.conv2d_weight(x, w.shape, dy, *ctx.settings)
            return (dx, dw, dy.sum((0, 2, 3))) + (None,) * len(ctx.settings)

    class NoDefaults(SavesSettings):  # setup_context inherited; settings required
        @staticmethod
        def forward(x, w, b, stride, padding):
            return F.conv2d(x, w, b, stride, padding)

    class Defaults(SavesSettings):
        @staticmethod
        def forward(input, weight, bias, stride=1, padding=0, dilation=1):
            return F.conv2d(input, weight, bias, stride, padding, dilation)
""")


@pytest.mark.parametrize("name", ["NoDefaults", "Defaults"])
def test_a_new_style_function_is_called_with_its_settings(torch, tmp_path, name):
    """forward(x, w, b, stride, padding) without ctx, with setup_context: --padding 1 reaches it."""
    path = tmp_path / "new_style.py"
    path.write_text(NEW_STYLE)
    code, case = one_case(f"{path}:{name}", "--in", "3x8x8", "--kernels", "4x3x3x3", "--padding", "1",
                          "--stride", "2", "--order", "2")
    assert code == 0, case["reason"]
    assert case["tensors"][0]["shape"] == [1, 4, 4, 4]
