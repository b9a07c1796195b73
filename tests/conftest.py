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


# The frameworks, for tests of layers written in them: skipped where they are not installed.
@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def jax():
    return pytest.importorskip("jax")


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


# Tests marked slow stay out of the quick subset the README runs (-m "not slow"). A test that grew
# slow without the mark is named at the end of the run, so the subset stays quick; never a failure,
# since a busy machine makes any test slow now and then.
UNMARKED_SLOW_S = 5.0
_unmarked_slow: list[tuple[str, float]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.duration > UNMARKED_SLOW_S and "slow" not in report.keywords:
        _unmarked_slow.append((report.nodeid, report.duration))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _unmarked_slow:
        terminalreporter.write_line(
            f"tests over {UNMARKED_SLOW_S:g} s not marked slow (the quick subset runs them): "
            + ", ".join(f"{name} ({seconds:.1f} s)" for name, seconds in sorted(_unmarked_slow))
        )
