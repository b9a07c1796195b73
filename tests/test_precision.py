"""float32 checked as tightly as float32 allows: the rounding model, effective bits, likely causes.

Layers that keep fewer bits (tests/zoo/layers.py: float16 buffers, TF32 operands, a forward through
float16) stay within 1e-3 of each tensor's scale, so only the rounding model catches them; correct
float32 layers (torch, and NumPy einsum, im2col with matmul, loop of taps) must never be flagged.
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checking import against_bounds, check_layer
from convgrad import reference
from convgrad.cli import cli
from convgrad.compare import compare_bounded, effective_bits
from convgrad.geometry import resolve_geometry
from convgrad.numerics.rounding import LAMBDA, rounding_bounds
from convgrad.options import CheckOptions
from convgrad.run.case import random_tensors
from convgrad.suite import load_suite
from layer_strategies import layers
from zoo import layers as zoo

ROOT = os.path.join(os.path.dirname(__file__), "..")
SEED_F32 = resolve_geometry("3x20x20", "5x3x3x3", dtype="float32")
GROUPED_F32 = resolve_geometry("4x9x8", "6x2x3x3", batch=2, stride=2, padding=1, groups=2, dtype="float32")
ZOO = os.path.join(ROOT, "tests", "zoo", "layers.py")


@functools.cache
def _torch_layer():
    pytest.importorskip("torch")
    from convgrad.frameworks.torch_layer import TorchLayer

    return TorchLayer()


@pytest.mark.parametrize("layer_class", list(zoo.FLOAT32_FEWER_BITS))
@pytest.mark.parametrize("geometry", [SEED_F32, GROUPED_F32], ids=["seed", "grouped-strided"])
def test_a_layer_that_keeps_fewer_bits_fails_in_float32_naming_tensor_bits_and_cause(layer_class, geometry):
    row_label, cause = zoo.FLOAT32_FEWER_BITS[layer_class]
    case = check_layer(geometry, layer_class())
    assert not case.passed
    row = next(t for t in case.rows if t.label == row_label)
    assert not row.passed and row.precision is not None
    assert 9 <= row.precision.bits <= 16, row.precision  # float16 and TF32 keep 11 significant bits
    assert row.precision.cause is not None and cause in row.precision.cause
    assert f"{row.name} carries about {row.precision.bits} significant bits of 24" in row.reason
    assert cause in case.failure_summary
    # Around the flat 1e-3 of the scale float32 was held to before, which caught these by chance if at all.
    assert row.max_rel_error < 2e-3


@pytest.mark.parametrize("layer_class", list(zoo.FLOAT32_FEWER_BITS))
def test_the_same_layers_pass_in_float64(layer_class):
    case = check_layer(resolve_geometry("3x9x8", "5x3x3x3", padding=1, dtype="float64"), layer_class())
    assert case.passed, case.failure_summary
    assert case.reference_gradients == ()  # float64 keeps its tensor-scale tolerance


def test_only_the_gradient_that_lost_bits_fails():
    case = check_layer(SEED_F32, zoo.KernelGradientInFloat16())
    assert [t.label for t in case.failing] == ["dK vs float64 reference"]
    assert case.diagnoses == ()  # losing bits is none of the classic structural mistakes
    # One status, set when the row was judged, read by the case: no row is passed to hide it.
    assert [t.status for t in case.failing] == ["lost precision"] and not case.failing[0].diagnosable
    assert case.status == "lost precision" and case.failed and not case.passed


def test_tf32_products_fail_every_tensor_and_later_calls_by_the_same_model():
    case = check_layer(SEED_F32, zoo.TF32Products())
    assert {t.label for t in case.failing} == {"O", "dX vs float64 reference", "dK vs float64 reference",
                                               "db vs float64 reference"}
    second = case.calls[0]
    assert second.name == "second call" and not second.passed
    assert "rounding in 24 bits allows" in second.reason


@pytest.mark.parametrize("layer_class", zoo.FLOAT32_CORRECT)
def test_correct_numpy_float32_layers_pass_with_every_bit(layer_class):
    case = check_layer(GROUPED_F32, layer_class())
    assert case.passed, case.failure_summary
    assert [t.name for t in case.reference_gradients] == ["dX", "dK", "db"]
    assert all(t.precision is not None and t.precision.bits >= 21 for t in (case.tensor("O"), *case.reference_gradients))


def _correct_float32_layers():
    return [_torch_layer(), *(cls() for cls in zoo.FLOAT32_CORRECT)]


@pytest.mark.slow
def test_correct_float32_layers_pass_every_float32_case_of_the_standard_suite():
    suite = load_suite(os.path.join(ROOT, "configs", "standard.toml"))
    cases = [c for c in suite.cases if c.geometry.dtype == "float32"]
    assert len(cases) >= 20
    for layer in _correct_float32_layers():
        for case in cases:
            # Projections keep the finite differences cheap: the reference rows judge every coordinate.
            report = check_layer(case.geometry, layer, method="projection", samples=4)
            assert report.passed, f"{case.name}, {layer.name}: {report.failure_summary}"
            assert len(report.reference_gradients) == 3


def _against_bounds(layer, geometry, seed):
    """Every coordinate of the layer's O, dX, dK and db against the rounding bound (no pipeline)."""
    return against_bounds(layer, geometry, random_tensors(geometry, CheckOptions(seed=seed)))


