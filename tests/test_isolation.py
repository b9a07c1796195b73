"""--timeout and the child process: a hanging or dying implementation fails its case, never the gate."""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import time

import numpy as np
import pytest
from click.testing import CliRunner

from checking import check_layer
from convgrad.cli import cli
from convgrad.errors import SettingError
from convgrad.geometry import resolve_geometry
from convgrad.options import DEFAULT_TIMEOUT_S, CheckOptions
from convgrad.run.isolation import can_isolate
from convgrad.render.json import case_to_dict
from test_determinism import without_timings

pytestmark = pytest.mark.skipif(not can_isolate(), reason="needs fork")

GEOMETRY = resolve_geometry("2x6x5", "3x2x3x2", stride=2, padding=1, batch=2)
STANDARD_SUITE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "standard.toml")


def assert_unfinished(case, reason: str, kept: tuple[str, ...] = ()) -> None:
    """The case could not be checked; the rows in `kept` finished (and passed) before it ended."""
    assert not case.passed and case.status == "error"
    assert reason in case.reason
    assert [t.name for t in case.tensors] == ["O", "dX", "dK", "db"]
    for tensor in case.tensors:
        if tensor.name in kept:
            assert tensor.passed and tensor.checked > 0
        else:
            assert tensor.status == "error" and tensor.checked == 0 and tensor.reason == case.reason


def test_a_hanging_forward_times_out(reference_with):
    class Hangs(reference_with):
        def forward(self, x, w, b, **settings):
            time.sleep(3600)

    started = time.monotonic()
    case = check_layer(GEOMETRY, isolated=True, layer=Hangs(), timeout=1, seed=3)
    assert time.monotonic() - started < 60  # not the hour the forward asked for
    assert_unfinished(case, "timed out after 1 s")
    assert "raise the timeout" in case.reason
    assert case.implementation == "broken" and case.seed == 3


def test_a_backward_that_hangs_after_some_work_times_out(reference_with):
    class SlowBackward(reference_with):
        def backward(self, dy, x, w, b, **settings):
            time.sleep(3600)

    case = check_layer(GEOMETRY, isolated=True, layer=SlowBackward(), timeout=0.5)
    assert_unfinished(case, "timed out after 0.5 s in backward of the first call", kept=("O",))


def segfault() -> None:
    """Die as a crash in native code would; without pytest's faulthandler dumping the stack."""
    faulthandler.disable()
    signal.signal(signal.SIGSEGV, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGSEGV)


@pytest.mark.parametrize(
    "die, reason",
    [
        (lambda: os.kill(os.getpid(), signal.SIGKILL), "killed by SIGKILL"),
        (segfault, "killed by SIGSEGV"),
        (lambda: os._exit(3), "exited with code 3"),
    ],
    ids=["sigkill", "segfault", "os-exit"],
)
def test_an_implementation_that_kills_its_process_fails_the_case(die, reason, reference_with):
    class Dies(reference_with):
        def backward(self, dy, x, w, b, **settings):
            die()

    case = check_layer(GEOMETRY, isolated=True, layer=Dies(), timeout=60)
    assert_unfinished(case, reason, kept=("O",))
    assert "in backward of the first call" in case.reason


def test_sys_exit_in_the_implementation_fails_the_case(reference_with):
    class Exits(reference_with):
        def forward(self, x, w, b, **settings):
            raise SystemExit(4)

    case = check_layer(GEOMETRY, isolated=True, layer=Exits(), timeout=60)
    assert_unfinished(case, "SystemExit: 4")


def test_isolated_report_equals_the_in_process_one(reference_with):
    class OffByOne(reference_with):  # a failing case too, so reasons and worst values are compared
        def backward(self, dy, x, w, b, **settings):
            dx, dw, db = super().backward(dy, x, w, b, **settings)
            return dx, dw, db + 1

    for layer in (None, OffByOne()):
        isolated = check_layer(GEOMETRY, isolated=True, layer=layer, timeout=60, seed=5)
        in_process = check_layer(GEOMETRY, layer, seed=5)
        assert isolated.passed == in_process.passed == (layer is None)
        assert without_timings(case_to_dict(isolated)) == without_timings(case_to_dict(in_process))
        for a, b in zip(isolated.tensors, in_process.tensors):
            np.testing.assert_array_equal(a.numerical, b.numerical)


def test_progress_is_forwarded_from_the_child(monkeypatch):
    import convgrad.run.isolation as isolation

    monkeypatch.setattr(isolation, "_PROGRESS_INTERVAL_S", 0.0)
    started, advanced = [], []

    def progress(description, total):
        started.append((description, total))
        return advanced.append

    case = check_layer(GEOMETRY, isolated=True, timeout=60, progress=progress)
    assert case.passed
    # Two tasks per gradient tensor (the base call and linearity test, then the differences) and
    # one for the later calls of the protocol and one for the network scenario, covering every
    # forward call but the first (the output's).
    assert [description.split()[0] for description, _ in started] == [
        "dX", "dX", "dK", "dK", "db", "db", "later", "network",
    ]
    assert [description for description, _ in started][::2][:3] == [
        f"{name} base and linearity test" for name in ("dX", "dK", "db")
    ]
    assert sum(total for _, total in started) == case.forward_calls - 1
    assert sum(advanced) == case.forward_calls - 1


