"""Shared fixtures, and ReferenceWith for the one-off layers a test writes for a behaviour of its own
(hanging, dying, leaking into far outputs, ...). The classic mistakes live in tests/zoo."""

from __future__ import annotations

import os

# One BLAS thread: a check makes thousands of forward calls on small arrays, where threads only
# add overhead, and on a busy shared CI machine spinning BLAS threads made them ~40x slower.
# Set before NumPy is imported; an explicit setting in the environment wins.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402
import pytest

from convgrad import reference


class ReferenceWith:
    """The reference layer, for a test to override forward or backward in."""

    name = "broken"

    def forward(self, x, w, b, **settings):
        return reference.forward(x, w, b, **settings)

    def backward(self, dy, x, w, b, **settings):
        return reference.backward(dy, x, w, b, **settings)


@pytest.fixture
def reference_with():
    return ReferenceWith


# Hypothesis profiles for the property tests. "ci" (the default) is short and derandomized, so CI
# runs the same examples every time; "long" is the reliability measurement recorded in the README
# (example counts per test are in layer_strategies.EXAMPLES). Select with CONVGRAD_PROFILE=long.
from hypothesis import HealthCheck, settings  # noqa: E402

_COMMON = dict(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=25, **_COMMON)
settings.register_profile("long", max_examples=300, **_COMMON)
settings.load_profile(os.environ.get("CONVGRAD_PROFILE", "ci"))


def assert_bad_input(result, message: str) -> None:
    """Exit 2, one line naming the fix (containing `message`), no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert message in lines[0], lines[0]
