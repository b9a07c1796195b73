"""Property tests over random valid layers: no false alarms, no missed bugs, methods agree.

Short by default (profile "ci"); `CONVGRAD_PROFILE=long python -m pytest tests/test_properties.py`
runs the long profile (500 float64 and 200 float32 layers per property). The README's numbers come
from benchmarks/long_profile.py, which draws the same layers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checking import check_layer
from layer_strategies import (
    EXAMPLES,
    PROFILE,
    OneCoordinateWrong,
    false_alarm,
    injected_errors,
    layers,
    magnitudes,
    methods_disagreeing,
    missed_bug,
    seeds,
)


def _reference_passes(geometry, seed, scale):
    case = check_layer(geometry, seed=seed, scale=scale)
    assert false_alarm(case) is None, f"false alarm on {geometry.describe()} {scale}: {false_alarm(case)}"
    assert methods_disagreeing(geometry, seed, scale) == []


def _wrong_gradient_is_caught(data, geometry, seed, scale):
    error = data.draw(injected_errors(geometry), label="error")
    case = check_layer(geometry, OneCoordinateWrong(error), seed=seed, scale=scale)
    assert missed_bug(case, error) is None, f"{geometry.describe()} {scale}: {missed_bug(case, error)}"
    assert case.tensor(error.gradient).mismatches == 1


# One test per dtype, so the long profile's example counts per dtype are exact.
@settings(max_examples=EXAMPLES[PROFILE]["float64"])
@given(geometry=layers("float64"), seed=seeds, scale=magnitudes)
@pytest.mark.slow
def test_reference_passes_every_float64_layer(geometry, seed, scale):
    _reference_passes(geometry, seed, scale)


@settings(max_examples=EXAMPLES[PROFILE]["float32"])
@given(geometry=layers("float32"), seed=seeds, scale=magnitudes)
@pytest.mark.slow
def test_reference_passes_every_float32_layer(geometry, seed, scale):
    _reference_passes(geometry, seed, scale)


@settings(max_examples=EXAMPLES[PROFILE]["float64"])
@given(data=st.data(), geometry=layers("float64"), seed=seeds, scale=magnitudes)
def test_one_coordinate_off_by_1e_5_of_the_scale_is_caught_in_float64(data, geometry, seed, scale):
    _wrong_gradient_is_caught(data, geometry, seed, scale)


@settings(max_examples=EXAMPLES[PROFILE]["float32"])
@given(data=st.data(), geometry=layers("float32"), seed=seeds, scale=magnitudes)
def test_one_coordinate_off_by_1e_2_of_the_scale_is_caught_in_float32(data, geometry, seed, scale):
    _wrong_gradient_is_caught(data, geometry, seed, scale)


FEATURES = {
    "1-D": lambda g: g.ndim == 1,
    "2-D": lambda g: g.ndim == 2,
    "3-D": lambda g: g.ndim == 3,
    "batch": lambda g: g.batch > 1,
    "stride": lambda g: max(g.stride) > 1,
    "padding": lambda g: max(g.padding) > 0,
    "dilation": lambda g: max(g.dilation) > 1,
    "groups": lambda g: 1 < g.groups < g.channels,
    "depthwise": lambda g: g.groups == g.channels > 1,
    "rectangular input": lambda g: len(set(g.spatial)) > 1,
    "rectangular kernel": lambda g: len(set(g.kernel_size)) > 1,
    "stride holes": lambda g: any(s > d * (k - 1) + 1 for s, d, k in zip(g.stride, g.dilation, g.kernel_size)),
}


def test_the_strategy_draws_every_feature():
    """A check of the strategy, not of convgrad: each feature the properties claim is drawn."""
    seen: set[str] = set()

    @settings(max_examples=300)
    @given(geometry=layers("float64"))
    def draw(geometry):
        seen.update(name for name, present in FEATURES.items() if present(geometry))

    draw()
    assert seen == set(FEATURES)


@pytest.mark.slow
def test_the_long_profile_script_runs_and_counts():
    """benchmarks/long_profile.py (the README's numbers) on a handful of layers."""
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "long_profile.py")
    done = subprocess.run(
        [sys.executable, script, "--float64", "4", "--float32", "2"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "total: examples run 12, false alarms 0, missed bugs 0, disagreements between methods 0" in done.stdout
