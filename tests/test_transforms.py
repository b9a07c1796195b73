"""Exact transform algorithms in float32: FFT and Winograd layers pass, narrower sums still fail.

An FFT or Winograd layer rounds differently from the direct sums: its rounding is spread over each
plane (numerics/rounding.py, docs/MATH.md), so a coordinate that sums few products can be off by
more than its own products' rounding. The spread term of the model accepts that; the layers that
keep float16 or bfloat16 sums, or round their operands to TF32, stay tens to thousands of times
past the bound. Fixtures: tests/zoo/transforms.py.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from checking import against_bounds, check_layer, skipped_for_uneven_padding
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry
from convgrad.numerics.rounding import rounding_bounds
from convgrad.options import CheckOptions
from convgrad.run.case import random_tensors
from convgrad.suite import load_suite
from zoo import transforms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDARD = os.path.join(ROOT, "configs", "standard.toml")
TRANSFORMS = os.path.join(ROOT, "tests", "zoo", "transforms.py")
SUITE = {c.name: c.geometry for c in load_suite(STANDARD).cases}


@pytest.mark.parametrize("layer", ["FFTConv", "Winograd23Conv", "Winograd43Conv"])
@pytest.mark.slow
def test_correct_transform_layers_pass_the_whole_standard_suite(layer):
    result = CliRunner().invoke(cli, ["check", "--impl", f"{TRANSFORMS}:{layer}", "--config", STANDARD, "--json"])
    report = json.loads(result.output)
    failing = [(c["name"], c["reason"] or [t["reason"] for t in c["tensors"] if not t["passed"]]) for c in report["cases"]
               if c["status"] != "passed" and not skipped_for_uneven_padding(c)]
    assert failing == [] and result.exit_code == 0


@pytest.mark.parametrize("layer", ["Float16Sums", "Bfloat16Sums", "TF32Operands"])
@pytest.mark.parametrize("case", ["basic 3", "sizes 2: 4160 outputs, float32"])
def test_layers_with_narrower_sums_or_operands_fail_float32_cases_by_their_bits(layer, case):
    report = check_layer(SUITE[case], getattr(transforms, layer)())
    assert not report.passed
    lost = [t for t in report.rows if not t.passed and t.precision is not None]
    assert lost, [t.reason for t in report.rows if not t.passed]
    assert all(t.precision.bits <= 17 for t in lost)  # float32 carries 24
    assert any("significant bits" in (t.reason or "") for t in lost)


def _worst_ratio(layer, geometry, tensors):
    return max(row.precision.largest_ratio for row in against_bounds(layer, geometry, tensors))


@pytest.mark.parametrize("data", ["normal", "relu", "max-pool gradient"])
def test_the_spread_term_holds_winograd_4x4_on_a_network_s_data_and_no_narrow_sum(data):
    # F(4x4, 3x3) is the loosest transform measured (its transforms reach 8 and 1/24): on the data a
    # network feeds it, sparse gradients included, it stays inside the bound, float16 sums do not.
    geometry = resolve_geometry("10x12x11", "10x2x3x3", padding=1, groups=5, batch=2, dtype="float32")
    x, w, b, dy = random_tensors(geometry, CheckOptions(seed=3))
    if data == "relu":
        x = np.maximum(x, 0)
    if data == "max-pool gradient":
        dy = np.where(np.random.default_rng(3).random(dy.shape) < 0.25, dy, 0).astype(np.float32)
    assert _worst_ratio(transforms.Winograd43Conv(), geometry, (x, w, b, dy)) < 0.9
    assert _worst_ratio(transforms.Float16Sums(), geometry, (x, w, b, dy)) > 10
    assert _worst_ratio(transforms.TF32Operands(), geometry, (x, w, b, dy)) > 10


def test_the_spread_term_leaves_db_and_far_coordinates_to_the_direct_bound():
    geometry = resolve_geometry("3x20x20", "5x3x3x3", dtype="float32")
    x, w, b, dy = random_tensors(geometry, CheckOptions())
    bounds = rounding_bounds(x, w, b, dy, geometry)
    zero = np.zeros_like(dy)
    no_gradient = rounding_bounds(x, w, b, zero, geometry)
    assert bounds is not None and no_gradient is not None
    assert np.all(no_gradient.bound["dX"] < 1e-30)  # no dy: no products, and nothing for a transform to spread
    # db is a plain sum over items and positions: the same bound with or without x in play.
    assert np.array_equal(bounds.bound["db"], rounding_bounds(np.zeros_like(x), w, b, dy, geometry).bound["db"])
