"""A case that times out or whose process dies says in which call, and keeps the verdicts of what
finished before it: the first call's rows, the later calls and scenario steps that ran. The rows
that never finished are errors with that reason; later calls never reached are not listed.

The layers are in tests/implementations/stalling_layers.py."""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from checking import check_layer
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry
from convgrad.run.isolation import can_isolate

pytestmark = pytest.mark.skipif(not can_isolate(), reason="needs fork")

LAYERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "implementations", "stalling_layers.py")
CASE = ("--in", "3x6x6", "--kernels", "4x3x3x3")
PROTOCOL = [
    "second call", *(f"memory layouts {n}" for n in range(1, 6)), "first call repeated",
]


def run(functions: str, *args: str):
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["check", "--impl", f"{LAYERS}:{functions}", *CASE, *args],
                                env={"COLUMNS": "100"})
    assert time.monotonic() - started < 60  # never the hour a stalled call would take
    assert result.exit_code == 1, result.output
    return result


def check_json(functions: str, *args: str, timeout: str = "1") -> dict:
    """The case as JSON; a hang after the first call gets `timeout` 2 s, room for the calls before it."""
    case = json.loads(run(functions, "--json", "--timeout", timeout, *args).stdout)["cases"][0]
    assert case["status"] == "error" and case["passed"] is False
    return case


def statuses(case: dict) -> dict[str, str]:
    return {t["name"]: t["status"] for t in case["tensors"]}


def calls(case: dict) -> list[tuple[str, str]]:
    return [(c["name"], c["status"]) for c in case["calls"]]


def test_a_backward_that_hangs_keeps_the_forward_verdict():
    case = check_json("conv_forward,conv_backward_synced")
    hung = "timed out after 1 s in backward of the first call; the implementation may hang"
    assert case["reason"].startswith(hung)
    # The forward returned and matched: O keeps its verdict; the gradients the backward never
    # returned could not be checked, for the hang.
    assert statuses(case) == {"O": "passed", "dX": "error", "dK": "error", "db": "error"}
    assert case["tensors"][0]["checked"] == 64
    assert all(t["reason"].startswith(hung) and t["checked"] == 0 for t in case["tensors"][1:])
    assert calls(case) == []  # no later call ran: none is a failure


def test_the_human_report_and_junit_name_the_call_that_hung(tmp_path):
    junit = tmp_path / "report.xml"
    result = run("conv_forward,conv_backward_synced", "--timeout", "1", "--junit", str(junit))
    text = " ".join(result.output.split())  # the lines fit 100 columns: joined again
    assert "ERROR" in text and "timed out after 1 s in backward of the first call" in text
    assert [line.split()[-1] for line in result.output.splitlines() if line.split()[:2] == ["O", "1x4x4x4"]] == ["PASS"]
    error = ET.parse(junit).find(".//testcase/error")
    assert error is not None and error.get("message", "").startswith("timed out after 1 s in backward of the first call")
    assert "O: PASS" in (error.text or "")


def test_a_forward_that_hangs_on_the_second_call_keeps_the_first_call():
    case = check_json("conv_forward_warm_start,conv_backward")
    assert case["reason"].startswith("timed out after 1 s in forward of the second call")
    assert set(statuses(case).values()) == {"passed"}
    assert all(t["checked"] == t["total"] > 0 for t in case["tensors"])
    assert calls(case) == [("unfinished", "error")]  # the second call, which hung: the case's error part


def test_a_hang_in_one_gradients_finite_differences_keeps_the_gradients_before_it():
    case = check_json("conv_forward_transformed,conv_backward")
    hung = "timed out after 1 s in forward of the finite differences for dK"
    assert case["reason"].startswith(hung)
    assert statuses(case) == {"O": "passed", "dX": "passed", "dK": "error", "db": "error"}
    assert all(t["reason"].startswith(hung) for t in case["tensors"][2:])


def test_a_hang_in_a_memory_layout_keeps_the_calls_before_it():
    case = check_json("conv_forward_pinned,conv_backward", timeout="2")
    assert case["reason"].startswith("timed out after 2 s in forward of memory layouts 1")
    assert set(statuses(case).values()) == {"passed"}
    assert calls(case) == [("second call", "passed"), ("unfinished", "error")]  # the call that hung, listed


