"""Convs written on small autograd engines, checked with at most a declaration: a backward() that
takes no gradient (convgrad backpropagates sum(y * dy) with the engine's own ops), .grad kept as an
array or as a Tensor, settings whose defaults are tuples, kernels kept (C_in, C_out, kh, kw),
engines fixed at float32, and convs without a bias or with it as a keyword.

The engines are in tests/implementations/engine_*.py: each correct conv goes green, each wrong
variant red naming the tensor."""

from __future__ import annotations

import json
import os
import textwrap
import types

import numpy as np
import pytest
from click.testing import CliRunner

from convgrad import reference
from convgrad.adapters.adapter import adapt
from convgrad.adapters.declare import parse_declarations
from convgrad.adapters.live import Variant
from convgrad.adapters.loading import as_implementation
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry

HERE = os.path.dirname(os.path.abspath(__file__))
LAYERS = os.path.join(HERE, "implementations")
STANDARD = os.path.join(os.path.dirname(HERE), "configs", "standard.toml")
ONE_CASE = ("--in", "3x7x7", "--kernels", "4x3x3x2", "--batch", "2", "--stride", "2", "--padding", "1")


def layer(spec: str) -> str:
    return os.path.join(LAYERS, spec)


def check(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["check", *args, "--json"], env={"COLUMNS": "120"})
    return result.exit_code, json.loads(result.stdout)


def one_case(spec: str, *args: str) -> tuple[int, dict]:
    code, report = check("--impl", spec, *ONE_CASE, *args)
    return code, report["cases"][0]


def failing(case: dict) -> set[str]:
    return {t["name"] for t in case["tensors"] if not t["passed"]}


def assert_red(spec: str, tensor: str, *args: str) -> None:
    code, case = one_case(spec, *args)
    assert code == 1 and case["status"] == "failed", case["reason"]
    assert failing(case) == {tensor}
    assert case["reason"].startswith(f"{tensor}: ")


def without(source_file: str, text: str, replacement: str, tmp_path) -> str:
    """A copy of a test engine with `text` replaced: the same engine declaring or defining less."""
    with open(layer(source_file)) as handle:
        source = handle.read()
    assert text in source
    path = tmp_path / source_file
    path.write_text(source.replace(text, replacement))
    return str(path)


@pytest.mark.slow
def test_an_engine_whose_backward_takes_no_gradient_on_the_standard_suite():
    """backward() seeds ones: convgrad backpropagates (y * Tensor(dy)).sum() with the engine's
    Tensor.sum; its conv unpacks stride and padding as (h, w) tuples, their defaults."""
    code, report = check("--impl", layer("engine_scalar_seed.py"), "--config", STANDARD)
    assert code == 0, [c["reason"] for c in report["cases"] if not c["passed"]]
    cases = [c for c in report["cases"] if c["skipped"] is None]
    assert len(cases) >= 20 and all(c["status"] == "passed" for c in cases)
    per_axis = [c for c in cases if len(set(c["settings"]["stride"])) > 1 or len(set(c["settings"]["padding"])) > 1]
    assert per_axis  # handed over as tuples, which the conv unpacks
    skipped = {c["skipped"] for c in report["cases"] if c["skipped"] is not None}
    assert any("handles 2-D layers only (spatial_dims)" in s for s in skipped)
    assert any("do not accept the keyword dilation" in s for s in skipped)

    assert_red(layer("engine_scalar_seed.py:conv2d_col2im_overwrites"), "dX")


def test_a_backward_without_gradient_reduces_with_the_engines_sum_function_and_reads_tensor_grads():
    """Functional ops, sum(t) a module function, .grad a Tensor."""
    code, case = one_case(layer("engine_tensor_grad.py"))
    assert code == 0 and case["status"] == "passed", case["reason"]
    assert {c["name"]: c["passed"] for c in case["calls"]}["training steps"]

    assert_red(layer("engine_tensor_grad.py:conv2d_dw_ignores_stride"), "dK")


def test_a_backward_without_gradient_on_an_engine_without_sum_names_what_is_missing(tmp_path):
    spec = without("engine_tensor_grad.py", "def sum(a):", "def total(a):", tmp_path)
    code, case = one_case(spec)
    assert code == 1 and case["status"] == "error"
    assert ("Tensor.backward() takes no gradient, so convgrad backpropagates the scalar sum(y * dy), and Tensor "
            "has no sum(); give Tensor a sum() method (or define sum(t) beside it)") in case["reason"]


