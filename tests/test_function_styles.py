"""Conv functions as people write them, checked with at most a declaration: the course style with
settings as keywords, one image at a time, a backward split in two, a backward without b, short
setting names, square kernels only, declared calls with fixed arguments, declared return shapes
and float32-only layers. Each correct layer goes green on the standard suite; each wrong variant
goes red naming its tensor. The layers are in tests/implementations/."""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from click.testing import CliRunner

from conftest import assert_bad_input
from convgrad.cli import cli

HERE = os.path.dirname(os.path.abspath(__file__))
LAYERS = os.path.join(HERE, "implementations")
STANDARD = os.path.join(os.path.dirname(HERE), "configs", "standard.toml")
ONE_CASE = ("--in", "3x7x6", "--kernels", "4x3x3x3", "--stride", "2", "--padding", "1", "--batch", "3")


def run(*args: str):
    return CliRunner().invoke(cli, ["check", *args], env={"COLUMNS": "120"})


def report_of(*args: str) -> tuple[int, dict]:
    result = run(*args, "--json")
    return result.exit_code, json.loads(result.stdout)


def failing(report: dict) -> set[str]:
    """The tensors of the first failing case, first call."""
    case = next(c for c in report["cases"] if not c["passed"] and c["skipped"] is None)
    return {t["name"] for t in case["tensors"] if not t["passed"]}


def layer(spec: str) -> str:
    return os.path.join(LAYERS, spec)


