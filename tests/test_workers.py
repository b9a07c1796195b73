"""A case's coloured calls shared out over worker processes (harness/workers.py, --jobs): the same
report as one process, bit for bit, for right and wrong layers, whatever the layer does in a
worker (raises, moves far outputs, writes into its inputs, hands out a buffer again, dies)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import ReferenceWith
from convgrad.adapters.loading import as_implementation
from convgrad.adapters.protocol import ReferenceLayer
from convgrad.geometry import resolve_geometry
from convgrad.harness.guard import GuardedLayer
from convgrad.harness import workers as worker_processes
from convgrad.harness.workers import ForkedWorkers
from convgrad.numerics import coloured
from convgrad.numerics.coloured import coloured_gradient
from convgrad.numerics.colouring import input_colouring
from convgrad.options import CheckOptions
from convgrad.render.json import case_to_dict
from convgrad.run.case import random_tensors, run_case
from convgrad.run.isolation import IsolatedCase, run_case_isolated, run_cases_isolated
from test_determinism import without_timings

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="sharing calls out needs fork (Linux)")

GEOMETRIES = [
    resolve_geometry("3x9x9", "4x3x3x3", padding=1),
    resolve_geometry("4x10x10", "6x2x3x3", stride=2, padding=1, groups=2, batch=2),
    resolve_geometry("2x12", "3x2x3", dilation=2),
    resolve_geometry("4x7x7", "4x1x3x3", groups=4, padding=(1, 0)),
]


@pytest.fixture(autouse=True)
def always_share(monkeypatch):
    """Share out whatever the layer's size: these layers take milliseconds, not seconds; and
    even where an earlier test in this process started jax (these workers never touch it)."""
    monkeypatch.setattr(coloured, "SPLIT_WORTH_S", 0.0)
    monkeypatch.setattr(worker_processes, "_jax_started", lambda: False)


def _report(layer, geometry, workers, **options):
    implementation = as_implementation(ReferenceLayer() if layer is None else layer)
    case = run_case(geometry, implementation, CheckOptions(method="coloured", **options), workers=workers)
    return without_timings(case_to_dict(case))


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: g.describe())
@pytest.mark.parametrize("differences", ["auto", "central"])
@pytest.mark.parametrize("batch_bytes", [coloured.BATCH_BYTES, 1], ids=["stacked", "a colour a call"])
def test_shared_out_calls_give_the_same_gradients_bit_for_bit(geometry, differences, batch_bytes, monkeypatch):
    monkeypatch.setattr(coloured, "BATCH_BYTES", batch_bytes)
    guard = GuardedLayer(as_implementation(ReferenceLayer()), geometry)
    x, w, b, dy = random_tensors(geometry, CheckOptions())
    base = None if differences == "central" else guard.forward(x, w, b)
    for gradient in ("dX", "dK", "db"):
        alone = coloured_gradient(guard.forward, (x, w, b), gradient, dy, 0.5, geometry, base=base)
        elsewhere: list[int] = []
        shared = coloured_gradient(
            guard.forward, (x, w, b), gradient, dy, 0.5, geometry, base=base,
            workers=ForkedWorkers(guard, 3), made_elsewhere=elsewhere.append,
        )
        assert shared.values.tobytes() == alone.values.tobytes(), gradient
        assert shared.forward_calls == alone.forward_calls, gradient
        # One-sided db is one call, and a small x stacks every colour into one or two calls.
        if gradient == "dK" or (gradient == "dX" and batch_bytes == 1):
            assert sum(elsewhere) > 0, gradient


@pytest.mark.parametrize("geometry", GEOMETRIES[:2], ids=lambda g: g.describe())
def test_a_whole_report_is_the_same_with_two_workers(geometry):
    assert _report(None, geometry, 2) == _report(None, geometry, 1)


GEOMETRY = resolve_geometry("3x9x9", "4x3x3x3", padding=1)


def _last_coordinates():
    """A coordinate of x in the last colour and the last slot of w: each is perturbed by the last
    share's calls only, in a worker. (`BATCH_BYTES` of 1 makes each dX call one colour.)"""
    colouring = input_colouring(GEOMETRY)
    channel, spatial = colouring.parts(colouring.used()[-1])[0]
    return (0, channel, *np.argwhere(spatial)[0]), (0, *np.ndindex(*GEOMETRY.w_shape[1:]))[-1:][0]


class GoesWrongWhenPerturbed(ReferenceWith):
    """Right, except in the calls that perturb one late coordinate of x or w: what it does
    there depends on what it is given, not on how many calls came before (`misbehave`)."""

    def __init__(self, tensor):
        self.tensor, self.first = tensor, None
        x_at, w_at = _last_coordinates()
        self.at = x_at if tensor == "x" else (slice(None), *w_at[1:])

    def forward(self, x, w, b, **settings):
        given = x if self.tensor == "x" else w
        if self.first is None:
            self.first = given.copy()
        y = super().forward(x, w, b, **settings)
        if given.shape == self.first.shape and not np.array_equal(given[self.at], self.first[self.at]):
            y = self.misbehave(x, w, y)
        return y

    def misbehave(self, x, w, y):
        raise NotImplementedError


