"""The shipped standard suite holds every pair of settings, read back from its geometries.

A layer is often wrong only where two settings meet, so configs/standard.toml must contain, for
any two factors, every combination of their levels that can exist. The factors and levels are
written here independently of configs/generate_standard.py, and each case is classified from its
resolved geometry, not from its name or comment: an edit that breaks the property fails here.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from convgrad import reference
from convgrad.geometry import LayerGeometry
from convgrad.options import CheckOptions
from convgrad.run.case import random_tensors
from convgrad.suite import load_suite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDARD = os.path.join(ROOT, "configs", "standard.toml")
SUITE = load_suite(STANDARD)

LEVELS = {
    "batch": {"1", "2", "5"},
    "stride": {"1", "2", "3", "per-axis"},
    "padding": {"0", "1", "2", "per-axis"},
    "dilation": {"1", "2", "per-axis"},
    "groups": {"1", "2", "depthwise", "depthwise x2"},
    "kernel": {"square", "rectangular", "1x1"},
    "input": {"square", "non-square", "stride does not tile"},
    "channels": {"F = C", "F < C", "F > C"},
    "dtype": {"float64", "float32"},
}
# What cannot exist: depthwise fixes F against C, and a stride of 1 tiles every input.
IMPOSSIBLE = {
    ("groups", "depthwise", "channels", "F < C"), ("groups", "depthwise", "channels", "F > C"),
    ("groups", "depthwise x2", "channels", "F = C"), ("groups", "depthwise x2", "channels", "F < C"),
    ("stride", "1", "input", "stride does not tile"),
}
BASIC = ("batch", "stride", "padding", "kernel", "input", "channels", "dtype")  # what every layer has


def _axes(values: tuple[int, ...]) -> str:
    return "per-axis" if len(set(values)) > 1 else str(values[0])


def levels(g: LayerGeometry) -> dict[str, str]:
    """A 2-D case's level of every factor, from its geometry."""
    c, f = g.channels, g.filters
    if g.groups == 1:
        groups = "1"
    elif g.groups == c and f == c:
        groups = "depthwise"
    elif g.groups == c and f == 2 * c:
        groups = "depthwise x2"
    else:
        groups = str(g.groups)
    k = g.kernel_size
    left_over = any(
        (h + 2 * p - d * (kk - 1) - 1) % s
        for h, kk, s, p, d in zip(g.spatial, k, g.stride, g.padding, g.dilation)
    )
    return {
        "batch": str(g.batch),
        "stride": _axes(g.stride),
        "padding": _axes(g.padding),
        "dilation": _axes(g.dilation),
        "groups": groups,
        "kernel": "1x1" if all(v == 1 for v in k) else "square" if len(set(k)) == 1 else "rectangular",
        "input": "square" if len(set(g.spatial)) == 1 else "stride does not tile" if left_over else "non-square",
        "channels": "F = C" if f == c else "F < C" if f < c else "F > C",
        "dtype": g.dtype,
    }


def missing_pairs(cases: list[dict[str, str]], factors: tuple[str, ...]) -> list[tuple[str, str, str, str]]:
    seen = {(a, case[a], b, case[b]) for case in cases for a, b in itertools.combinations(factors, 2)}
    missing = []
    for a, b in itertools.combinations(factors, 2):
        for va, vb in itertools.product(sorted(LEVELS[a]), sorted(LEVELS[b])):
            if (a, va, b, vb) not in IMPOSSIBLE and (b, vb, a, va) not in IMPOSSIBLE and (a, va, b, vb) not in seen:
                missing.append((a, va, b, vb))
    return missing


def small(g: LayerGeometry) -> bool:
    """A case of the pairs: every coordinate checked by differences in a fraction of a second."""
    return g.channels <= 6 and g.filters <= 6 and max(g.spatial) <= 15 and g.batch <= 5


SMALL = [case for case in SUITE.cases if small(case.geometry)]
TWO_D = [levels(case.geometry) for case in SMALL if case.geometry.ndim == 2]


def test_every_level_is_one_the_factors_know():
    for case in TWO_D:
        for factor, level in case.items():
            assert level in LEVELS[factor], (factor, level)


def test_every_pair_of_settings_meets_in_some_case():
    assert missing_pairs(TWO_D, tuple(LEVELS)) == []


def test_every_pair_of_basic_settings_meets_in_a_case_any_layer_can_run():
    # A layer without dilation, groups or per-axis values still gets all of its own pairs checked.
    plain = [c for c in TWO_D if c["dilation"] == "1" and c["groups"] == "1"
             and "per-axis" not in (c["stride"], c["padding"])]
    levels_basic = {f: LEVELS[f] - {"per-axis"} for f in BASIC}
    seen = {(a, c[a], b, c[b]) for c in plain for a, b in itertools.combinations(BASIC, 2)}
    missing = [
        (a, va, b, vb)
        for a, b in itertools.combinations(BASIC, 2)
        for va, vb in itertools.product(sorted(levels_basic[a]), sorted(levels_basic[b]))
        if (a, va, b, vb) not in IMPOSSIBLE and (a, va, b, vb) not in seen
    ]
    assert missing == []


