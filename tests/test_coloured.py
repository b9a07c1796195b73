"""Coloured finite differences: the colouring, equality with dense, locality, cost, and the other methods."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from convgrad import reference
from checking import check_layer
from convgrad.cli import cli
from convgrad.numerics.coloured import coloured_forward_calls
from convgrad.numerics.colouring import input_colouring
from convgrad.geometry import resolve_geometry
from convgrad.numerics.method import SPOT_CHECKS
from conftest import ReferenceWith

SWEEP = {
    "1d": dict(in_shape="3x11", kernel_shape="4x3x3"),
    "1d-stride-larger-than-kernel": dict(in_shape="2x13", kernel_shape="3x2x2", stride=5, padding=1),
    "2d-seed": dict(in_shape="3x9x8", kernel_shape="5x3x3x3"),
    "2d-dilation": dict(in_shape="2x11x10", kernel_shape="3x2x3x2", dilation="2x3", padding=2),
    "2d-stride-dilation": dict(in_shape="2x12x9", kernel_shape="2x2x3x3", stride="3x2", dilation=2, padding=1),
    "2d-groups-batch": dict(in_shape="4x7x6", kernel_shape="6x2x2x3", groups=2, batch=3, padding="1x0"),
    "2d-depthwise": dict(in_shape="3x8x8", kernel_shape="3x1x3x3", groups=3, stride=2, padding=1),
    "3d": dict(in_shape="2x5x6x4", kernel_shape="2x2x2x3x2", stride="1x2x1", padding=1, batch=2),
    "3d-dilation": dict(in_shape="1x7x5x5", kernel_shape="2x1x2x2x2", dilation="3x1x2"),
}


def receptive_fields(geometry) -> np.ndarray:
    """(number of x coordinates, outputs) bool, found by brute force through the reference layer."""
    w = np.ones(geometry.w_shape)
    b = np.zeros(geometry.b_shape)
    settings = dict(stride=geometry.stride, padding=geometry.padding, dilation=geometry.dilation, groups=geometry.groups)
    size = int(np.prod(geometry.x_shape))
    fields = np.zeros((size, int(np.prod(geometry.y_shape))), dtype=bool)
    for q in range(size):
        x = np.zeros(size)
        x[q] = 1.0
        fields[q] = reference.forward(x.reshape(geometry.x_shape), w, b, **settings).reshape(-1) != 0
    return fields


@pytest.mark.parametrize("seed", range(12))
def test_no_two_coordinates_of_one_colour_share_an_output(seed):
    rng = np.random.default_rng(seed)
    ndim = int(rng.integers(1, 3))
    groups = int(rng.choice([1, 2]))
    depth = int(rng.integers(1, 3))
    kernel = [int(k) for k in rng.integers(1, 4, ndim)]
    spatial = [int(k + rng.integers(2, 9)) for k in kernel]
    geometry = resolve_geometry(
        [groups * depth, *spatial],
        [groups * int(rng.integers(1, 3)), depth, *kernel],
        batch=int(rng.integers(1, 3)),
        stride=[int(s) for s in rng.integers(1, 5, ndim)],
        padding=[int(p) for p in rng.integers(0, 3, ndim)],
        dilation=[int(d) for d in rng.integers(1, 3, ndim)],
        groups=groups,
    )
    colouring = input_colouring(geometry)
    fields = receptive_fields(geometry)
    masks = [np.broadcast_to(colouring.mask(c, geometry.channels), geometry.x_shape).reshape(-1) for c in colouring.used()]
    assert np.array_equal(np.sum(masks, axis=0), np.ones(fields.shape[0]))  # each coordinate once
    for colour, mask in zip(colouring.used(), masks):
        assert fields[mask].sum(axis=0).max(initial=0) <= 1, geometry
        # what the locality check treats as reached is what the colour's coordinates really reach
        reached = fields[mask].any(axis=0).reshape(geometry.y_shape).any(axis=(0, 1))
        assert np.array_equal(colouring.reached(colour), reached), geometry
    assert len(colouring.used()) <= depth * int(np.prod(kernel)) * (max(kernel) + 1) / min(kernel)


def test_colours_reach_the_lower_bound_of_one_window():
    # One window reads C/groups * prod(k) coordinates that pairwise conflict: no colouring does
    # better. A colour that would reach every output leaves one coordinate out (its hole), so the
    # locality check has outputs to watch, and the holes share a few extra colours.
    geometry = resolve_geometry("8x32x32", "8x3x3", stride=2, dilation=2, padding=1)
    colouring = input_colouring(geometry)
    assert [a.count for a in colouring.axes] == [3, 3] and colouring.holes
    assert 8 * 3 * 3 < len(colouring.used()) <= 8 * 3 * 3 + 2
    assert all(not colouring.reached(c).all() for c in colouring.used())
    # The ResNet-50 3x3 layer: 64 x 9 colours and one extra for the holes (a longer period on one
    # axis would need 64 x 12).
    resnet = input_colouring(resolve_geometry("64x56x56", "64x3x3", padding=1))
    assert len(resnet.used()) == 64 * 9 + 1
    assert all(not resnet.reached(c).all() for c in resnet.used())


@pytest.mark.parametrize("geometry", SWEEP.values(), ids=SWEEP.keys())
def test_coloured_gives_the_numbers_of_the_dense_check(geometry):
    layer = resolve_geometry(**geometry)
    coloured = check_layer(layer, method="coloured", seed=5)
    dense = check_layer(layer, method="dense", seed=5)
    assert coloured.passed and dense.passed
    for c, d in zip(coloured.tensors[1:], dense.tensors[1:]):
        # One-sided only where that saves more calls than the linearity test costs: not for a
        # tensor of one or two coordinates, nor for db's one colour.
        dense_method = "dense" if d.total <= 2 else "dense, one-sided"
        coloured_method = "coloured" if c.name == "db" else "coloured, one-sided"
        assert (c.method, d.method) == (coloured_method, dense_method)
        assert c.checked == c.total == d.checked
        scale = np.max(np.abs(d.numerical))
        np.testing.assert_allclose(c.numerical, d.numerical, rtol=0, atol=1e-12 * scale)
        assert c.forward_calls < d.forward_calls or c.total <= 2 + 2 * SPOT_CHECKS  # central spot checks: 2 each


def test_float32_coloured_passes():
    layer = resolve_geometry("6x10x10", "6x6x3x3", padding=1, batch=2, dtype="float32")
    case = check_layer(layer, method="coloured", seed=2)
    assert case.passed, [t.reason for t in case.tensors]


def forward_calls(differences: str = "central", **geometry) -> dict[str, int]:
    case = check_layer(resolve_geometry(**geometry), method="coloured", differences=differences)
    assert case.passed
    return {t.name: t.forward_calls for t in case.tensors[1:]}


def test_forward_calls_do_not_grow_with_height_width_or_batch():
    # The colours (batch items of dX) never grow with H, W or N; the calls do not either, as long
    # as one stacked call (at most BATCH_BYTES) holds every colour, as it does for these sizes.
    base = dict(in_shape="3x10x12", kernel_shape="4x3x3x3", stride=2, padding=1)
    colours = len(input_colouring(resolve_geometry(**base)).used())
    for larger in ({"in_shape": "3x40x48"}, {"batch": 5}, {"in_shape": "3x21x25", "batch": 3}):
        assert len(input_colouring(resolve_geometry(**{**base, **larger})).used()) == colours
    calls = forward_calls(**base)
    assert forward_calls(**{**base, "in_shape": "3x14x16"}) == calls
    assert forward_calls(**{**base, "batch": 2}) == calls
    spot_checks = 2 * SPOT_CHECKS  # a few coordinates recomputed one at a time per tensor
    # dX: one stacked call, plus x alone to compare the stacked copy of x with
    assert calls == {"dX": 2 + spot_checks, "dK": 2 * 27 + spot_checks, "db": 2 + spot_checks}
    # One-sided: one call per colour, the shared base (counted once, with dX), two calls of the
    # linearity test per tensor; the spot checks stay central. db's one colour is one call either
    # way, so it is differenced central, without the test.
    one_sided = forward_calls("auto", **base)
    assert one_sided == {"dX": 1 + 2 + 2 + spot_checks, "dK": 2 + 27 + spot_checks, "db": 2 + spot_checks}
    assert forward_calls("auto", **{**base, "in_shape": "3x14x16", "batch": 2}) == one_sided
    # 3 x 3 colours per channel, and one extra colour holding the holes.
    assert len(input_colouring(resolve_geometry(**base)).used()) == 3 * 3 * 3 + 1
    geometry = resolve_geometry(**base)
    assert coloured_forward_calls(geometry, "dX") == 2
    assert coloured_forward_calls(geometry, "dX", one_sided=True) == 2


class NonLocal(ReferenceWith):
    """Every output also sees 1e-3 * sum(x): a non-local layer, with a backward that matches it."""

    name = "non-local"
    correct_backward = True

    def forward(self, x, w, b, **settings):
        y = reference.forward(x, w, b, **settings)
        return y + 1e-3 * x.sum(axis=tuple(range(1, x.ndim))).reshape(-1, *([1] * (x.ndim - 1)))

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = reference.backward(dy, x, w, b, **settings)
        if self.correct_backward:
            dx = dx + 1e-3 * dy.sum(axis=tuple(range(1, dy.ndim))).reshape(-1, *([1] * (dy.ndim - 1)))
        return dx, dw, db


def test_a_non_local_layer_is_detected_and_checked_one_coordinate_at_a_time():
    layer = resolve_geometry("2x7x7", "3x2x3x3", batch=2)
    case = check_layer(layer, NonLocal())
    dx = case.tensor("dX")
    assert dx.passed and dx.method == "dense" and dx.checked == dx.total
    assert "non-local" in dx.note and "one coordinate at a time" in dx.note
    assert dx.forward_calls >= 2 * dx.total
    assert case.tensor("dK").method == "coloured, one-sided" and case.tensor("dK").passed
    assert not case.tensor("O").passed  # the forward itself is not the reference conv

    wrong = NonLocal()
    wrong.correct_backward = False
    assert not check_layer(layer, wrong).tensor("dX").passed


def test_progress_totals_match_the_calls_made_even_with_a_fallback():
    tasks: dict[str, list[int]] = {}

    def factory(description: str, total: int):
        tasks[description] = [total, 0]

        def advance(calls: int) -> None:
            tasks[description][1] += calls

        return advance

    layer = resolve_geometry("2x6x6", "2x2x3x3")
    case = check_layer(layer, NonLocal(), progress=factory)
    assert "dX one at a time" in tasks
    for description, (total, done) in tasks.items():
        if description != "dX coloured":  # abandoned when the layer turned out non-local
            assert done == total, description
    assert sum(done for _, done in tasks.values()) == case.forward_calls - 1  # all but the first forward


def scaled(gradient: int, factor: float):
    class Scaled(ReferenceWith):
        def backward(self, dy, x, w, b, **settings):
            grads = list(reference.backward(dy, x, w, b, **settings))
            grads[gradient] = grads[gradient] * factor
            return tuple(grads)

    return Scaled()


def test_projection_catches_a_gradient_off_by_a_factor():
    layer = resolve_geometry("3x12x12", "4x3x3x3", padding=1)
    case = check_layer(layer, scaled(0, 1.001), method="projection", samples=4)
    assert [t.name for t in case.failing] == ["dX"]
    dx = case.tensor("dX")
    assert dx.method == "projection" and dx.checked == 4 and dx.forward_calls == 8
    assert "directions differ" in dx.reason
    assert check_layer(layer, method="projection", samples=4, seed=3).passed


def test_projection_passes_a_correct_float32_layer():
    layer = resolve_geometry("8x12x12", "8x8x3x3", padding=1, dtype="float32")
    assert check_layer(layer, method="projection", samples=8).passed


def test_sample_of_every_coordinate_equals_dense_and_a_sample_catches_a_wrong_gradient():
    layer = resolve_geometry("2x6x5", "3x2x2x2", stride=2)
    everything = check_layer(layer, method="sample", samples=10_000)
    dense = check_layer(layer, method="dense")
    for s, d in zip(everything.tensors[1:], dense.tensors[1:]):
        assert s.method == "sample, one-sided" and s.checked == s.total
        np.testing.assert_array_equal(s.numerical, d.numerical)
    few = check_layer(layer, scaled(1, 1.01), method="sample", samples=3)
    assert [t.name for t in few.failing] == ["dK"]
    assert few.tensor("dK").checked == 3 and few.tensor("dK").total == 24
    assert np.isnan(few.tensor("dK").numerical).sum() == 21


def test_auto_uses_dense_only_where_colouring_saves_nothing():
    case = check_layer(resolve_geometry("1x2", "1x1x2"))
    # ... and central: for two coordinates the linearity test costs what one-sided differences save
    assert {t.name: t.method for t in case.tensors[1:]} == dict.fromkeys(("dX", "dK", "db"), "dense")
    wider = check_layer(resolve_geometry("1x3", "3x1x3"))  # db: three biases, dense beats one colour
    assert wider.tensor("db").method == "dense, one-sided"
    coloured = check_layer(resolve_geometry("3x9x9", "4x3x3x3"), differences="central")
    assert {t.method for t in coloured.tensors[1:]} == {"coloured"}


def test_bad_method_or_samples_is_a_setting_error():
    from convgrad.errors import SettingError

    layer = resolve_geometry("1x4", "1x1x2")
    with pytest.raises(SettingError, match="method='fast' is not known"):
        check_layer(layer, method="fast")
    with pytest.raises(SettingError, match="samples=0 must be"):
        check_layer(layer, method="sample", samples=0)


CLI_LAYER = ["check", "--in", "3x8x8", "--kernels", "4x3x3x3"]


def run(args: list[str]):
    return CliRunner().invoke(cli, args, env={"COLUMNS": "80"})


@pytest.mark.parametrize("method", ["auto", "coloured", "dense", "sample", "projection"])
def test_cli_method_is_reported_in_json_and_table(method):
    samples = ["--samples", "5"] if method in ("sample", "projection") else []
    result = run([*CLI_LAYER, "--method", method, *samples, "--json"])
    assert result.exit_code == 0, result.output
    tensors = {t["name"]: t for t in json.loads(result.output)["cases"][0]["tensors"]}
    expected = "coloured" if method == "auto" else method
    expected += ", one-sided" if method != "projection" else ""  # projections stay central
    for name in ("dX", "dK", "db"):
        if (method, name) == ("auto", "db"):  # 4 biases one at a time cost less than one colour and its spot checks
            assert tensors[name]["method"] == "dense, one-sided"
        elif (method, name) == ("coloured", "db"):  # one colour: one call one-sided or not, so no linearity test
            assert tensors[name]["method"] == "coloured"
        else:
            assert tensors[name]["method"] == expected
        assert tensors[name]["forward_calls"] > 0
    if method == "sample":
        assert tensors["dX"]["checked"] == 5 and tensors["dX"]["total"] == 192
    table = run([*CLI_LAYER, "--method", method, *samples])
    assert table.exit_code == 0 and f"dX {expected} (" in " ".join(table.output.split())


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--method", "fast"], "Invalid value for '--method'"),
        (["--samples", "0"], "Invalid value for '--samples'"),
        (["--samples", "many"], "Invalid value for '--samples'"),
    ],
)
def test_cli_refuses_bad_method_and_samples_in_one_line(flags, message):
    result = run([*CLI_LAYER, *flags])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


class FarLeak(ReferenceWith):
    """Each output also sees the input 5 columns away (an index bug), with a matching backward.

    (A shift by a multiple of the watched axis's period would land on outputs that are moving
    anyway; the README says so.)
    """

    def forward(self, x, w, b, **settings):
        return reference.forward(x, w, b, **settings) + 1e-3 * np.roll(x, 5, axis=-1)

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = reference.backward(dy, x, w, b, **settings)
        return dx + 1e-3 * np.roll(dy, -5, axis=-1), dw, db


def test_a_leak_from_a_far_neighbour_is_detected():
    case = check_layer(resolve_geometry("2x9x12", "2x2x3x3", padding="same", batch=2), FarLeak())
    dx = case.tensor("dX")
    assert dx.method == "dense" and "non-local" in dx.note and dx.passed


class LeaksAlongRows(ReferenceWith):
    """Conv plus 0.3 x the input 5 rows up (summed over channels), with its exact gradient.

    Every colour's hole leaves outputs unread along both axes, so the locality watch sees it.
    Written for 3x3 kernels without padding, stride or dilation, and says so.
    """

    def supports(self, geometry):
        return geometry.padding == (0, 0) and geometry.stride == (1, 1) and geometry.dilation == (1, 1)

    def forward(self, x, w, b, **settings):
        y = reference.forward(x, w, b, **settings)
        shifted = np.zeros_like(x)
        shifted[:, :, 5:, :] = x[:, :, :-5, :]
        return y + 0.3 * shifted.sum(axis=1, keepdims=True)[:, :, 1:-1, 1:-1]

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = reference.backward(dy, x, w, b, **settings)
        spread = np.zeros_like(x)
        spread[:, :, 1:-1, 1:-1] = 0.3 * dy.sum(axis=1, keepdims=True)
        dx[:, :, :-5, :] += spread[:, :, 5:, :]
        return dx, dw, db


class FixedBatch(ReferenceWith):
    """A correct layer that only accepts the batch size it was built for."""

    def forward(self, x, w, b, **settings):
        if x.shape[0] != 2:
            raise ValueError(f"this layer was built for batch 2, got {x.shape[0]}")
        return reference.forward(x, w, b, **settings)


class FirstItemOnly(ReferenceWith):
    """Computes the first batch item and repeats it: correct at batch 1, wrong on a stacked batch."""

    def forward(self, x, w, b, **settings):
        return np.repeat(reference.forward(x[:1], w, b, **settings), x.shape[0], axis=0)


class LeaksAcrossBatchItems(ReferenceWith):
    """Conv plus 0.3 x the centre of each window of the partner batch item (items 0 and 1, 2 and
    3, ...), summed over channels, with its exact gradient.

    The leak stays inside the window, and the locality watch watches positions: it cannot see
    this. A colour holds its coordinates in every batch item, so the coloured values are wrong
    everywhere, and the spot checks must notice.
    """

    def forward(self, x, w, b, **settings):
        partner = x[np.arange(x.shape[0]) ^ 1]
        return reference.forward(x, w, b, **settings) + 0.3 * partner.sum(axis=1, keepdims=True)[:, :, 1:-1, 1:-1]

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = reference.backward(dy, x, w, b, **settings)
        dx[:, :, 1:-1, 1:-1] += 0.3 * dy.sum(axis=1, keepdims=True)[np.arange(dy.shape[0]) ^ 1]
        return dx, dw, db


def test_a_leak_along_either_axis_is_seen_by_the_locality_watch():
    geometry = resolve_geometry("2x16x16", "3x2x3x3")
    case = check_layer(geometry, LeaksAlongRows(), forward_check=False)
    dx = case.tensor("dX")
    assert case.passed and dx.method == "dense" and "non-local" in dx.note


def test_a_leak_the_watch_cannot_see_is_caught_by_the_spot_checks():
    geometry = resolve_geometry("2x16x16", "3x2x3x3", batch=2)
    case = check_layer(geometry, LeaksAcrossBatchItems(), forward_check=False)
    dx = case.tensor("dX")
    assert dx.passed and dx.method == "dense"
    assert "disagree at 2 spot-checked coordinates" in dx.note
    # Items that read each other are no conv layer: a network's other batch sizes show it.
    assert "batch sizes" in [c.name for c in case.failing_calls]


def test_a_layer_that_rejects_a_stacked_batch_is_retried_at_its_own_batch_size_and_fails():
    case = check_layer(resolve_geometry("3x8x8", "4x3x3x3", batch=2), FixedBatch())
    dx, o = case.tensor("dX"), case.tensor("O")
    assert dx.passed and dx.method == "coloured, one-sided"  # its gradient is still compared
    assert "forward failed on a stacked batch" in dx.note and "built for batch 2" in dx.note
    # No evidence is dropped: a layer that takes one batch size is no layer a network can use.
    assert not o.passed and o.reason.startswith("forward failed on x stacked with copies into a larger batch")
    # O failed for that reason alone, with no coordinate beyond the tolerance: the reason is the why
    assert o.mismatches == 0 and case.failure_summary.startswith("O: forward failed on x stacked")
    assert "O: forward failed on x stacked" in case.cause and "0 of" not in case.failure_summary


def test_a_layer_that_mishandles_a_stacked_batch_fails_with_the_evidence():
    case = check_layer(resolve_geometry("3x8x8", "4x3x3x3"), FirstItemOnly())
    dx, o = case.tensor("dX"), case.tensor("O")
    assert dx.passed and dx.method == "coloured, one-sided"
    assert "on a stacked batch (the output of x changed" in dx.note
    assert o.mismatches == 0 and not o.passed
    assert o.reason.startswith("the output of x as one of ")
    assert "a conv layer's output for one item must not depend on the other items of its batch" in o.reason


class RolledBias(ReferenceWith):
    """Kernel f gets bias f-1: channels mix, so one colour of db moves every perturbed channel."""

    exact_backward = True

    def forward(self, x, w, b, **settings):
        return reference.forward(x, w, np.roll(b, 1), **settings)

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = reference.backward(dy, x, w, b, **settings)
        return dx, dw, np.roll(db, -1) if self.exact_backward else db


@pytest.mark.parametrize("exact", [True, False], ids=["exact-gradient", "unrolled-gradient"])
def test_channel_mixing_is_caught_by_the_spot_checks(exact):
    layer = RolledBias()
    layer.exact_backward = exact
    case = check_layer(resolve_geometry("3x8x8", "4x3x3x3", batch=2), layer, forward_check=False, method="coloured")
    db = case.tensor("db")
    assert db.passed is exact
    assert db.method == "dense" and "spot-checked" in db.note


class LargeBatchPath(ReferenceWith):
    """A different code path above 8 batch items, with a backward that matches that path.

    At the batch asked for (1) the forward is a convolution and the backward is wrong; only a
    stacked batch would see a layer whose backward matches.
    """

    def forward(self, x, w, b, **settings):
        y = reference.forward(x, w, b, **settings)
        if x.shape[0] > 8:
            y[:, 0, 0, 0] += 1e-3 * x[:, 0, 0, 0]
        return y

    def backward(self, dy, x, w, b, **settings):
        dx, dw, db = reference.backward(dy, x, w, b, **settings)
        dx[:, 0, 0, 0] += 1e-3 * dy[:, 0, 0, 0]
        return dx, dw, db


def test_a_batch_size_dependent_layer_is_checked_at_the_batch_size_asked_for():
    case = check_layer(resolve_geometry("3x6x6", "4x3x3x3"), LargeBatchPath())
    dx = case.tensor("dX")
    assert [t.name for t in case.failing] == ["O", "dX"]
    assert dx.mismatches == 1 and dx.worst_index == (0, 0, 0, 0)
    assert "on a stacked batch (the output of x changed" in dx.note
    assert "differs from the reference convolution of those inputs" in case.tensor("O").reason


def _scattered_sums(moved, geometry):
    """The receptive-field sums the plain way: scatter every tap's outputs into a padded array."""
    n, f = moved.shape[:2]
    per_group = moved.reshape(n, geometry.groups, f // geometry.groups, *moved.shape[2:]).sum(axis=2)
    total = np.zeros((n, geometry.groups, *geometry.padded_spatial))
    for tap in np.ndindex(*geometry.kernel_size):
        reads = tuple(
            slice(d * u, d * u + s * (o - 1) + 1, s)
            for u, s, d, o in zip(tap, geometry.stride, geometry.dilation, geometry.out_spatial)
        )
        total[(slice(None), slice(None), *reads)] += per_group
    return total[(slice(None), slice(None), *(slice(p, p + h) for p, h in zip(geometry.padding, geometry.spatial)))]


@pytest.mark.parametrize("geometry", [*SWEEP.values(), dict(in_shape="2x10x9", kernel_shape="2x3x2", stride=4, padding=3)])
def test_receptive_field_sums_are_the_scattered_sums_bit_for_bit(geometry):
    from convgrad.numerics.coloured import _sum_over_receptive_fields

    layer = resolve_geometry(**geometry)
    moved = np.random.default_rng(1).standard_normal((3 * layer.batch, *layer.y_shape[1:]))
    moved[moved > 1.2] = -0.0  # signed zeros must come out as the scattering makes them
    fast, plain = _sum_over_receptive_fields(moved, layer), _scattered_sums(moved, layer)
    assert fast.shape == plain.shape and fast.tobytes() == plain.tobytes()


@pytest.mark.parametrize("geometry", SWEEP.values(), ids=SWEEP.keys())
@pytest.mark.parametrize("one_sided", [True, False])
def test_the_locality_check_raises_exactly_when_one_colour_moves_a_watched_output_too_far(geometry, one_sided):
    from convgrad.numerics.coloured import NonLocalOutputs, _unmoved_bound, _verify_local

    layer = resolve_geometry(**geometry)
    colouring = input_colouring(layer)
    colours = colouring.used()[:3]
    rng = np.random.default_rng(2)
    k = len(colours)
    y_minus = rng.standard_normal((1 if one_sided else k, *layer.y_shape))
    base_scale = float(np.max(np.abs(y_minus))) if one_sided else None
    for i, colour in enumerate(colours):
        outside = np.flatnonzero(~colouring.reached(colour))
        if not outside.size:
            continue
        scale = base_scale if one_sided else float(np.max(np.abs(y_minus[i])))
        for factor, raises in ((0.5, False), (4.0, True)):
            moved = np.zeros((k, *layer.y_shape))
            position = np.unravel_index(outside[-1], layer.out_spatial)
            moved[(i, -1, -1, *position)] = -factor * _unmoved_bound(scale, layer)
            if raises:
                with pytest.raises(NonLocalOutputs):
                    _verify_local(moved, y_minus, base_scale, colouring, colours, layer)
            else:
                _verify_local(moved, y_minus, base_scale, colouring, colours, layer)
        # what the colour reaches may move as it likes
        moved = np.zeros((k, *layer.y_shape))
        moved[i][(Ellipsis, colouring.reached(colour))] = 1e6
        _verify_local(moved, y_minus, base_scale, colouring, colours, layer)