class Raises(GoesWrongWhenPerturbed):
    def misbehave(self, x, w, y):
        raise ValueError("this coordinate went wrong")


class MovesAFarOutput(GoesWrongWhenPerturbed):
    def misbehave(self, x, w, y):
        y[:, -1, -1, -1] += 1e-3
        return y


class WritesIntoX(GoesWrongWhenPerturbed):
    def misbehave(self, x, w, y):
        x *= 0.5
        return y


class HandsOutOneBuffer(GoesWrongWhenPerturbed):
    buffer = None

    def misbehave(self, x, w, y):
        if self.buffer is None or self.buffer.shape != y.shape:
            self.buffer = np.empty_like(y)
        self.buffer[...] = y
        return self.buffer


class Dies(GoesWrongWhenPerturbed):
    def misbehave(self, x, w, y):
        os._exit(7)


WRONG_IN_A_WORKER = [Raises, MovesAFarOutput, WritesIntoX, HandsOutOneBuffer]


@pytest.mark.parametrize("tensor", ["x", "w"])
@pytest.mark.parametrize("layer", WRONG_IN_A_WORKER, ids=lambda v: v.__name__)
def test_a_layer_going_wrong_in_a_worker_is_reported_as_by_one_process(layer, tensor, monkeypatch):
    monkeypatch.setattr(coloured, "BATCH_BYTES", 1)
    one = _report(layer(tensor), GEOMETRY, 1)
    assert not one["passed"]
    assert _report(layer(tensor), GEOMETRY, 2) == one


@pytest.mark.parametrize("tensor", ["x", "w"])
def test_a_layer_dying_in_a_worker_dies_in_the_case_as_with_one_process(tensor, monkeypatch):
    monkeypatch.setattr(coloured, "BATCH_BYTES", 1)
    options = CheckOptions(method="coloured", timeout=60)
    reports = [
        without_timings(case_to_dict(run_case_isolated(GEOMETRY, as_implementation(Dies(tensor)), options,
                                                       workers=workers)))
        for workers in (1, 2)
    ]
    assert "7" in reports[0]["reason"], reports[0]["reason"]
    assert reports[1] == reports[0]


class RaisesAtCall(ReferenceWith):
    """Wrong from its 60th call on: what it does depends on how many calls came before."""

    def __init__(self):
        self.calls = 0

    def forward(self, x, w, b, **settings):
        self.calls += 1
        if self.calls >= 60:
            raise ValueError("worn out")
        return super().forward(x, w, b, **settings)


def test_a_layer_whose_results_depend_on_its_call_count_is_checked_in_one_process_unless_asked():
    # Each process counts only its own calls, so shared out such a layer goes wrong at other
    # calls than in one process, or not at all (harness/workers.py): sharing out is asked for
    # with --jobs, and by default a case's calls stay in one process, as in a training loop.
    options = CheckOptions(method="coloured")
    (by_default,) = run_cases_isolated([IsolatedCase(GEOMETRY)], as_implementation(RaisesAtCall()), options, jobs=2)
    assert not by_default.passed and "worn out" in str(case_to_dict(by_default))
    assert not _report(RaisesAtCall(), GEOMETRY, 1)["passed"]


def test_jobs_on_the_command_line_share_a_case_out_with_the_same_report():
    from click.testing import CliRunner

    from convgrad.cli import cli

    args = ["check", "--in", "3x9x9", "--kernels", "4x3x3x3", "--padding", "1", "--method", "coloured", "--json"]
    reports = []
    for jobs in ("1", "2"):
        result = CliRunner().invoke(cli, [*args, "--jobs", jobs])
        assert result.exit_code == 0, result.output
        reports.append(without_timings(json.loads(result.output)))
    assert reports[1] == reports[0]


@pytest.mark.parametrize("workers", [0, -1, "2", 2.5, True, None])
def test_workers_that_are_not_a_whole_number_of_one_or_more_are_one_line_of_bad_input(workers):
    from convgrad.errors import SettingError

    with pytest.raises(SettingError) as raised:
        run_case(GEOMETRY, as_implementation(ReferenceLayer()), CheckOptions(), workers=workers)
    message = str(raised.value)
    assert "workers" in message and "whole number of 1 or more" in message and "\n" not in message


@pytest.mark.parametrize("name", ["KeepsInputsForBackward", "AccumulatesKernelGradient", "CachesPaddedInput",
                                  "ReturnsWorkspace"])
def test_layers_that_keep_state_between_calls_get_the_same_report_with_two_workers(name):
    # State between calls is what the later calls and the network scenario look for: they stay in
    # the case's own process, in the same order, so these layers end the same way.
    import zoo.layers

    layer = getattr(zoo.layers, name)
    geometry = resolve_geometry("3x9x9", "4x3x3x3", padding=1, stride=2)
    one = _report(layer(), geometry, 1)
    assert _report(layer(), geometry, 2) == one
