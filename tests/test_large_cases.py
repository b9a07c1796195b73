"""Large cases: every coordinate against the reference, the backward tied to the forward by directions.

Past the size budget (numerics/plan.py) `auto` stops differencing every coordinate: the reference
backward proves every coordinate of dX, dK and db, and a few random directions prove that the
backward is the derivative of the forward the layer actually computes. Each test here shows one
of those halves catching what only it can catch, and the plan the report records.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from checking import check_layer
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry
from convgrad.numerics.plan import FULL_CHECK_BUDGET, REFERENCE_DIRECTIONS, differences_work
from zoo.layers import OneCoordinateOff, TapLoopConv

# The smallest layer of the tests that is over the budget: 8.6e7 multiply-adds of differences.
LARGE = resolve_geometry("8x32x32", "8x8x3x3", padding=1)


def test_the_large_geometry_is_over_the_budget_and_the_seed_within_it():
    assert differences_work(LARGE) > FULL_CHECK_BUDGET
    assert differences_work(resolve_geometry("3x20x20", "5x3x3x3")) < FULL_CHECK_BUDGET / 10


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_correct_large_layer_passes_with_few_calls_and_says_how(dtype):
    report = check_layer(resolve_geometry("8x32x32", "8x8x3x3", padding=1, dtype=dtype), TapLoopConv())
    assert report.passed, report.failing
    assert report.large is not None and report.large.method == "reference"
    assert "multiply-adds" in (report.large.why or "")
    for row in report.gradients:
        assert row.plan is not None and row.plan.method == "reference"
        assert row.checked == row.total  # every coordinate, against the reference
        assert row.forward_calls <= REFERENCE_DIRECTIONS + 3  # base, linearity test, one-sided directions
    assert report.reference_gradients == ()  # the gradient rows are already against the reference


@pytest.mark.parametrize("gradient", ["dX", "dK", "db"])
def test_one_coordinate_off_by_1e_5_fails_at_that_coordinate(gradient):
    layer = OneCoordinateOff(gradient, 3, 1e-5)
    report = check_layer(LARGE, layer)
    row = report.tensor(gradient)
    assert not row.passed and row.mismatches == 1
    assert np.ravel_multi_index(row.worst[0].index, row.expected_shape) == 3


class ForwardKeyedByShape(TapLoopConv):
    """Returns the output it computed first for any input of the same shape: right at the inputs a
    unit test draws, constant everywhere else, so its backward is no derivative of it."""

    def __init__(self):
        self.memo = {}

    def forward(self, x, w, b, **settings):
        key = (x.shape, w.shape)
        if key not in self.memo:
            self.memo[key] = super().forward(x, w, b, **settings)
        return self.memo[key].copy()


def test_a_backward_that_is_not_the_forwards_derivative_fails_by_the_directions():
    report = check_layer(LARGE, ForwardKeyedByShape())
    assert not report.passed
    for name in ("dX", "dK"):
        assert "not the derivative of the layer's own forward" in (report.tensor(name).reason or "")


def test_method_coloured_differences_every_coordinate_at_any_size():
    report = check_layer(LARGE, method="coloured")
    assert report.passed and report.large is None
    assert all(t.plan is not None and t.plan.method == "coloured" for t in report.gradients)


def test_the_json_records_the_plan_of_each_gradient():
    result = CliRunner().invoke(cli, ["check", "--in", "8x32x32", "--kernels", "8x8x3x3", "--padding", "1", "--json"])
    assert result.exit_code == 0, result.output
    tensors = {t["name"]: t for t in json.loads(result.output)["cases"][0]["tensors"]}
    assert tensors["O"]["plan"] is None
    plan = tensors["dK"]["plan"]
    assert plan["method"] == "reference" and plan["samples"] == REFERENCE_DIRECTIONS
    assert plan["differences"] == "auto" and "multiply-adds" in plan["why"]
    assert tensors["dK"]["compared_with"] == "float64 reference"


def test_method_reference_without_the_forward_check_is_refused_in_one_line():
    result = CliRunner().invoke(
        cli, ["check", "--in", "3x8x8", "--kernels", "2x3x3x3", "--method", "reference", "--no-forward-check"]
    )
    assert result.exit_code == 2
    assert "--method reference" in result.output and "--method auto" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_a_redo_one_coordinate_at_a_time_is_capped_by_the_budget():
    # Under the budget by differences, but its outputs move where no perturbation reaches (int16
    # indices wrap past 32767 elements): every coordinate one at a time would be 66560 calls.
    from zoo.sizes import Int16Indices

    geometry = resolve_geometry("8x64x65", "1x8x3x3", padding=1, dtype="float32")
    assert differences_work(geometry) < FULL_CHECK_BUDGET
    report = check_layer(geometry, Int16Indices())
    row = next(t for t in report.tensors if t.name == "dX")
    assert row.method == "sample" and row.checked < 200
    assert "random coordinates of 33280 were redone" in (row.note or "")
    assert not report.passed and not report.tensor("O").passed  # the forward is what is wrong
    assert report.forward_calls < 2000
