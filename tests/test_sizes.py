"""Layers wrong only past a size real kernels switch path at are caught by the standard suite.

Each wrong layer of tests/zoo/sizes.py is right on a small case and wrong past one threshold; the
shipped suite's "sizes" cases cross every threshold (tests/test_standard_suite.py), so the case
that crosses a layer's threshold must fail it, in the tensor the mistake is in.
"""

from __future__ import annotations

import os

import pytest

from checking import check_layer
from convgrad.geometry import resolve_geometry
from convgrad.suite import load_suite
from zoo import sizes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