def write(tmp_path, name: str, source: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


@pytest.mark.parametrize("correct, minimum", [
    ("course_keywords.py:conv_forward,conv_backward", 20),  # (out, cache) with stride=1, padding=1 keywords
    ("single_image.py", 20),  # batched = false: convgrad loops over the batch
    ("split_backward.py", 25),  # backward = {dx = ..., dw = ...}, tuple defaults
    ("short_names.py", 20),  # s=1, p=0, and a backward(dy, x, w) without b
    ("square_kernels.py:conv_forward,conv_backward", 15),  # square_kernels = true
])
@pytest.mark.slow
def test_each_function_style_goes_green_on_the_standard_suite(correct, minimum):
    code, report = report_of("--impl", layer(correct), "--config", STANDARD)
    assert code == 0, [c["reason"] for c in report["cases"] if not c["passed"] and not c["skipped"]]
    assert report["summary"]["passed"] >= minimum
    assert report["summary"]["failed"] == report["summary"]["error"] == 0


@pytest.mark.parametrize("wrong, tensor, words", [
    ("course_keywords.py:conv_forward,conv_backward_dw_mean", "dK", "an average over the batch"),
    ("single_image.py:conv_single,conv_single_backward_db_mean", "db", "average over the output positions"),
    ("short_names.py:forward,backward_dx_ignores_stride", "dX", "stride was ignored"),
    ("square_kernels.py:conv_forward,conv_backward_db_wrong_axis", "db", "for db, expected 4"),
])
def test_each_wrong_variant_is_red_naming_the_tensor(wrong, tensor, words):
    code, report = report_of("--impl", layer(wrong), *ONE_CASE)
    assert code == 1, report
    case = report["cases"][0]
    assert tensor in failing(report)
    assert words in case["reason"]


def test_a_split_backward_declared_in_toml_is_caught_in_the_part_that_is_wrong(tmp_path):
    config = write(tmp_path, "conv.toml", """
        [impl]
        backward = {dx = "conv2d_grad_input", dw = "conv2d_grad_weight_unflipped"}
        """)
    code, report = report_of("--impl", layer("split_backward.py"), "--impl-config", config, *ONE_CASE)
    assert code == 1 and failing(report) == {"dK"}
    assert report["cases"][0]["reason"].startswith("dK: ")


def test_the_course_style_with_keywords_is_told_apart_from_the_protocol():
    """forward(X, W, b, stride=1, padding=1) and backward(dout, cache): the cache style, so the
    cache is what backward gets, not (x, w, b)."""
    code, report = report_of("--impl", layer("course_keywords.py:conv_forward,conv_backward"), *ONE_CASE)
    assert code == 0, report["cases"][0]["reason"]


def test_an_unbatched_layer_without_the_declaration_says_what_to_declare(tmp_path):
    path = write(tmp_path, "one_image.py", """
        import sys
        sys.path.insert(0, %r)
        from single_image import conv_single as forward, conv_single_backward as backward
        """ % LAYERS)
    result = run("--impl", path, *ONE_CASE)
    assert result.exit_code == 1
    assert "one image (C, H, W)" in result.output  # the layer's own assertion, as it raised


def test_declared_calls_with_fixed_arguments_and_a_declared_return_shape(tmp_path):
    """forward = "conv(x, w, b, True)": the written call; backward_returns = "(dw, db), dx"."""
    path = write(tmp_path, "written.py", """
        from convgrad import reference

        CONVGRAD = {"forward": "conv(x, w, b, True)", "backward": "conv_grad(cache=None, grad=dy, inputs=x, kernel=w)",
                    "backward_returns": "(dw, db), dx"}

        def conv(inputs, kernel, bias, training, stride=1, padding=0):
            assert training is True
            return reference.forward(inputs, kernel, bias, stride=(stride,) * 2, padding=(padding,) * 2,
                                     dilation=(1, 1), groups=1)

        def conv_grad(cache, grad, inputs, kernel, stride=1, padding=0):
            assert cache is None
            dx, dw, db = reference.backward(grad, inputs, kernel, None, stride=(stride,) * 2,
                                            padding=(padding,) * 2, dilation=(1, 1), groups=1)
            return (dw, db), dx
        """)
    result = run("--impl", path, "--in", "3x6x6", "--kernels", "4x3x3x3", "--stride", "2", "-q")
    assert result.exit_code == 0, result.output

    wrong = path.replace("written.py", "written_wrong.py")
    with open(path) as source, open(wrong, "w") as target:
        target.write(source.read().replace('"(dw, db), dx"', '"dx, (dw, db)"'))
    result = run("--impl", wrong, "--in", "3x6x6", "--kernels", "4x3x3x3", "-q")
    assert result.exit_code == 1
    assert "backward returned a ndarray at item 1 where backward_returns declares (dw, db)" in result.output


@pytest.mark.parametrize("declaration, message", [
    ('forward = "conv(x, w, b, training)"', "'training' is no value convgrad hands over"),
    ('backward = {dx = "a", dk = "b"}', "declares backward.dk; a split backward names dx, dw, db"),
    ('backward = {dx = "a"}', "declares a split backward without dx or dw"),
    ('backward_returns = "dw, db"', "it must name dx once"),
    ('batched = "no"', "declares batched = 'no'; give e.g. batched = false"),
    ('dtypes = ["float16"]', "declares dtypes = ['float16']"),
    ('weight_layout = "ihwo"', "declares weight_layout = 'ihwo'"),
    ('set_weights = "set_params"', "declare set_weights, which cannot apply to functions"),
])
def test_bad_declarations_of_the_new_keys_are_one_line(tmp_path, declaration, message):
    config = write(tmp_path, "conv.toml", f"[impl]\n{declaration}\n")
    assert_bad_input(run("--impl", layer("short_names.py"), "--impl-config", config, "--in", "3x6x6",
                         "--kernels", "4x3x3x3"), message)


def test_a_float32_only_layer_runs_at_float32_and_says_so(tmp_path):
    path = write(tmp_path, "f32.py", """
        import numpy as np
        from convgrad import reference

        CONVGRAD = {"dtypes": ["float32"]}

        def forward(x, w, b, **settings):
            assert x.dtype == np.float32, "this layer computes in float32"
            return reference.forward(x, w, b, **settings).astype(np.float32)

        def backward(dy, x, w, b, **settings):
            assert x.dtype == np.float32, "this layer computes in float32"
            return tuple(g.astype(np.float32) for g in reference.backward(dy, x, w, b, **settings))
        """)
    code, report = report_of("--impl", path, "--in", "3x6x6", "--kernels", "4x3x3x3")
    assert code == 0, report["cases"][0]["reason"]
    case = report["cases"][0]
    assert case["settings"]["dtype"] == "float32"
    assert any(w.startswith("run at float32, the dtype") and w.endswith("computes in (dtypes); the case asked for float64")
               for w in case["warnings"])


def test_a_file_named_like_the_package_it_imports_is_told_to_rename(tmp_path):
    package = tmp_path / "site" / "tinylib"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("def conv(x):\n    return x\n")
    glue = write(tmp_path, "tinylib.py", "from tinylib import conv\n")
    result = CliRunner().invoke(cli, ["check", "--impl", glue, "--impl-path", str(tmp_path / "site"), "--in", "3x5x5",
                                      "--kernels", "2x3x3x3"])
    assert_bad_input(result, "the file is named like the package it imports (tinylib)")
    assert "rename it, e.g. to check_tinylib.py" in result.output


def test_a_crash_on_another_rank_hints_at_spatial_dims_only_when_the_layer_refuses_it(tmp_path):
    refuses = write(tmp_path, "two_d.py", """
        from convgrad import reference

        def forward(x, w, b, **settings):
            n, c, h, wd = x.shape
            return reference.forward(x, w, b, **settings)

        def backward(dy, x, w, b, **settings):
            return reference.backward(dy, x, w, b, **settings)
        """)
    result = run("--impl", refuses, "--in", "3x7", "--kernels", "4x3x3")
    assert result.exit_code == 1 and "declare spatial_dims = (2,)" in result.output

    reshapes = write(tmp_path, "any_rank.py", """
        import numpy as np
        from convgrad import reference

        def forward(x, w, b, **settings):
            y = reference.forward(x, w, b, **settings)
            return y.reshape(y.shape[0], y.shape[1], -1, 2)  # a bug: assumes an even, 2-D output

        def backward(dy, x, w, b, **settings):
            return reference.backward(dy, x, w, b, **settings)
        """)
    result = run("--impl", reshapes, "--in", "3x7", "--kernels", "4x3x3")
    assert result.exit_code == 1
    assert "spatial_dims" not in result.output


def test_an_undeclared_float32_layer_is_told_to_declare_its_dtype(tmp_path):
    path = write(tmp_path, "f32_undeclared.py", """
        import numpy as np
        from convgrad import reference

        def forward(x, w, b, **settings):
            return reference.forward(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), **settings)

        def backward(dy, x, w, b, **settings):
            return tuple(g.astype(np.float32) for g in reference.backward(dy, x, w, b, **settings))
        """)
    code, report = report_of("--impl", path, "--in", "3x6x6", "--kernels", "4x3x3x3")
    assert code == 1
    assert any('the output as float32 for float64 inputs; if the layer computes in float32 only, declare '
               'dtypes = ["float32"]' in w for w in report["cases"][0]["warnings"])


def test_an_unbatched_layer_with_a_declared_return_shape(tmp_path):
    path = write(tmp_path, "one_image_nested.py", """
        from convgrad import reference

        CONVGRAD = {"batched": False, "backward_returns": "dx, (dw, db)"}

        def forward(x, w, b, **settings):
            assert x.ndim == 3
            return reference.forward(x[None], w, b, **settings)[0]

        def backward(dy, x, w, b, **settings):
            assert x.ndim == 3
            dx, dw, db = reference.backward(dy[None], x[None], w, b, **settings)
            return dx[0], (dw, db)
        """)
    result = run("--impl", path, "--in", "3x6x5", "--kernels", "4x3x3x2", "--batch", "3", "--stride", "2", "-q")
    assert result.exit_code == 0, result.output
