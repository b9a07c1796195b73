"""One-sided differences: used where the forward is affine in a tensor, never trusted where it is not.

The linearity test (numerics/linearity.py) decides per tensor; these tests count forward calls
(never time) and use layers from the zoo whose forward is not affine, which one-sided differences
alone would misjudge.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from checking import check_layer
from convgrad.cli import cli
from convgrad.errors import SettingError
from convgrad.geometry import resolve_geometry
from convgrad.numerics.colouring import input_colouring
from convgrad.numerics.method import SPOT_CHECKS
from zoo import layers as zoo

SEED = resolve_geometry("3x20x20", "5x3x3x3")
GRADIENTS = ("dX", "dK", "db")


def methods(case) -> dict[str, str]:
    return {t.name: t.method for t in case.tensors if t.name in GRADIENTS}


def test_one_sided_and_central_give_the_same_numbers_and_dk_costs_half():
    one_sided = check_layer(SEED)
    central = check_layer(SEED, differences="central")
    assert one_sided.passed and central.passed
    assert methods(one_sided) == {"dX": "coloured, one-sided", "dK": "coloured, one-sided", "db": "dense, one-sided"}
    assert methods(central) == {"dX": "coloured", "dK": "coloured", "db": "coloured"}
    for o, c in zip(one_sided.tensors[1:], central.tensors[1:]):
        scale = np.max(np.abs(c.numerical))
        np.testing.assert_allclose(o.numerical, c.numerical, rtol=0, atol=1e-12 * scale)
    spots, linearity = 2 * SPOT_CHECKS, 2
    assert central.tensor("dK").forward_calls == 2 * 27 + spots
    assert one_sided.tensor("dK").forward_calls == 27 + linearity + spots
    differenced = [sum(t.forward_calls for t in case.tensors) for case in (one_sided, central)]
    assert differenced[0] < 0.75 * differenced[1]


class CountsItems(zoo.TapLoopConv):
    """A correct layer that counts the batch items it is asked to compute (a batched call costs
    as much as its items)."""

    def __init__(self):
        self.items = 0

    def forward(self, x, w, b, **settings):
        self.items += x.shape[0]
        return super().forward(x, w, b, **settings)


def test_one_sided_differences_compute_half_the_batch_items():
    geometry = resolve_geometry("6x12x12", "4x3x3", padding=1)
    colours, kernel_slots = len(input_colouring(geometry).used()), 6 * 3 * 3
    items = {}
    for differences in ("central", "one-sided"):  # one-sided forced: no linearity test
        layer = CountsItems()
        assert check_layer(geometry, layer, method="coloured", differences=differences).passed
        items[differences] = layer.items
    # Everything else (first call, x's copy and x alone, spot checks, later calls) is the same;
    # one-sided adds the shared base and drops the - side: of every dX colour (in stacked
    # batches), of every kernel slot, and of the one bias colour.
    assert items["central"] - items["one-sided"] == colours + kernel_slots + 1 - 1


@pytest.mark.parametrize("c", [1e-3, 1e-6, 1e-9])
def test_a_layer_quadratic_in_w_alone_falls_back_to_central_for_dk_only(c):
    layer = zoo.QuadraticInKernelsExact()
    layer.c = c
    case = check_layer(SEED, layer, forward_check=False)
    assert case.passed, [(t.name, t.reason) for t in case.tensors]
    assert methods(case)["dX"] == "coloured, one-sided" and methods(case)["db"] == "dense, one-sided"
    dk = case.tensor("dK")
    if c >= 1e-6:  # a bend far above rounding: seen, and dK is differenced centrally
        assert dk.method == "coloured"
        assert dk.note.startswith("forward is not linear in w (second difference ")
        assert "of the first); central differences with a step of " in dk.note
    assert case.tensor("dX").note is None and case.tensor("db").note is None


def test_without_the_linearity_test_that_layer_would_be_a_false_alarm_or_caught_by_spot_checks():
    layer = zoo.QuadraticInKernelsExact()
    dense = check_layer(SEED, layer, forward_check=False, differences="one-sided", method="dense")
    assert [t.name for t in dense.failing] == ["dK"]  # off by c * h of dK: a false alarm
    # Coloured results keep central spot checks: they disagree, and dK is redone one at a time.
    coloured = check_layer(SEED, layer, forward_check=False, differences="one-sided", method="coloured")
    assert coloured.passed and "spot-checked" in coloured.tensor("dK").note


def test_a_quadratic_term_the_backward_omits_is_caught():
    case = check_layer(SEED, zoo.QuadraticInKernels(), forward_check=False)
    assert {t.name for t in case.failing} == {"dX", "dK"}  # the term moves y with x as well
    assert "not linear in w" in case.tensor("dK").note and case.tensor("dK").method == "coloured"
    assert case.tensor("db").passed


def test_a_layer_that_clips_large_inputs_is_caught_with_central_differences():
    case = check_layer(SEED, zoo.SaturatesLargeInputs())
    o = case.tensor("O")
    assert o.mismatches == 0  # nothing is clipped at the inputs drawn, but at the linearity test's:
    assert not o.passed and o.reason.startswith("the output at x moved by +")
    assert "differs from the reference convolution of those inputs" in o.reason
    dx = case.tensor("dX")
    assert not dx.passed and dx.method == "coloured"
    assert dx.note.startswith("forward is not linear in x")
    assert case.tensor("dK").passed and case.tensor("dK").method == "coloured, one-sided"


class BendsAwayFromRandomDirections(zoo.TapLoopConv):
    """Adds c * max(x)^2 to every output: a bend only a large coordinate sees. A random +-h
    direction raises max(x) too, so the linearity test sees it."""

    c = 1e-3

    def forward(self, x, w, b, **settings):
        y = super().forward(x, w, b, **settings)
        return y + self.c * float(np.max(x)) ** 2


def test_a_bend_in_one_coordinate_is_still_seen():
    case = check_layer(SEED, BendsAwayFromRandomDirections(), forward_check=False)
    assert not case.tensor("dX").passed
    assert "not linear in x" in (case.tensor("dX").note or "")


def test_float32_correct_layers_use_one_sided_differences_everywhere():
    for geometry in (
        resolve_geometry("8x12x12", "8x8x3x3", padding=1, dtype="float32"),
        resolve_geometry("6x10x10", "6x3x3x3", padding=1, batch=2, groups=2, dtype="float32"),
    ):
        case = check_layer(geometry, zoo.TapLoopConv())
        assert case.passed
        # db's one colour costs one call either way: central, without the linearity test
        assert methods(case) == {"dX": "coloured, one-sided", "dK": "coloured, one-sided", "db": "coloured"}


def test_float32_quadratic_layer_falls_back_for_dk():
    layer = zoo.QuadraticInKernelsExact()
    case = check_layer(resolve_geometry("8x12x12", "8x8x3x3", padding=1, dtype="float32"), layer, forward_check=False)
    assert case.passed and case.tensor("dK").method == "coloured" and "not linear in w" in case.tensor("dK").note


def test_differences_are_a_setting_of_the_api_and_the_command_line():
    with pytest.raises(SettingError, match="differences='forward' is not known; use one of auto, central, one-sided"):
        check_layer(SEED, differences="forward")
    runner = CliRunner()
    args = ["check", "--in", "3x8x8", "--kernels", "4x3x3x3", "--json"]
    central = json.loads(runner.invoke(cli, [*args, "--differences", "central"]).output)
    auto = json.loads(runner.invoke(cli, args).output)
    assert [t["method"] for t in central["cases"][0]["tensors"][1:]] == ["coloured", "coloured", "coloured"]
    assert all(t["method"].endswith(", one-sided") for t in auto["cases"][0]["tensors"][1:])
    bad = runner.invoke(cli, [*args, "--differences", "both"])
    assert bad.exit_code == 2 and "--differences" in bad.output


@pytest.mark.parametrize(
    "geometry",
    [SEED, resolve_geometry("3x9x8", "4x3x3x2", batch=2, stride=2, padding=1)],
    ids=["seed-like", "strided"],
)
def test_a_correct_layer_curved_in_w_passes_with_a_smaller_step(geometry):
    # Weight standardisation makes the forward curved in w: central differences at the linear
    # step would be a false alarm, in the first call and in the later calls' projections.
    report = check_layer(geometry, zoo.WeightStandardised(), forward_check=False)
    assert report.passed, report.failure_summary
    dk = report.tensor("dK")
    assert "not linear in w" in dk.note and "with a step of" in dk.note
    assert dk.step < 1e-3 * report.tensor("dX").step


def test_a_curved_layer_whose_backward_skips_the_curve_is_caught():
    class StandardisedForwardOnly(zoo.WeightStandardised):
        def backward(self, dy, x, w, b, **settings):
            ws, spread = self.standardised(w)
            dx, dws, db = zoo.TapLoopConv.backward(self, dy, x, ws, b, **settings)
            return dx, dws / spread, db  # the chain rule through the mean and variance left out

    report = check_layer(SEED, StandardisedForwardOnly(), forward_check=False)
    assert [t.name for t in report.wrong] == ["dK"]


class DropsDecreases(zoo.TapLoopConv):
    """An incremental conv: it keeps its last full input and output and, while few coordinates
    changed since, adds the conv of the change to the kept output; a change that is mostly new
    input is computed in full. Its threshold is `delta > tol` where `abs(delta) > tol` was meant,
    so a coordinate that went down alone is missed. Along a direction that moves every coordinate
    (the linearity test) and in the coloured calls (many coordinates at once) it is a plain conv."""

    def __init__(self):
        self.kept = None

    def forward(self, x, w, b, **settings):
        kept = self.kept
        if (kept is None or kept[0].shape != x.shape or not np.array_equal(kept[1], w)
                or not np.array_equal(kept[2], b) or np.count_nonzero(x != kept[0]) > x.size // 2):
            y = super().forward(x, w, b, **settings)
            self.kept = (x.copy(), w.copy(), b.copy(), y.copy())
            return y
        delta = x - kept[0]
        delta[~(delta > 1e-12)] = 0.0
        return kept[3] + super().forward(delta, w, np.zeros_like(b), **settings)


def test_a_bend_only_one_coordinate_moving_down_shows_is_caught_by_the_central_spot_checks():
    case = check_layer(resolve_geometry("3x8x8", "4x3x3x3"), DropsDecreases())
    assert not case.passed
    assert "dX" in [t.name for t in case.failing]
