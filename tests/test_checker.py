"""The checker on the reference layer and on deliberately wrong layers."""

from __future__ import annotations

import numpy as np
import pytest

from convgrad import reference
from checking import check_layer
from convgrad.geometry import resolve_geometry
from conftest import ReferenceWith
from zoo import layers as zoo

SEED_LAYER = dict(in_shape="3x20x20", kernel_shape="5x3x3x3")


def test_seed_layer_passes_with_errors_below_1e_7():
    case = check_layer(resolve_geometry(**SEED_LAYER))
    assert case.passed
    for tensor in case.tensors:
        assert tensor.max_rel_error < 1e-7, tensor
    coordinates = {t.name: t.checked for t in case.tensors}
    assert coordinates == {"O": 5 * 18 * 18, "dX": 3 * 20 * 20, "dK": 5 * 3 * 3 * 3, "db": 5}


@pytest.mark.parametrize(
    "geometry",
    [
        dict(in_shape="2x7x6", kernel_shape="4x2x3x2", batch=2, stride="3x2", padding="1x2"),
        dict(in_shape="4x9", kernel_shape="4x1x3", groups=4, dilation=2, padding="same"),
        dict(in_shape="2x4x5x4", kernel_shape="2x2x2x3x2", stride=2),
    ],
    ids=["strided-batch", "depthwise-1d", "3d"],
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_correct_layers_pass_in_both_dtypes(geometry, dtype):
    case = check_layer(resolve_geometry(**geometry, dtype=dtype), seed=3)
    assert case.passed, [t.reason for t in case.tensors]


@pytest.mark.parametrize("name, index", [("dX", (0, 1, 7, 3)), ("dK", (4, 2, 0, 1)), ("db", (3,))])
def test_one_coordinate_off_by_1e_5_of_the_scale_is_caught_in_float64(name, index):
    case = check_layer(resolve_geometry(**SEED_LAYER), zoo.OneCoordinateOff(name, index, relative=1e-5))
    assert not case.passed
    assert [t.name for t in case.failing] == [name]
    failing = case.tensor(name)
    assert failing.mismatches == 1
    assert failing.worst_index == index
    assert "1 of" in failing.reason and str(list(index)) in failing.reason


def test_float32_does_not_raise_false_alarms_on_a_larger_layer():
    geometry = resolve_geometry("16x12x12", "16x16x3x3", padding=1, batch=2, dtype="float32")
    case = check_layer(geometry, seed=7)
    assert case.passed, [t.reason for t in case.tensors]


def test_kernels_not_rotated_fails_dx_only():
    case = check_layer(resolve_geometry(**SEED_LAYER), zoo.KernelsNotRotated())
    assert [t.name for t in case.failing] == ["dX"]
    assert case.tensor("dX").max_rel_error > 0.1


@pytest.mark.parametrize(
    "backward, expected_reason",
    [
        (lambda dy, x, w, b, **s: None, "backward returned None"),
        (lambda dy, x, w, b, **s: (x, w), "backward returned 2 results"),
        (lambda dy, x, w, b, **s: (x[..., 1:], w, b), "backward returned shape 1x3x20x19 for dX, expected 1x3x20x20"),
        (lambda dy, x, w, b, **s: (x, w * np.nan, b), "backward returned NaN in dK"),
        (lambda dy, x, w, b, **s: 1 / 0, "backward raised ZeroDivisionError: division by zero (at test_checker.py:"),
        # Raised inside NumPy's compiled code: the line named is still the caller's, in this file.
        (lambda dy, x, w, b, **s: np.random.default_rng(0).normal(size=(2, 2.5)),
         "backward raised TypeError: 'float' object cannot be interpreted as an integer (at test_checker.py:"),
    ],
    ids=["none", "two-results", "wrong-shape", "nan", "raises", "raises-in-compiled-numpy"],
)
def test_misbehaving_backward_is_a_failed_check_with_a_reason(backward, expected_reason):
    layer = ReferenceWith()
    layer.backward = backward
    case = check_layer(resolve_geometry(**SEED_LAYER), layer)
    assert not case.passed
    reasons = [t.reason for t in case.failing]
    assert any(expected_reason in (r or "") for r in reasons), reasons


def test_backward_writing_into_its_input_is_caught():
    class Scribbler(ReferenceWith):
        def backward(self, dy, x, w, b, **settings):
            grads = reference.backward(dy, x, w, b, **settings)
            x *= 2
            return grads

    case = check_layer(resolve_geometry(**SEED_LAYER), Scribbler())
    assert "backward modified its input x in place" in case.reason


def test_forward_failure_fails_every_row():
    class Crashes(ReferenceWith):
        def forward(self, x, w, b, **settings):
            raise ValueError("no")

    case = check_layer(resolve_geometry(**SEED_LAYER), Crashes())
    assert not case.passed
    assert case.reason.startswith("forward raised ValueError: no")
    assert [t.name for t in case.failing] == ["O", "dX", "dK", "db"]


def test_wrong_forward_is_caught_on_the_output_row():
    class Shifted(ReferenceWith):  # a constant shift leaves every gradient unchanged
        def forward(self, x, w, b, **settings):
            return reference.forward(x, w, b, **settings) + 1.0

    case = check_layer(resolve_geometry(**SEED_LAYER), Shifted())
    assert [t.name for t in case.failing] == ["O"]
    assert "worst at" in case.tensor("O").reason and "reference" in case.tensor("O").reason


def test_all_zero_gradients_are_flagged_as_not_meaningful():
    class Zero(ReferenceWith):
        def backward(self, dy, x, w, b, **settings):
            return reference.backward(np.zeros_like(dy), x, w, b, **settings)

    case = check_layer(resolve_geometry("2x5x5", "2x2x3x3"), Zero())
    assert case.tensor("dX").passed is False  # the numerical gradient is not zero
    assert case.tensor("dX").mismatches > 0


class RoundingNoiseForward(ReferenceWith):
    """A correct layer whose forward adds rounding-level noise, as FFT-based convolutions do."""

    def forward(self, x, w, b, **settings):
        y = reference.forward(x, w, b, **settings)
        rng = np.random.default_rng(int(abs(x).sum() * 1e6) % 2**32)
        return y * (1 + 1e-16 * rng.standard_normal(y.shape))


def test_a_structurally_zero_gradient_is_not_measured_against_rounding_noise():
    # Every window sits in the padding along W: the true dX and dK are exactly zero, and the
    # numerical values are pure noise; measured against themselves they would be 100% wrong.
    geometry = resolve_geometry("3x1x1", "2x3x1x1", stride="3x1", padding="2x1")
    case = check_layer(geometry, RoundingNoiseForward(), method="dense")
    assert case.passed, [t.reason for t in case.tensors]
    assert "far below one product term" in (case.tensor("dK").note or "") + (case.tensor("dX").note or "")


def test_the_floor_does_not_hide_a_nonzero_gradient_where_it_should_be_zero():
    class LeaksIntoZeroGradient(ReferenceWith):
        def backward(self, dy, x, w, b, **settings):
            dx, dw, db = reference.backward(dy, x, w, b, **settings)
            return dx + 1e-3 * np.abs(w).max() * np.abs(dy).max(), dw, db

    geometry = resolve_geometry("3x1x1", "2x3x1x1", stride="3x1", padding="2x1")
    case = check_layer(geometry, LeaksIntoZeroGradient())
    assert [t.name for t in case.failing] == ["dX"]
