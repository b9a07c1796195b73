"""The same seed gives the same report (apart from timings); different seeds give different layers."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from click.testing import CliRunner
from hypothesis import given, settings

from checking import check_layer
from convgrad.options import CheckOptions
from convgrad.run.case import random_tensors
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry
from convgrad.render.json import case_to_dict
from layer_strategies import layers, seeds

ARGS = ["check", "--in", "3x7x6", "--kernels", "4x3x3x2", "--stride", "2x1", "--padding", "1", "--json"]


def without_timings(value: Any) -> Any:
    """The report with every wall-clock field removed (by convention their names end in _s)."""
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not k.endswith("_s")}
    if isinstance(value, list):
        return [without_timings(v) for v in value]
    return value


def report(*extra: str) -> dict:
    result = CliRunner().invoke(cli, [*ARGS, *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def worst_values(report: dict) -> list[float]:
    return [t["analytical_at_worst"] for t in report["cases"][0]["tensors"]]


def test_same_seed_same_json_apart_from_timings():
    first, second = report("--seed", "7"), report("--seed", "7")
    assert "elapsed_s" in first["cases"][0]  # the timing is there, and is the only difference
    assert without_timings(first) == without_timings(second)


def test_default_seed_is_seed_0():
    assert without_timings(report()) == without_timings(report("--seed", "0"))


def test_different_seeds_give_different_layers():
    first, second = report("--seed", "1"), report("--seed", "2")
    assert first["cases"][0]["settings"]["seed"] == 1 and second["cases"][0]["settings"]["seed"] == 2
    # Every tensor's numbers differ, not just the seed field.
    for a, b in zip(worst_values(first), worst_values(second)):
        assert a != b
    geometry = resolve_geometry("3x7x6", "4x3x3x2")
    for a, b in zip(random_tensors(geometry, CheckOptions(seed=1)), random_tensors(geometry, CheckOptions(seed=2))):
        assert not np.array_equal(a, b)


@settings(max_examples=10)
@given(geometry=layers("float64"), seed=seeds)
def test_any_layer_checked_twice_gives_the_same_numbers(geometry, seed):
    first, second = check_layer(geometry, seed=seed), check_layer(geometry, seed=seed)
    assert without_timings(case_to_dict(first)) == without_timings(case_to_dict(second))
    for a, b in zip(first.tensors, second.tensors):
        np.testing.assert_array_equal(a.numerical, b.numerical)
        np.testing.assert_array_equal(a.analytical, b.analytical)