@pytest.mark.parametrize(
    "geometry",
    [
        resolve_geometry("32x28x28", "64x32x3x3", batch=2, padding=1, dtype="float32"),
        resolve_geometry("64x56x56", "64x64x3x3", padding=1, dtype="float32"),  # ResNet-50's 3x3 layer
    ],
    ids=["32x28x28-64-kernels-batch-2", "resnet50-3x3"],
)
def test_correct_float32_layers_pass_large_layers_by_the_model(geometry):
    """Every coordinate of O, dX, dK and db against the bound (the pipeline's later calls and finite
    differences on these layers are covered elsewhere and would take minutes here)."""
    for layer in (_torch_layer(), zoo.Float32Im2col()):
        for row in _against_bounds(layer, geometry, seed=0):
            assert row.passed, f"{layer.name} {row.name}: {row.reason}"
            assert row.precision is not None and row.precision.largest_ratio < 0.5  # measured: below 0.2


def test_a_coordinate_no_product_reaches_must_be_zero_up_to_transform_noise():
    # Stride 3 with a 1x1 kernel: two of every three input rows are never read, dX is exactly 0 there
    # for direct sums; a transform (FFT) leaves its spread rounding there, far below one product.
    geometry = resolve_geometry("2x7x7", "3x2x1x1", stride=3, dtype="float32")
    x, w, b, dy = random_tensors(geometry, CheckOptions())
    bounds = rounding_bounds(x, w, b, dy, geometry)
    assert bounds is not None
    unread = bounds.bound["dX"][0, 0, 1, 1]
    assert 0 < unread < 1e-4 * float(np.abs(w).max() * np.abs(dy).max())
    correct = reference.backward(*(t.astype(np.float64) for t in (dy, x, w, b)), stride=(3, 3), padding=(0, 0),
                                 dilation=(1, 1), groups=1)[0]
    assert correct[0, 0, 1, 1] == 0.0
    wrong = correct.copy()
    wrong[0, 0, 1, 1] = 2e-4 * float(np.abs(correct).max())  # far below the flat 1e-3 of the scale
    row = compare_bounded("dX", wrong, correct, bounds, method="float64 reference")
    assert not row.passed and row.mismatches == 1 and row.worst_index == (0, 0, 1, 1)
    assert compare_bounded("dX", correct.astype(np.float32), correct, bounds, method="float64 reference").passed


def test_a_nan_fails_the_model():
    x, w, b, dy = random_tensors(SEED_F32, CheckOptions())
    bounds = rounding_bounds(x, w, b, dy, SEED_F32)
    assert bounds is not None
    expected = reference.forward(*(t.astype(np.float64) for t in (x, w, b)), **SEED_F32.conv_settings())
    broken = expected.copy()
    broken[0, 0, 0, 0] = np.nan
    row = compare_bounded("O", broken, expected, bounds, method="reference forward")
    assert not row.passed and row.mismatches == 1


def test_effective_bits_counts_the_bits_the_largest_relative_error_leaves():
    magnitude = np.array([1.0, 2.0, 4.0, 0.0])
    assert effective_bits(np.array([2.0**-11, 0.0, 0.0, 0.0]), magnitude, 24) == 11
    assert effective_bits(np.array([0.0, 2.0**-12, 2.0**-14, 0.0]), magnitude, 24) == 13
    assert effective_bits(np.zeros(4), magnitude, 24) == 24  # exact: every bit the dtype has
    assert effective_bits(np.array([0.0, 0.0, 0.0, 1e-30]), magnitude, 24) == 0  # no magnitude, nonzero


def test_float64_keeps_its_tolerance_and_gains_no_rows():
    case = check_layer(resolve_geometry("3x9x8", "5x3x3x3"))
    assert case.passed and case.reference_gradients == ()
    assert case.tensor("O").precision is None and case.tensor("O").compared_with == "float64 reference"
    assert [t.compared_with for t in case.gradients] == ["finite differences"] * 3


