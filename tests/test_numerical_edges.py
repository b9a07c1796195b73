"""No false alarms near the edges of floating point, and no silent pass where nothing was tested.

Tiny and huge magnitudes (each of x, w, b and dy scaled by 1e-6 or 1e6 on its own), all-zero
inputs, stride holes that receive exactly zero gradient, and float32 on a wide layer.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from checking import check_layer
from convgrad.options import CheckOptions
from convgrad.render.console import make_console
from convgrad.errors import SettingError
from convgrad.geometry import resolve_geometry
from convgrad.render.json import case_to_dict
from convgrad.render.table import render_case, render_verdict
from layer_strategies import PROFILE
from zoo import layers as zoo

# Strided, padded, batched and grouped, so every code path of the layer is involved.
LAYER = dict(in_shape="4x7x6", kernel_shape="4x2x3x2", batch=2, stride="2x1", padding="1x0", groups=2)
NOT_MEANINGFUL = "cannot tell a right gradient from a wrong one"


def rendered(case) -> str:
    console = make_console(file=io.StringIO(), width=100)
    console.print(render_case(case))
    return " ".join(console.file.getvalue().split())  # unwrapped, so phrases can be searched


def reasons(case) -> list[str]:
    return [f"{t.name}: {t.reason}" for t in case.failing]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("factor", [1e-6, 1e6])
@pytest.mark.parametrize("tensor", ["x", "w", "b", "dy", "all"])
def test_tiny_and_huge_magnitudes_pass(tensor, factor, dtype):
    scale = dict.fromkeys(["x", "w", "b", "dy"], factor) if tensor == "all" else {tensor: factor}
    case = check_layer(resolve_geometry(**LAYER, dtype=dtype), seed=5, scale=scale)
    assert case.passed, reasons(case)
    assert all(t.checked == t.total for t in case.tensors)
    assert not any(t.note for t in case.tensors)  # nothing is degenerate here


@pytest.mark.parametrize("factor", [1e-6, 1e6])
def test_a_wrong_gradient_is_still_caught_at_extreme_magnitudes(factor):
    scale = dict.fromkeys(["x", "w", "b", "dy"], factor)
    # A tenth of the smallest error the float64 tolerance promises to catch (1e-5 of the scale).
    case = check_layer(resolve_geometry(**LAYER), zoo.OneCoordinateOff("db", (1,), relative=1e-6), seed=5, scale=scale)
    assert [t.name for t in case.failing] == ["db"]


def test_scaled_tensors_are_the_seeded_ones_times_the_factor():
    from convgrad.run.case import random_tensors

    geometry = resolve_geometry(**LAYER)
    plain = random_tensors(geometry, CheckOptions(seed=3))
    scaled = random_tensors(geometry, CheckOptions(seed=3, scale={"w": 1e6, "dy": 0.0}))
    np.testing.assert_array_equal(scaled[0], plain[0])
    np.testing.assert_allclose(scaled[1], plain[1] * 1e6, rtol=1e-15)
    np.testing.assert_array_equal(scaled[3], 0.0)


@pytest.mark.parametrize("scale", [{"z": 1.0}, {"x": float("nan")}, {"dy": float("inf")}])
def test_bad_scales_are_refused(scale):
    with pytest.raises(SettingError):
        check_layer(resolve_geometry(**LAYER), scale=scale)


def test_zero_input_makes_dk_unmeaningful_and_the_report_says_so():
    """x = 0: O = b whatever w is, so dK is exactly zero both ways and proves nothing."""
    case = check_layer(resolve_geometry(**LAYER), seed=1, scale={"x": 0.0})
    dk = case.tensor("dK")
    assert np.all(dk.analytical == 0) and np.all(dk.numerical == 0)
    assert NOT_MEANINGFUL in dk.note
    assert case.tensor("dX").note is None and case.tensor("db").note is None
    table = rendered(case)
    assert f"note: dK: both are exactly zero everywhere, so this comparison {NOT_MEANINGFUL}" in table
    assert "see the note on dK" in render_verdict(case).plain  # --quiet shows it too
    as_json = json.loads(json.dumps(case_to_dict(case)))
    (dk_json,) = [t for t in as_json["tensors"] if t["name"] == "dK"]
    assert NOT_MEANINGFUL in dk_json["note"]


def test_zero_upstream_gradient_makes_every_gradient_unmeaningful():
    case = check_layer(resolve_geometry(**LAYER), seed=1, scale={"dy": 0.0})
    for name in ("dX", "dK", "db"):
        assert NOT_MEANINGFUL in case.tensor(name).note
    assert case.tensor("O").note is None  # O is still compared with real numbers
    assert "see the note on dX, dK, db" in render_verdict(case).plain


def test_a_wrong_layer_on_all_zero_inputs_is_not_a_silent_pass(reference_with):
    """With x = 0 a wrong dK formula cannot be seen; the report must not claim it was checked."""

    class WrongDk(reference_with):
        def backward(self, dy, x, w, b, **settings):
            dx, dw, db = super().backward(dy, x, w, b, **settings)
            return dx, dw * 2, db

    case = check_layer(resolve_geometry(**LAYER), WrongDk(), seed=1, scale={"x": 0.0})
    assert NOT_MEANINGFUL in case.tensor("dK").note
    assert NOT_MEANINGFUL in rendered(case)
    # ... and on real inputs the same layer fails.
    assert [t.name for t in check_layer(resolve_geometry(**LAYER), WrongDk(), seed=1).failing] == ["dK"]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_stride_holes_get_exactly_zero_gradient_and_pass(dtype):
    """Stride 3 with a kernel of 2 never reads every third row and column: their dX is exactly 0."""
    geometry = resolve_geometry("2x11x8", "3x2x2x2", stride=3, batch=2, dtype=dtype)
    case = check_layer(geometry, seed=2)
    assert case.passed, reasons(case)
    dx = case.tensor("dX")
    holes = np.zeros(geometry.x_shape, dtype=bool)
    holes[:, :, 2::3, :] = True
    holes[:, :, :, 2::3] = True
    assert np.all(dx.analytical[holes] == 0) and np.all(dx.numerical[holes] == 0)
    assert np.all(dx.analytical[~holes] != 0)
    assert dx.note is None  # zero in places is normal; only an all-zero tensor is unmeaningful


def test_float32_on_a_wide_layer_has_no_false_alarm():
    """32 channels in and out, 3x3: each output sums 288 float32 products."""
    geometry = resolve_geometry("32x6x6", "32x32x3x3", padding=1, dtype="float32")
    case = check_layer(geometry, seed=4)
    assert case.passed, reasons(case)
    # The margin: float32 errors stay two orders of magnitude below the tolerance.
    assert max(t.max_rel_error for t in case.tensors) < case.tolerances.rtol / 100


@pytest.mark.skipif(PROFILE != "long", reason="about a minute on one core; runs with CONVGRAD_PROFILE=long")
def test_float32_on_a_wide_layer_16x16_has_no_false_alarm():
    geometry = resolve_geometry("32x16x16", "32x32x3x3", padding=1, dtype="float32")
    case = check_layer(geometry, seed=4)
    assert case.passed, reasons(case)
    assert max(t.max_rel_error for t in case.tensors) < case.tolerances.rtol / 100