@pytest.mark.parametrize("engine", ["engine_scalar_seed.py", "engine_tensor_grad.py"])
def test_grads_kept_as_arrays_or_tensors_are_zeroed_between_backward_calls(engine):
    """A network's layer: the weight tensors live on, their .grad (a zero array added to in place,
    or a Tensor) zeroed before each backward, so the second backward is not the sum of two."""
    geometry = resolve_geometry("2x5x5", "3x2x3x3", batch=2, stride=1, padding=1)
    rng = np.random.default_rng(0)
    shapes = (geometry.x_shape, geometry.w_shape, geometry.b_shape, geometry.y_shape)
    x, w, b, dy = (rng.standard_normal(shape) for shape in shapes)
    live = as_implementation(layer(engine)).live(geometry, w, b, Variant())
    expected = reference.backward(dy, x, w, b, **geometry.conv_settings())
    for _ in range(2):
        live.forward(x)
        for got, want in zip(live.backward(dy), expected):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("default, declared, expected", [
    ((1, 1), {}, ((2, 2), (1, 1))),  # a tuple default: tuples, even where the axes agree
    (1, {}, (2, 1)),  # an int default: one int
    ((1, 1), {"one_int": True}, (2, 1)),
    (1, {"per_axis": True}, ((2, 2), (1, 1))),
])
def test_settings_reach_an_engine_conv_as_its_signature_and_declarations_say(default, declared, expected):
    seen = []

    def conv2d(x, w, b, stride=default, padding=default):
        seen.append((stride, padding))
        return x

    engine = types.SimpleNamespace(Tensor=lambda data: types.SimpleNamespace(data=data), conv2d=conv2d)
    declarations = parse_declarations({"tensor": "Tensor", "forward": "conv2d", **declared}, "test")
    adapter = adapt(engine, "engine", declared=declarations)
    x, w, b = np.zeros((1, 2, 6, 6)), np.zeros((3, 2, 3, 3)), np.zeros(3)
    adapter.forward(x, w, b, stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=1)
    assert seen == [expected]


def test_a_declared_one_int_reaches_a_conv_that_unpacks_tuples_as_an_int(tmp_path):
    config = tmp_path / "engine.toml"
    config.write_text("[impl]\none_int = true\n")
    code, case = one_case(layer("engine_scalar_seed.py"), "--impl-config", str(config))
    assert code == 1 and "cannot unpack non-iterable int" in case["reason"]


def test_an_engine_keeping_kernels_inputs_first_with_weight_layout_iohw():
    code, case = one_case(layer("engine_iohw.py"))
    assert code == 0 and case["status"] == "passed", case["reason"]

    assert_red(layer("engine_iohw.py:conv2d_dw_reshaped"), "dK")


def test_an_engine_fixed_at_float32_is_checked_at_float32(tmp_path):
    code, case = one_case(layer("engine_float32.py"), "--dtype", "float32")
    assert code == 0 and case["status"] == "passed", case["reason"]

    assert_red(layer("engine_float32.py:conv2d_unflipped_dx"), "dX", "--dtype", "float32")

    undeclared = without("engine_float32.py", '"dtypes": ["float32"], ', "", tmp_path)
    code, case = one_case(undeclared)
    assert code == 1 and case["status"] == "error"
    assert case["reason"] == (
        'forward returned the output as float32 for float64 inputs: the layer computed in float32 (Tensor converts '
        'its data to float32); declare dtypes = ["float32"] to check it in float32'
    )


def test_engine_convs_without_a_bias_or_with_it_as_a_keyword():
    code, case = one_case(layer("engine_no_bias.py"))
    assert code == 0 and case["status"] == "passed", case["reason"]
    db = case["tensors"][-1]
    assert db["name"] == "db" and db["absent"] == "no bias" and db["checked"] == 0

    code, case = one_case(layer("engine_no_bias.py:conv2d_bias"))
    assert code == 0 and case["status"] == "passed", case["reason"]
    assert case["tensors"][-1]["checked"] == 4
    assert {c["name"]: c["passed"] for c in case["calls"]}["no bias"]  # bias=None, its default

    assert_red(layer("engine_no_bias.py:conv2d_dw_last_image"), "dK")


def test_an_engine_output_without_backward_says_what_to_return(tmp_path):
    path = tmp_path / "numpy_out.py"
    path.write_text(textwrap.dedent("""
        import numpy as np

        CONVGRAD = {"tensor": "Tensor", "forward": "conv2d", "one_int": True}

        class Tensor:
            def __init__(self, data):
                self.data, self.grad = np.asarray(data), None

        def conv2d(x, w, b, stride=1, padding=0):
            s, p = stride, padding
            xp = np.pad(x.data, ((0, 0), (0, 0), (p, p), (p, p)))
            f, c, kh, kw = w.data.shape
            ho, wo = (xp.shape[2] - kh) // s + 1, (xp.shape[3] - kw) // s + 1
            out = np.zeros((x.data.shape[0], f, ho, wo))
            for i in range(kh):
                for j in range(kw):
                    window = xp[:, :, i : i + s * ho : s, j : j + s * wo : s]
                    out += np.einsum("nchw,fc->nfhw", window, w.data[:, :, i, j])
            return out + b.data.reshape(1, -1, 1, 1)  # an array: no graph to backpropagate
        """))
    code, case = one_case(str(path))
    assert code == 1 and case["status"] == "error"
    assert "conv2d returned a ndarray, which has no backward(); return the library's Tensor" in case["reason"]
