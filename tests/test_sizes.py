"""Layers wrong only past a size real kernels switch path at are caught by the standard suite and by fuzz.

Each wrong layer of tests/zoo/sizes.py is right on a small case and wrong past one threshold; the
shipped suite's "sizes" cases cross every threshold (tests/test_standard_suite.py), so the case
that crosses a layer's threshold must fail it, in the tensor the mistake is in. `convgrad fuzz`
draws layers past the thresholds too: the first it draws past each fails that layer.
"""

from __future__ import annotations

import itertools
import json
import math
import os

import pytest
from click.testing import CliRunner

from checking import check_layer
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry
from convgrad.run.fuzz import random_geometries
from convgrad.suite import load_suite
from zoo import sizes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = os.path.join(ROOT, "tests", "zoo", "sizes.py")
SUITE = {c.name: c.geometry for c in load_suite(os.path.join(ROOT, "configs", "standard.toml")).cases}
SIZES_1, SIZES_2, SIZES_3 = (next(n for n in SUITE if n.startswith(f"sizes {i}:")) for i in (1, 2, 3))
SIZES_4, SIZES_5, SIZES_6 = (next(n for n in SUITE if n.startswith(f"sizes {i}:")) for i in (4, 5, 6))

# layer, the sizes case that crosses its threshold, the tensors its mistake shows in
CAUGHT = [
    ("ChannelBlocks16", SIZES_1, {"dX"}),
    ("ChannelBlocks16", SIZES_3, {"dX"}),
    ("BatchChunks8", SIZES_1, {"dK"}),
    ("WinogradOddOutputs", SIZES_1, {"O"}),
    ("FFTLargeKernels", SIZES_3, {"dX"}),
    ("FFTLargeKernels", SIZES_4, {"dX"}),
    ("PatchifyPath", SIZES_5, {"dK"}),
    ("Float32GemmPastSize", SIZES_1, {"O"}),
    ("Bfloat16SplitK", SIZES_2, {"dK"}),
    ("Int16Indices", SIZES_2, {"O"}),
    ("ThreadBands", SIZES_2, {"dX"}),
    ("ClipsWeightGradient", SIZES_2, {"dK"}),
    ("StridedOneByOnePadding", SIZES_6, {"O"}),
]


@pytest.mark.parametrize("layer, case, tensors", CAUGHT, ids=[f"{layer}-{case.split(':')[0]}" for layer, case, _ in CAUGHT])
def test_the_sizes_case_past_the_threshold_catches_the_layer_in_its_tensor(layer, case, tensors):
    report = check_layer(SUITE[case], getattr(sizes, layer)())
    assert not report.passed
    failing = {t.name for t in report.rows if not t.passed}
    assert tensors <= failing, (failing, [t.reason for t in report.rows if not t.passed])


SMALL = resolve_geometry("4x9x8", "6x2x3x3", batch=2, stride=2, padding=1, groups=2)
# Its threshold is a value, not a size: the network scenario's large gradient (dy of 1e3) crosses it.
BY_VALUE = "ClipsWeightGradient"


@pytest.mark.parametrize("layer", sorted({layer for layer, _, _ in CAUGHT} - {BY_VALUE} | {"TapLoopConv", "Im2colConv"}))
def test_every_layer_is_right_below_its_threshold(layer):
    # Without this the cases above would prove nothing about sizes: the layers would just be wrong.
    report = check_layer(SMALL, getattr(sizes, layer)())
    assert report.passed, [t.reason for t in report.rows if not t.passed]


def test_a_clip_at_100_is_caught_on_a_small_case_by_the_large_gradient_alone():
    report = check_layer(SMALL, getattr(sizes, BY_VALUE)())
    assert all(t.passed for t in report.rows)
    assert [c.name for c in report.failing_calls] == ["large gradient"]


@pytest.mark.parametrize("layer", ["TapLoopConv", "Im2colConv"])
@pytest.mark.parametrize("case", [SIZES_1, SIZES_2, SIZES_5])
def test_the_correct_bases_pass_the_sizes_cases(layer, case):
    report = check_layer(SUITE[case], getattr(sizes, layer)())
    assert report.passed, [t.reason for t in report.rows if not t.passed]


def _first_draw(crosses):
    """The first layer `convgrad fuzz` draws (default seed, both dtypes) that crosses a threshold."""
    return next(g for g in itertools.islice(random_geometries(0), 400) if crosses(g))


def _positions(g):
    return math.prod(g.out_spatial)


# layer, its threshold as a predicate on a drawn layer (tests/zoo/sizes.py says where each is)
THRESHOLD_OF = {
    "ChannelBlocks16": lambda g: g.channels // g.groups > 16 and (g.channels // g.groups) % 16,
    "BatchChunks8": lambda g: g.batch > 8,
    "WinogradOddOutputs": lambda g: g.ndim == 2 and g.kernel_size == (3, 3) and g.stride == (1, 1)
    and g.dilation == (1, 1) and min(g.out_spatial) >= 9 and any(o % 2 for o in g.out_spatial),
    "FFTLargeKernels": lambda g: max(g.kernel_size) >= 5,
    "PatchifyPath": lambda g: g.ndim == 2 and g.kernel_size == g.stride and g.stride[0] == g.stride[1] >= 4
    and not any(g.padding),
    "Float32GemmPastSize": lambda g: g.dtype == "float64"
    and g.batch * _positions(g) * g.channels * math.prod(g.kernel_size) > 100_000,
    "Bfloat16SplitK": lambda g: g.dtype == "float32" and _positions(g) > 4096,
    "Int16Indices": lambda g: g.channels * math.prod(g.padded_spatial) > 32768,
    "ThreadBands": lambda g: _positions(g) > 4096,
    "StridedOneByOnePadding": lambda g: g.kernel_size == (1,) * g.ndim and max(g.stride) > 1 and max(g.padding) > 0,
}


@pytest.mark.parametrize("layer", THRESHOLD_OF)
def test_fuzz_draws_a_layer_past_each_threshold_and_it_fails_there(layer):
    drawn = _first_draw(THRESHOLD_OF[layer])
    report = check_layer(drawn, getattr(sizes, layer)())
    assert not report.passed, drawn.describe()


@pytest.mark.slow
def test_fuzz_finds_channel_blocks_and_shrinks_to_the_threshold():
    result = CliRunner().invoke(cli, ["fuzz", "--impl", f"{SIZES}:ChannelBlocks16", "--budget", "30", "--json"])
    assert result.exit_code == 1, result.output
    failure = json.loads(result.stdout)["failure"]
    shrunk = failure["shrunk"]["settings"]
    # The simplest failing layer keeps 17 channels a group, one past the block of 16.
    assert failure["complete"] and shrunk["in"][0] // shrunk["groups"] == 17
    assert {t["name"] for t in failure["shrunk"]["tensors"] if not t["passed"]} == {"dX"}