@pytest.mark.parametrize("case", SUITE.cases, ids=[c.name for c in SUITE.cases])
def test_no_case_is_all_padding(case):
    # A case whose windows read only padding has zero gradients both ways and checks nothing.
    g = case.geometry
    for size, k, s, p, d, out in zip(g.spatial, g.kernel_size, g.stride, g.padding, g.dilation, g.out_spatial):
        read = [s * o + d * u - p for o in range(out) for u in range(k)]
        assert any(0 <= r < size for r in read), g.describe()


def test_one_and_three_dimensional_layers_are_in_the_suite_with_groups_and_batches():
    assert {case.geometry.ndim for case in SUITE.cases} == {1, 2, 3}
    for ndim in (1, 3):
        cases = [case.geometry for case in SUITE.cases if case.geometry.ndim == ndim]
        assert any(g.groups > 1 and g.batch > 1 for g in cases)  # a rank's own path for groups
    assert any(g.ndim == 3 and g.filters == 2 * g.channels == 2 * g.groups for g in (c.geometry for c in SUITE.cases))


def test_the_checker_of_pairs_notices_a_missing_pair():
    dropped = [c for c in TWO_D if not (c["groups"] == "2" and c["batch"] == "5")]
    assert ("batch", "5", "groups", "2") in missing_pairs(dropped, tuple(LEVELS))


def test_the_shipped_file_is_what_the_generator_writes():
    generated = subprocess.run(
        [sys.executable, os.path.join(ROOT, "configs", "generate_standard.py")],
        capture_output=True, text=True, check=True,
    ).stdout
    with open(STANDARD, encoding="utf-8") as handle:
        assert handle.read() == generated, "regenerate: python configs/generate_standard.py > configs/standard.toml"


def test_only_the_sizes_cases_are_large():
    assert [c.name for c in SUITE.cases if not small(c.geometry)] == [c.name for c in SUITE.cases if c.name.startswith("sizes")]


def _max_weight_gradient(g: LayerGeometry) -> float:
    """max |dK| of the case as checked: the seed's tensors through the reference backward."""
    x, w, b, dy = random_tensors(g, CheckOptions())
    return float(np.max(np.abs(reference.backward(*(t.astype(np.float64) for t in (dy, x, w, b)), **g.conv_settings())[1])))


def _odd_winograd_output(g: LayerGeometry) -> bool:
    plain = all(k == 3 for k in g.kernel_size) and all(s == 1 for s in g.stride) and all(d == 1 for d in g.dilation)
    return plain and any(o >= 9 and o % 2 for o in g.out_spatial)


# Each threshold real kernels switch path at, as a predicate on a case's geometry: the shipped
# file must cross every one, so a layer wrong only past it fails the standard suite.
THRESHOLDS = {
    "C/g in 17..40, not a multiple of 8 (channel blocks)": lambda g: 17 <= g.channels // g.groups <= 40 and (g.channels // g.groups) % 8,
    "F in 17..40, not a multiple of 8": lambda g: 17 <= g.filters <= 40 and g.filters % 8,
    "batch 9..13 (chunks of 8)": lambda g: 9 <= g.batch <= 13,
    "over 4096 output positions (bands, split-K)": lambda g: math.prod(g.out_spatial) > 4096,
    "an odd output of 9 or more from a 3x3 stride-1 kernel (Winograd)": _odd_winograd_output,
    "a 5x5 kernel (FFT)": lambda g: g.kernel_size == (5, 5),
    "a 7x7 kernel": lambda g: g.kernel_size == (7, 7),
    "kernel == stride >= 4 (patchify)": lambda g: g.kernel_size == g.stride and min(g.stride) >= 4,
    "1x1 with stride 2 and padding": lambda g: g.kernel_size == (1, 1) and 2 in g.stride and max(g.padding) > 0,
    "C*Hp*Wp over 32767 (int16 indices)": lambda g: g.channels * math.prod(g.padded_spatial) > 32767,
    "float32 reductions over 4096 terms": lambda g: g.dtype == "float32" and g.batch * math.prod(g.out_spatial) > 4096,
    "|dK| over 100 (a clip at 100)": lambda g: _max_weight_gradient(g) > 100,
}


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_the_shipped_suite_crosses_every_size_threshold(threshold):
    assert any(THRESHOLDS[threshold](c.geometry) for c in SUITE.cases if c.geometry.ndim == 2)

