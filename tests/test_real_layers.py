"""Real layers as people write them, checked without glue: named function pairs, course-style
caches, layer objects with gradients on attributes, declared conventions and limits, hints.

The layers are in tests/implementations/: each style has a correct layer, which must go green on
the standard suite with its limits declared, and a wrong variant, which must go red naming the
tensor."""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from click.testing import CliRunner

from checking import check_layer
from conftest import assert_bad_input
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry
from convgrad.suite import load_suite

HERE = os.path.dirname(os.path.abspath(__file__))
LAYERS = os.path.join(HERE, "implementations")
STANDARD = os.path.join(os.path.dirname(HERE), "configs", "standard.toml")


def layer(spec: str) -> str:
    return os.path.join(LAYERS, spec)


def run(*args: str):
    return CliRunner().invoke(cli, ["check", *args], env={"COLUMNS": "120"})


def standard_suite(spec: str, *args: str) -> tuple[int, dict]:
    result = run("--impl", spec, "--config", STANDARD, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def skips(report: dict) -> dict[str, str]:
    return {c["name"]: c["skipped"] for c in report["cases"] if c["skipped"] is not None}


def failing_tensors(report: dict) -> set[str]:
    return {t["name"] for c in report["cases"] for t in c["tensors"] if not t["passed"]}


def write(tmp_path, name: str, source: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


@pytest.mark.slow
def test_course_functions_named_on_the_command_line():
    code, report = standard_suite(layer("course_naive.py:conv_forward_naive,conv_backward_naive"))
    assert code == 0, report
    suite = load_suite(STANDARD)
    checked = [c for c in suite.cases if c.geometry.ndim == 2 and c.geometry.groups == 1
               and all(d == 1 for d in c.geometry.dilation) and len(set(c.geometry.stride)) == 1
               and len(set(c.geometry.padding)) == 1]
    assert report["summary"]["passed"] == len(checked) > 10
    assert skips(report)["3-D"].endswith("handles 2-D layers only (a cache-style conv_param) and this case is 3-D")

    code, report = standard_suite(layer("course_naive.py:conv_forward_naive,conv_backward_bias_mean"), "--fail-fast")
    assert code == 1 and failing_tensors(report) == {"db"}


def test_a_misnamed_function_pair_suggests_the_closest_name():
    result = run("--impl", layer("course_naive.py:conv_forward_naive,conv_backward_naiv"), "--in", "3x6x6",
                 "--kernels", "4x3x3x3")
    assert_bad_input(result, "there is no 'conv_backward_naiv'")
    assert "did you mean :conv_backward_naive?" in result.output


@pytest.mark.slow
def test_layer_object_with_gradients_on_attributes():
    code, report = standard_suite(layer("scratch_conv.py:Conv2D"))
    assert code == 0, report
    reasons = set(skips(report).values())
    assert any("takes one int for every axis (one_int) and this case needs stride 2x1" in r for r in reasons)
    assert any("Conv2D's constructor takes no dilation" in r for r in reasons)
    assert report["summary"]["passed"] >= 8

    code, report = standard_suite(layer("scratch_conv.py:Conv2DBatchMeanBias"), "--fail-fast")
    assert code == 1
    assert failing_tensors(report) == {"db"}


@pytest.mark.slow
def test_channels_last_layer_with_padding_words_and_hwio_kernels():
    """layout and padding words are declared; the (kh, kw, C, F) kernel is read off the layer's own."""
    code, report = standard_suite(layer("keras_like.py:Conv2D"))
    assert code == 0, report
    assert any("takes padding 'valid' or 'same' only (padding_modes) and this case needs padding 1" in r
               for r in skips(report).values())
    same = run("--impl", layer("keras_like.py:Conv2D"), "--in", "2x5x6", "--kernels", "3x2x3x3", "--padding", "1", "-q")
    assert same.exit_code == 0, same.output

    result = run("--impl", layer("keras_like.py:Conv2DSameShifted"), "--in", "2x5x5", "--kernels", "3x2x3x3",
                 "--padding", "1", "--json")
    assert result.exit_code == 1
    assert {t["name"] for t in json.loads(result.stdout)["cases"][0]["tensors"] if not t["passed"]} >= {"O"}


def test_bias_free_layer_says_no_bias_and_checks_the_rest():
    result = run("--impl", layer("no_bias.py:ConvNoBias"), "--in", "3x6x6", "--kernels", "4x3x3x3", "--stride", "2")
    assert result.exit_code == 0, result.output
    assert "no bias" in result.output and "PASS: dX and dK match finite differences" in result.output
    report = json.loads(run("--impl", layer("no_bias.py:ConvNoBias"), "--in", "3x6x6", "--kernels", "4x3x3x3",
                            "--json").stdout)
    db = report["cases"][0]["tensors"][-1]
    assert db["name"] == "db" and db["absent"] == "no bias" and db["checked"] == 0

    wrong = json.loads(run("--impl", layer("no_bias.py:ConvNoBiasTransposedGrad"), "--in", "3x6x6", "--kernels",
                           "4x3x3x3", "--json").stdout)
    assert failing_tensors(wrong) == {"dK"}


@pytest.mark.slow
def test_undeclared_impossibilities_are_failures_with_the_reason():
    """ConvNoBias declares nothing: a stride per axis reaches its constructor and fails there."""
    code, report = standard_suite(layer("no_bias.py:ConvNoBias"))
    assert code == 1
    failed = [c for c in report["cases"] if not c["passed"] and c["skipped"] is None]
    assert failed and all("raised" in c["reason"] for c in failed)
    assert any("creating ConvNoBias(in_ch=" in c["reason"] and "TypeError" in c["reason"] for c in failed)


@pytest.mark.slow
def test_names_and_limits_declared_in_the_file_or_in_a_toml(tmp_path):
    code, report = standard_suite(layer("fast_layers.py"))
    assert code == 0, report
    reasons = set(skips(report).values())
    assert any("takes square inputs only (square_only) and this input is" in r for r in reasons)
    assert any("needs a stride that tiles the padded input (stride_tiles)" in r for r in reasons)

    config = write(tmp_path, "flipped.toml", '[impl]\nbackward = "conv_backward_im2col_flipped"\n')
    code, report = standard_suite(layer("fast_layers.py"), "--impl-config", config, "--fail-fast")
    assert code == 1 and failing_tensors(report) == {"dK"}


@pytest.mark.parametrize("declaration, message", [
    ('squre_only = true', "has an unknown key 'squre_only'; did you mean 'square_only'?"),
    ('padding_modes = ["full"]', "declares padding_modes = ['full']; give e.g. padding_modes = [\"valid\", \"same\"]"),
    ('layout = "nwhc"', "declares layout = 'nwhc'; give e.g. layout = \"nhwc\""),
    ('constructor = {in_chanels = "n"}', "constructor names 'in_chanels'; did you mean 'in_channels'?"),
])
def test_a_bad_declaration_is_one_line_naming_the_fix(tmp_path, declaration, message):
    config = write(tmp_path, "conv.toml", f"[impl]\n{declaration}\n")
    assert_bad_input(run("--impl", layer("fast_layers.py"), "--impl-config", config, "--in", "3x6x6",
                         "--kernels", "4x3x3x3"), message)


def test_constructor_and_attributes_declared_in_a_few_lines(tmp_path):
    path = write(tmp_path, "odd_names.py", """
        import numpy as np
        from convgrad import reference

        CONVGRAD = {
            "constructor": {"in_channels": "n_c", "out_channels": "n_f", "kernel_size": "f", "padding": "pad"},
            "attributes": {"weights": "filters_", "bias": "offsets", "grad_weights": "g_filters", "grad_bias": "g_offsets"},
        }

        class ConvLayer:
            def __init__(self, n_c, n_f, f, pad=0):
                self.filters_ = np.zeros((n_f, n_c, f, f))
                self.offsets = np.zeros(n_f)
                self.pad = pad

            def forward(self, x):
                self.x = x
                return reference.forward(x, self.filters_, self.offsets, stride=(1, 1), padding=(self.pad,) * 2,
                                         dilation=(1, 1), groups=1)

            def backward(self, dout):
                dx, self.g_filters, self.g_offsets = reference.backward(
                    dout, self.x, self.filters_, self.offsets, stride=(1, 1), padding=(self.pad,) * 2,
                    dilation=(1, 1), groups=1)
                return dx
        """)
    result = run("--impl", f"{path}:ConvLayer", "--in", "3x5x5", "--kernels", "2x3x3x3", "--padding", "1", "-q")
    assert result.exit_code == 0, result.output
    skipped = run("--impl", f"{path}:ConvLayer", "--in", "3x5x5", "--kernels", "2x3x3x3", "--stride", "2", "-q")
    assert "ConvLayer's constructor takes no stride, and this case needs stride 2x2" in skipped.output


def test_unrecognised_constructor_parameters_ask_for_a_declaration(tmp_path):
    path = write(tmp_path, "mystery.py", """
        class Conv:
            def __init__(self, a, b, c):
                pass
            def forward(self, x):
                return x
            def backward(self, dout):
                return dout
        """)
    assert_bad_input(run("--impl", f"{path}:Conv", "--in", "3x5x5", "--kernels", "2x3x3x3"),
                     "Conv(a, b, c) needs a, b, c, which convgrad does not recognise; declare what they are")


def test_gradients_accumulated_on_the_object_are_caught_by_later_calls(tmp_path):
    path = write(tmp_path, "accumulates.py", """
        import numpy as np
        from convgrad import reference

        SETTINGS = dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1)

        class Conv:
            def __init__(self, in_channels, out_channels, kernel_size):
                self.W = np.zeros((out_channels, in_channels, kernel_size, kernel_size))
                self.b = np.zeros(out_channels)
                self.dW = np.zeros_like(self.W)
                self.db = np.zeros_like(self.b)

            def forward(self, x):
                self.x = x
                return reference.forward(x, self.W, self.b, **SETTINGS)

            def backward(self, dout):
                dx, dw, db = reference.backward(dout, self.x, self.W, self.b, **SETTINGS)
                self.dW += dw  # never reset: the second backward returns the sum of both
                self.db = db
                return dx
        """)
    report = json.loads(run("--impl", f"{path}:Conv", "--in", "2x5x5", "--kernels", "3x2x3x3", "--json").stdout)
    case = report["cases"][0]
    assert not case["passed"] and all(t["passed"] for t in case["tensors"])  # the first call is right
    second = next(c for c in case["calls"] if c["name"] == "second call")
    assert not second["passed"] and "dK" in second["reason"]


def test_unsupported_and_supports_skip_with_the_layers_reason(reference_with):
    from convgrad import Unsupported

    class OddSizesOnly(reference_with):
        name = "odd sizes only"

        def forward(self, x, w, b, **settings):
            if x.shape[2] % 2 == 0:
                raise Unsupported("even input sizes are not implemented")
            return super().forward(x, w, b, **settings)

    class NoStride(reference_with):
        name = "no stride"

        def supports(self, geometry):
            return None if geometry.stride == (1, 1) else "stride is not implemented"

    even = resolve_geometry("2x6x6", "3x2x3x3")
    report = check_layer(even, OddSizesOnly())
    assert report.status == "skipped" and report.skipped == "odd sizes only: even input sizes are not implemented"
    assert check_layer(resolve_geometry("2x5x5", "3x2x3x3"), OddSizesOnly()).passed
    strict = check_layer(even, OddSizesOnly(), strict=True)
    assert strict.failed and "not checked under strict checking" in (strict.reason or "")

    strided = resolve_geometry("2x6x6", "3x2x3x3", stride=2)
    assert check_layer(strided, NoStride()).skipped == "no stride: stride is not implemented"
    assert check_layer(resolve_geometry("2x6x6", "3x2x3x3"), NoStride()).passed


def test_hint_channels_last_layer_run_without_layout():
    result = run("--impl", os.path.join(LAYERS, "channels_last.py"), "--in", "3x6x6", "--kernels", "4x3x3x3", "--json")
    reason = json.loads(result.stdout)["cases"][0]["reason"]
    assert reason.startswith("forward raised")
    assert reason.endswith("it runs with the arrays channels last: add --layout nhwc --weight-layout hwio "
                           "(or declare layout = \"nhwc\"; weight_layout = \"hwio\")")


def test_hint_a_2d_layer_crashing_on_3d_suggests_spatial_dims(tmp_path):
    path = write(tmp_path, "flat.py", """
        from convgrad import reference

        def forward(x, w, b, **settings):
            n, c, h, wd = x.shape
            return reference.forward(x, w, b, **settings)

        backward = reference.backward
        """)
    result = run("--impl", path, "--in", "2x4x4x4", "--kernels", "3x2x3x3x3", "--json")
    reason = json.loads(result.stdout)["cases"][0]["reason"]
    assert "ValueError" in reason and reason.endswith(
        "this case is 3-D: if the layer handles 2-D layers only, declare spatial_dims = (2,) and such cases are skipped")


def test_hint_a_file_without_forward_lists_what_looks_like_a_conv(tmp_path):
    path = write(tmp_path, "layers.py", """
        def conv_forward_naive(x, w, b, conv_param):
            pass

        def conv_backward_naive(dout, cache):
            pass

        def relu_forward(x):
            pass
        """)
    assert_bad_input(run("--impl", path, "--in", "3x5x5", "--kernels", "2x3x3x3"),
                     f"has no forward function, but it defines conv_forward_naive, relu_forward, conv_backward_naive; "
                     f"name them, like --impl {path}:conv_forward_naive,conv_backward_naive")


def test_hint_an_import_from_the_layers_repository_names_the_folder(tmp_path):
    repository = tmp_path / "repo"
    (repository / "mylib").mkdir(parents=True)
    (repository / "mylib" / "__init__.py").write_text("from convgrad.reference import forward, backward\n")
    (repository / "examples").mkdir()
    layer_file = write(repository / "examples", "conv.py", "from mylib import forward, backward\n")
    result = run("--impl", layer_file, "--in", "3x5x5", "--kernels", "2x3x3x3")
    assert_bad_input(result, "No module named 'mylib'")
    assert f"mylib is in {repository}: put that folder on the import path with --impl-path {repository}" in result.output
    fixed = run("--impl", layer_file, "--impl-path", str(repository), "--in", "3x5x5", "--kernels", "2x3x3x3", "-q")
    assert fixed.exit_code == 0, fixed.output


@pytest.mark.slow
def test_a_conv_on_an_autograd_librarys_tensors():
    code, report = standard_suite(layer("tiny_autograd.py"))
    assert code == 0, report
    assert report["summary"]["passed"] >= 10

    wrong = json.loads(run("--impl", layer("tiny_autograd.py:conv2d_wrong_bias"), "--in", "3x6x6", "--kernels",
                           "4x3x3x3", "--batch", "2", "--json").stdout)
    assert failing_tensors(wrong) == {"db"}


def test_a_layer_class_passed_from_python_keeps_its_files_declarations(monkeypatch):
    monkeypatch.syspath_prepend(LAYERS)
    import scratch_conv as module
    rectangular = resolve_geometry("2x5x6", "3x2x3x2")
    assert "one_int" in (check_layer(rectangular, module.Conv2D).skipped or "")
    assert check_layer(resolve_geometry("2x5x6", "3x2x3x3", stride=2, padding=1), module.Conv2D).passed


def test_a_declared_bias_shape_is_how_the_layer_gets_its_bias(tmp_path):
    path = write(tmp_path, "column_bias.py", """
        from convgrad import reference

        def forward(x, w, b, **settings):
            return reference.forward(x, w, b[:, 0], **settings)  # b is (F, 1)

        def backward(dy, x, w, b, **settings):
            dx, dw, db = reference.backward(dy, x, w, b[:, 0], **settings)
            return dx, dw, db.reshape(-1, 1)
        """)
    undeclared = json.loads(run("--impl", path, "--in", "2x5x5", "--kernels", "3x2x3x3", "--json").stdout)
    assert undeclared["cases"][0]["reason"].startswith("forward raised IndexError")
    config = write(tmp_path, "column_bias.toml", 'bias_shape = "F,1"\n')
    result = run("--impl", path, "--impl-config", config, "--in", "2x5x5", "--kernels", "3x2x3x3", "-q")
    assert result.exit_code == 0, result.output


INT_SETTINGS_LAYER = """
    from convgrad import reference
    {declaration}

    def _axes(value, x):
        if not isinstance(value, int):  # computes with its settings as ints, as most layers do
            raise TypeError(f"unsupported operand type(s) for +: {{type(value).__name__!r}} and 'int'")
        return (value,) * (x.ndim - 2)

    def conv(x, w, b, stride=1, padding=0):
        return reference.forward(x, w, b, stride=_axes(stride, x), padding=_axes(padding, x),
                                 dilation=_axes(1, x), groups=1)

    def conv_grad(dy, x, w, b, stride=1, padding=0):
        return reference.backward(dy, x, w, b, stride=_axes(stride, x), padding=_axes(padding, x),
                                  dilation=_axes(1, x), groups=1)
"""


@pytest.mark.slow
def test_a_function_with_int_defaults_gets_ints_and_keeps_rectangular_kernels(tmp_path):
    spec = write(tmp_path, "int_settings.py", INT_SETTINGS_LAYER.format(declaration="")) + ":conv,conv_grad"
    result = run("--impl", spec, "--in", "3x9x7", "--kernels", "2x3x3x2", "--stride", "2", "--padding", "1", "--json")
    assert result.exit_code == 0, result.stdout
    # Declaring one_int skips per-axis settings; the kernel size is read off w, so it is no limit.
    spec = write(tmp_path, "declared.py", INT_SETTINGS_LAYER.format(declaration='CONVGRAD = {"one_int": True}'))
    code, report = standard_suite(spec + ":conv,conv_grad")
    assert code == 0 and failing_tensors(report) == set()
    assert not any("kernel size" in reason for reason in skips(report).values()), skips(report)
    assert any("(one_int)" in reason for reason in skips(report).values())