def test_a_wrong_gradient_before_a_hang_keeps_its_failure_and_the_case_is_an_error():
    case = check_json("conv_forward_pinned,conv_backward_batch_mean_db", "--batch", "2", timeout="2")
    assert statuses(case) == {"O": "passed", "dX": "passed", "dK": "passed", "db": "failed"}
    assert case["tensors"][3]["reason"].startswith("4 of 4 coordinates differ")
    assert calls(case) == [("second call", "failed"), ("unfinished", "error")]
    # The hang comes first: a case that did not finish could not be checked, whatever it found.
    assert case["reason"].startswith("timed out after 2 s in forward of memory layouts 1")
    assert "db: 4 of 4 coordinates differ" in case["reason"]
    # What the first call found is explained even though the case never finished.
    assert [d["tensor"] for d in case["diagnosis"]] == ["db"] and "looks like" in case["reason"]


def test_a_hang_in_the_network_scenario_names_the_step_and_the_layer():
    case = check_json("conv_forward,conv_backward_planned", timeout="2")
    assert case["reason"].startswith(
        "timed out after 2 s in backward of layer B in the network scenario's step 'other settings'"
    )
    assert set(statuses(case).values()) == {"passed"}
    assert calls(case) == [(name, "passed") for name in PROTOCOL] + [("two instances", "passed"), ("unfinished", "error")]
    assert case["calls"][-1]["part"] == "network scenario" and "other settings" in case["calls"][-1]["reason"]


def test_a_process_ended_in_backward_names_the_call():
    case = check_json("conv_forward,conv_backward_float32_kernel")
    assert case["reason"].startswith(
        "the check process exited with code 70 in backward of the first call, before reporting"
    )
    assert statuses(case) == {"O": "passed", "dX": "error", "dK": "error", "db": "error"}
    assert calls(case) == []


def test_the_correct_layer_passes_and_the_wrong_one_fails_without_a_timeout():
    for functions, expected in (("conv_forward,conv_backward", "passed"),
                                ("conv_forward,conv_backward_batch_mean_db", "failed")):
        result = CliRunner().invoke(cli, ["check", "--impl", f"{LAYERS}:{functions}", *CASE, "--batch", "2", "--json"])
        case = json.loads(result.stdout)["cases"][0]
        assert case["status"] == expected and statuses(case)["db"] == expected
        names = [name for name, _ in calls(case)]
        assert names[: len(PROTOCOL)] == PROTOCOL
        assert ("other settings" in names) == (expected == "passed")  # the scenario follows a first call that held


def test_a_timeout_between_calls_says_the_last_call_returned(monkeypatch, reference_with):
    import convgrad.run.case as case_module

    def stalls(*args, **kwargs):  # the check's own work after the first call, forked with the child
        time.sleep(3600)

    monkeypatch.setattr(case_module, "later_calls", stalls)
    geometry = resolve_geometry("2x5x5", "3x2x3x3")
    case = check_layer(geometry, isolated=True, layer=reference_with(), timeout=1)
    assert case.status == "error"
    assert case.reason.startswith("timed out after 1 s, after forward of the finite differences for db returned")
    assert [t.status for t in case.tensors] == ["passed"] * 4


LAYER_CLASS_HANGING_ON_ITS_SECOND_INSTANCE = '''
import time
from convgrad import reference

class Conv:
    made = 0

    def __init__(self):
        Conv.made += 1
        if Conv.made > 1:  # the network scenario builds layers of its own
            time.sleep(3600)

    def forward(self, x, w, b, **settings):
        return reference.forward(x, w, b, **settings)

    def backward(self, dy, x, w, b, **settings):
        return reference.backward(dy, x, w, b, **settings)
'''


def test_a_hang_while_the_scenario_builds_its_layers_is_a_scenario_call(tmp_path):
    layer = tmp_path / "hangs_when_built_again.py"
    layer.write_text(LAYER_CLASS_HANGING_ON_ITS_SECOND_INSTANCE)
    result = CliRunner().invoke(cli, ["check", "--impl", f"{layer}:Conv", *CASE, "--json", "--timeout", "2"])
    case = json.loads(result.stdout)["cases"][0]
    assert result.exit_code == 1 and case["status"] == "error"
    assert "in the network scenario" in case["reason"]
    unfinished = case["calls"][-1]
    assert (unfinished["name"], unfinished["part"], unfinished["status"]) == ("unfinished", "network scenario", "error")