def test_json_and_table_say_which_comparison_each_row_is_and_the_bits():
    args = ["check", "--in", "3x9x8", "--kernels", "5x3x3x3", "--dtype", "float32", "--impl",
            f"{ZOO}:KernelGradientInFloat16"]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 1, result.output
    case = json.loads(result.output)["cases"][0]
    assert [t["compared_with"] for t in case["tensors"]] == ["float64 reference"] + ["finite differences"] * 3
    rows = {t["name"]: t for t in case["reference_gradients"]}
    assert list(rows) == ["dX", "dK", "db"]
    dk = rows["dK"]
    assert not dk["passed"] and dk["compared_with"] == "float64 reference"
    assert dk["precision"]["lambda"] == LAMBDA and dk["precision"]["dtype_bits"] == 24
    assert 9 <= dk["precision"]["effective_bits"] <= 13
    assert "float16 accumulation" in dk["precision"]["likely_cause"]
    assert dk["precision"]["largest_error_over_bound"] > 10
    assert rows["dX"]["passed"] and rows["dX"]["precision"]["likely_cause"] is None
    table = CliRunner(env={"COLUMNS": "120"}).invoke(cli, args)
    assert table.exit_code == 1
    assert "against" in table.output and "bits" in table.output
    assert "LOST BITS: dK vs float64 reference does not match" in table.output.replace("\n", " ")
    assert dk["status"] == case["status"] == "lost precision"
    assert "LOST BITS" in next(line for line in table.output.splitlines() if "reference" in line and "dK" in line)
    # At 80 columns the bits a tensor carries are kept; abs err and got make room first.
    narrow = CliRunner(env={"COLUMNS": "80"}).invoke(cli, args)
    header = next(line for line in narrow.output.splitlines() if line.strip().startswith("tensor"))
    assert "bits" in header.split() and "against" in header.split() and "abs" not in header.split(), header


# --- no false alarm: random float32 layers, torch and NumPy ------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometry=layers("float32"), seed=st.integers(0, 2**16), numpy_layer=st.sampled_from(zoo.FLOAT32_CORRECT))
@pytest.mark.slow
def test_no_false_alarm_over_random_float32_layers(geometry, seed, numpy_layer):
    """The bound itself, over 200 random float32 layers, each for torch and one NumPy layer: every
    coordinate of O, dX, dK and db."""
    for layer in (_torch_layer(), numpy_layer()):
        for row in _against_bounds(layer, geometry, seed):
            assert row.passed, f"{layer.name} {geometry.describe()} {row.name}: {row.reason}"


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(geometry=layers("float32"), seed=st.integers(0, 2**16))
@pytest.mark.slow
def test_no_false_alarm_through_the_pipeline(geometry, seed):
    """Part of the same layers through run_case: first call, reference rows and later calls."""
    for layer in (_torch_layer(), zoo.Float32Im2col()):
        case = check_layer(geometry, layer, seed=seed, method="projection", samples=4)
        assert case.passed, f"{layer.name} {geometry.describe()}: {case.failure_summary}"


def test_a_tensor_wrong_against_both_comparisons_is_named_once_in_the_verdict():
    from convgrad.render.table import render_verdict

    case = check_layer(resolve_geometry("3x8x8", "5x3x3x3", dtype="float32"), zoo.KernelsNotRotated())
    assert {t.label for t in case.failing} == {"dX", "dX vs float64 reference"}
    assert render_verdict(case).plain == "FAIL: dX does not match"
    lossy = check_layer(resolve_geometry("3x8x8", "5x3x3x3", dtype="float32"), zoo.KernelGradientInFloat16())
    assert render_verdict(lossy).plain == "LOST BITS: dK vs float64 reference does not match"


def test_later_calls_name_rounding_not_state_or_layout_only_close_to_the_bound():
    from convgrad.findings.precision import rounding_only
    from convgrad.report import Precision, TensorComparison

    def row(ratio: float, bits: int, precision: bool = True) -> TensorComparison:
        judged = Precision(unit_roundoff=2.0**-24, lam=2.0, largest_ratio=ratio, bits=bits, dtype_bits=24)
        return TensorComparison(name="O", expected_shape=(1,), shape=(1,), tolerance=1e-6, status="passed" if ratio <= 1.0 else "failed",
                                method="reference", precision=judged if precision else None)

    assert "1.2x the rounding bound, 22 of 24 bits kept: rounding, not state or layout" in rounding_only([row(1.2, 22)])
    assert rounding_only([row(0.5, 24), row(1.2, 22)]) is not None  # the failing rows decide
    assert rounding_only([row(20.0, 22)]) is None  # far past the bound: state, layout or a bug
    assert rounding_only([row(1.2, 18)]) is None  # six bits lost is no rounding
    assert rounding_only([row(1.2, 22, precision=False)]) is None  # float64: no rounding model
    assert rounding_only([row(0.5, 24)]) is None  # nothing failed
