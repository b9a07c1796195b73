"""A suite file as pytest tests: one test id per case, failures naming the case and the tensor, a
case the layer cannot run skipped, and pytest-xdist spreading the cases over workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from convgrad.errors import ConfigError
from convgrad.testing import assert_case, suite_cases
from processes import convgrad_env
from zoo import FOLDER as ZOO

SUITE = """
    name = "strides"
    in = "2x7x7"
    kernels = "3x2x3x3"
    [[case]]
    name = "plain"
    [[case]]
    name = "padded"
    padding = 1
    [[case]]
    name = "batch 2"
    batch = 2
    [[case]]
    name = "float32"
    dtype = "float32"
    [[case]]
    name = "strided"
    stride = 2
    [[case]]
    name = "1-D"
    in = "2x9"
    kernels = "3x2x3"
"""

TESTS = """
    import os

    import pytest

    from convgrad.testing import assert_case, suite_cases


    @pytest.mark.parametrize("case", suite_cases({suite!r}))
    def test_layer(case):
        with open(os.path.join({log!r}, os.environ.get("PYTEST_XDIST_WORKER", "main")), "a") as log:
            log.write(case.name + "\\n")
        assert_case(case, {impl!r}, timeout=60)
"""


def write_project(tmp_path, impl: str) -> str:
    (tmp_path / "suite.toml").write_text(textwrap.dedent(SUITE))
    (tmp_path / "log").mkdir()
    test = tmp_path / "test_layer.py"
    test.write_text(textwrap.dedent(TESTS).format(suite=str(tmp_path / "suite.toml"), log=str(tmp_path / "log"), impl=impl))
    return str(test)


def pytest_run(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], capture_output=True, text=True,
        cwd=cwd, env=convgrad_env(),
    )


@pytest.mark.slow
def test_each_case_is_one_test_named_after_the_case(tmp_path):
    test = write_project(tmp_path, "reference")
    collected = pytest_run("--collect-only", "-q", test, cwd=tmp_path)
    ids = [line.split("[", 1)[1].rstrip("]") for line in collected.stdout.splitlines() if "::test_layer[" in line]
    assert ids == ["plain", "padded", "batch 2", "float32", "strided", "1-D"], collected.stdout


@pytest.mark.slow
def test_a_wrong_layer_fails_only_its_cases_naming_the_tensor_and_skips_what_it_cannot_run(tmp_path):
    test = write_project(tmp_path, os.path.join(ZOO, "stride_ignored_in_dx.py"))
    result = pytest_run("-q", "-rfs", test, cwd=tmp_path)
    assert "1 failed, 4 passed, 1 skipped" in result.stdout, result.stdout
    assert "FAILED test_layer.py::test_layer[strided] - AssertionError: convgrad: dX of" in result.stdout
    assert "SKIPPED [1] test_layer.py:" in result.stdout and ": convgrad: " in result.stdout
    assert "handles 2-D layers only (spatial_dims) and this case is 1-D" in result.stdout


@pytest.mark.slow
def test_pytest_xdist_spreads_the_cases_over_workers(tmp_path):
    pytest.importorskip("xdist")
    test = write_project(tmp_path, "reference")
    result = pytest_run("-q", "-n", "2", test, cwd=tmp_path)
    assert "6 passed" in result.stdout, result.stdout
    workers = sorted(os.listdir(tmp_path / "log"))
    assert workers == ["gw0", "gw1"]
    ran = sorted(line for worker in workers for line in (tmp_path / "log" / worker).read_text().splitlines())
    assert ran == sorted(["plain", "padded", "batch 2", "float32", "strided", "1-D"])


def test_assert_case_in_this_process_returns_the_report_or_raises():
    suite = os.path.join(os.path.dirname(ZOO), os.pardir, "configs", "seed.toml")
    (case,) = [param.values[0] for param in suite_cases(suite)]
    assert assert_case(case).passed
    with pytest.raises(AssertionError, match=r"convgrad: dX of .* does not match"):
        assert_case(case, os.path.join(ZOO, "kernels_not_rotated.py"))


def test_a_missing_suite_file_is_bad_input_at_collection(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        suite_cases(str(tmp_path / "nope.toml"))