def test_input_errors_in_the_child_are_raised_in_the_caller():
    # The step's bound depends on the case's dtype, so it is only settled in the child.
    with pytest.raises(SettingError, match="step=1e-06 is too small for float64"):
        check_layer(GEOMETRY, isolated=True, timeout=60, relative_step=1e-6, rtol=1e-9)


def test_a_huge_timeout_is_accepted():
    assert check_layer(GEOMETRY, isolated=True, timeout=1e20).passed


@pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "10", True])
def test_bad_timeouts_are_refused(timeout):
    with pytest.raises(SettingError, match="timeout="):
        CheckOptions(timeout=timeout)


def test_cli_timeout_fails_a_slow_case_with_exit_1():
    # The whole reference check of this layer takes seconds; the limit is a hundredth of one.
    result = CliRunner().invoke(
        cli, ["check", "--in", "8x12x12", "--kernels", "8x8x3x3", "--timeout", "0.01", "--json"]
    )
    assert result.exit_code == 1, result.output
    case = json.loads(result.output)["cases"][0]
    assert case["passed"] is False and case["reason"].startswith("timed out after 0.01 s")
    # A hang is not a wrong gradient: the case could not be checked. A row that finished in time
    # (O may) keeps its verdict; the others could not be checked either.
    assert case["status"] == "error" and case["tensors"][-1]["status"] == "error"
    for t in case["tensors"]:
        assert t["status"] == "passed" or (t["status"] == "error" and t["checked"] == 0)


def test_cli_help_documents_the_default_timeout():
    result = CliRunner().invoke(cli, ["check", "--help"])
    assert "--timeout SECONDS" in result.output
    assert f"[default: {DEFAULT_TIMEOUT_S:g}]" in result.output


def test_without_fork_the_check_runs_in_process_and_says_the_timeout_is_not_enforced(monkeypatch):
    import convgrad.run.isolation as isolation

    monkeypatch.setattr(isolation, "can_isolate", lambda: False)
    case = check_layer(GEOMETRY, isolated=True, timeout=60, seed=5)
    assert case.passed
    assert case.warnings == ("the timeout is not enforced: this platform cannot fork",)
    assert without_timings(case_to_dict(case))["tensors"] == without_timings(
        case_to_dict(check_layer(GEOMETRY, seed=5))
    )["tensors"]


@pytest.mark.slow
def test_a_suite_in_parallel_reports_what_it_reports_one_case_at_a_time(tmp_path):
    one = CliRunner().invoke(cli, ["check", "--config", STANDARD_SUITE, "--json", "--jobs", "1"])
    two = CliRunner().invoke(cli, ["check", "--config", STANDARD_SUITE, "--json", "--jobs", "2"])
    assert one.exit_code == two.exit_code == 0
    assert without_timings(json.loads(one.output)) == without_timings(json.loads(two.output))


def test_in_parallel_a_hanging_case_times_out_alone(tmp_path):
    hangs_on_batch_2 = tmp_path / "hangs.py"
    hangs_on_batch_2.write_text(
        "import time\n"
        "from convgrad import reference\n"
        "def forward(x, w, b, **settings):\n"
        "    if x.shape[1] == 5:\n"
        "        time.sleep(3600)\n"
        "    return reference.forward(x, w, b, **settings)\n"
        "def backward(dy, x, w, b, **settings):\n"
        "    return reference.backward(dy, x, w, b, **settings)\n"
    )
    suite = tmp_path / "suite.toml"
    suite.write_text(
        '[[case]]\nname = "a"\nin = "2x5x5"\nkernels = "2x2x3x3"\n'
        '[[case]]\nname = "hangs"\nin = "5x5x5"\nkernels = "2x5x3x3"\nbatch = 2\n'
        '[[case]]\nname = "c"\nin = "2x6x6"\nkernels = "3x2x3x3"\n'
    )
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["check", "--impl", str(hangs_on_batch_2), "--config", str(suite), "--json",
                                      "--jobs", "2", "--timeout", "2"])
    assert time.monotonic() - started < 60
    assert result.exit_code == 1, result.output
    cases = json.loads(result.output)["cases"]
    assert [c["name"] for c in cases] == ["a", "hangs", "c"]  # the suite's order
    assert [c["passed"] for c in cases] == [True, False, True]
    assert cases[1]["reason"].startswith("timed out after 2 s")


def test_jobs_must_be_a_positive_whole_number():
    result = CliRunner().invoke(cli, ["check", "--in", "2x5x5", "--kernels", "2x2x3x3", "--jobs", "0"])
    assert result.exit_code == 2 and "'--jobs'" in result.output and len(result.output.strip().splitlines()) == 1
