"""`convgrad fuzz` shrinks to a minimal layer: each setting the repro keeps is one the failure needs.

The planted mistakes (tests/zoo/wrong_with_some_settings.py, and the zoo's BiasFromFirstImage)
each show only with some settings. The shrunk case keeps exactly those, says `complete`, and
the same `convgrad check` without any one of them passes. The seeds find each mistake in the
first few layers drawn; the budget is generous and never reached.
"""

from __future__ import annotations

import json
import shlex

import pytest
from click.testing import CliRunner

from convgrad.adapters.loading import load_implementation
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry
from convgrad.run.fuzz import FailureSignature, complexity, shrink_candidates
from zoo import spec

BUDGET = "60"
PLANTED = spec("wrong_with_some_settings.py")
DEFAULTS = {"batch": 1, "stride": [1], "padding": [0], "dilation": [1], "groups": 1, "dtype": "float64"}


def run(args: list[str]):
    return CliRunner().invoke(cli, args, env={"COLUMNS": "100"})


def fuzz_failure(impl: str, seed: int) -> dict:
    result = run(["fuzz", "--impl", impl, "--seed", str(seed), "--budget", BUDGET, "--json"])
    assert result.exit_code == 1, result.output
    return json.loads(result.stdout)["failure"]


def wrong_tensors(case: dict) -> set[str]:
    return {t["name"] for t in case["tensors"] if t["status"] != "passed"}


def settings_off_default(failure: dict) -> dict:
    """The settings the shrunk case keeps away from their defaults."""
    settings = failure["shrunk"]["settings"]
    return {name: settings[name] for name, default in DEFAULTS.items() if settings[name] != default}


def without(command: str, flag: str) -> list[str]:
    """The reproducing command's arguments (after `convgrad`) with `flag` and its value left out."""
    words = shlex.split(command)[1:]
    at = words.index(flag)
    return words[:at] + words[at + 2:]


def assert_each_kept_setting_matters(failure: dict, flags: list[str]) -> None:
    """The reproducing command fails in the shrunk case's tensors; without any one of `flags`, its
    first call is right (a later step that runs a layer with other settings, padding say, may
    still show the mistake: that is not the same failure)."""
    command = failure["command"]
    result = run(shlex.split(command)[1:] + ["--json"])
    assert result.exit_code == 1
    (case,) = json.loads(result.stdout)["cases"]
    assert wrong_tensors(case) == wrong_tensors(failure["shrunk"])
    for flag in flags:
        result = run(without(command, flag) + ["--json"])
        (case,) = json.loads(result.stdout)["cases"]
        assert wrong_tensors(case) == set(), f"still fails without {flag}: {case['reason']}"


def test_dk_wrong_only_with_padding_keeps_the_padding_and_nothing_else():
    failure = fuzz_failure(f"{PLANTED}:DkPaddedWithEdgeValues", seed=0)
    assert failure["complete"] is True and failure["incomplete_reason"] is None
    assert settings_off_default(failure) == {"padding": [1]}
    shrunk = failure["shrunk"]["settings"]
    assert (shrunk["in"], shrunk["kernels"]) == ([1, 1], [1, 1, 1])  # 1-D, one channel, one tap
    assert wrong_tensors(failure["first"]) >= {"dK"} and wrong_tensors(failure["shrunk"]) == {"dK"}
    assert_each_kept_setting_matters(failure, ["--padding"])


@pytest.mark.slow
def test_dx_wrong_only_when_strided_and_dilated_keeps_both_and_drops_the_padding():
    # The first failure is padded; shrinking once kept its padding (an input of 1 cannot lose
    # it), where the dilation was what the layer got wrong.
    failure = fuzz_failure(f"{PLANTED}:StridedPathForgetsDilation", seed=1)
    assert failure["first"]["settings"]["padding"] != [0]
    assert failure["complete"] is True
    assert settings_off_default(failure) == {"stride": [2], "dilation": [2]}
    assert (failure["shrunk"]["settings"]["in"], failure["shrunk"]["settings"]["kernels"]) == ([1, 3], [1, 1, 2])
    assert wrong_tensors(failure["shrunk"]) == {"dX"}
    assert "dilation was ignored" in failure["shrunk"]["reason"]  # the diagnosis of the true cause
    assert_each_kept_setting_matters(failure, ["--stride", "--dilation"])


def test_db_wrong_only_for_a_batch_keeps_batch_2_and_nothing_else():
    failure = fuzz_failure(spec("BiasFromFirstImage"), seed=0)
    assert failure["complete"] is True
    assert settings_off_default(failure) == {"batch": 2}
    assert (failure["shrunk"]["settings"]["in"], failure["shrunk"]["settings"]["kernels"]) == ([1, 1], [1, 1, 1])
    assert wrong_tensors(failure["shrunk"]) == {"db"}
    assert_each_kept_setting_matters(failure, ["--batch"])


def test_a_budget_spent_before_shrinking_is_verified_says_so(tmp_path):
    # dK is always wrong, and each check (a process of its own) outlasts the whole budget in its
    # first backward call: the first layer fails, and no simpler one can be checked.
    layer = tmp_path / "slow_wrong_dk.py"
    layer.write_text(
        "import time\n"
        "from convgrad import reference\n"
        "warm = []\n"
        "def forward(x, w, b, **settings):\n"
        "    return reference.forward(x, w, b, **settings)\n"
        "def backward(dy, x, w, b, **settings):\n"
        "    if not warm:\n"
        "        time.sleep(0.3)\n"
        "        warm.append(True)\n"
        "    dx, dw, db = reference.backward(dy, x, w, b, **settings)\n"
        "    return dx, 2 * dw, db\n"
    )
    result = run(["fuzz", "--impl", str(layer), "--budget", "0.2", "--json"])
    assert result.exit_code == 1, result.output
    failure = json.loads(result.stdout)["failure"]
    assert failure["complete"] is False and failure["tries"] == 0
    assert failure["incomplete_reason"].startswith("the budget ran out with ")
    assert "simpler layers not yet checked; one of them may fail the same way" in failure["incomplete_reason"]
    assert wrong_tensors(failure["shrunk"]) >= {"dK"}
    shown = " ".join(run(["fuzz", "--impl", str(layer), "--budget", "0.2"]).output.split())  # unwrapped
    assert "not known to be minimal: the budget ran out with" in shown
    assert shown.endswith("fails; shrunk from random layer 1 (not known to be minimal)")


def test_padding_is_dropped_with_the_input_grown_by_as_much():
    # An input of 1 fits a 3-tap kernel only padded: dropping the padding alone makes no layer.
    layer = resolve_geometry("1x1", "1x1x3", padding=1)
    candidates = list(shrink_candidates(layer))
    assert resolve_geometry("1x3", "1x1x3") in candidates
    assert all(complexity(c) < complexity(layer) for c in candidates)


def test_a_setting_the_layer_refuses_to_drop_alone_is_dropped_with_the_one_it_needs():
    # A 'same'-padding layer: 3 taps need padding 1, 1 tap padding 0; neither changes alone.
    layer = load_implementation(spec("same_only.py") + ":SameOrValidNonSquareBug")
    geometry = resolve_geometry("1x2x1", "1x1x3x3", padding=1)
    assert layer.unsupported(resolve_geometry("1x2x1", "1x1x3x1", padding=1)) is not None  # not 'same'
    candidates = list(shrink_candidates(geometry, layer.unsupported))
    # One tap along W and no padding there: the input grown by the padding it lost.
    assert resolve_geometry("1x2x3", "1x1x3x1", padding=(1, 0)) in candidates
    assert all(layer.unsupported(c) is None and complexity(c) < complexity(geometry) for c in candidates)


@pytest.mark.parametrize(
    "found, simpler, same",
    [
        (FailureSignature("first call", frozenset({"dK"})), FailureSignature("first call", frozenset({"dK"})), True),
        # More tensors wrong: still shows dK (a layer that reads only padding got dX right by accident).
        (FailureSignature("first call", frozenset({"dK"})), FailureSignature("first call", frozenset({"dK", "dX"})), True),
        (FailureSignature("first call", frozenset({"dK", "db"})), FailureSignature("first call", frozenset({"dK"})), False),
        (FailureSignature("first call", frozenset({"dK"})), FailureSignature("first call", frozenset({"dX"})), False),
        # A later call's failure, seen sooner in the first call: kept; the other way round: not.
        (FailureSignature("other settings", frozenset({"dX"})), FailureSignature("first call", frozenset({"dX"})), True),
        (FailureSignature("first call", frozenset({"dX"})), FailureSignature("other settings", frozenset({"dX"})), False),
        (FailureSignature("second call"), FailureSignature("first call", frozenset({"dX"})), False),
        (FailureSignature("case"), FailureSignature("case"), True),
        (FailureSignature("case"), FailureSignature("first call", frozenset({"O"})), False),
    ],
)
def test_what_fails_the_same_way(found, simpler, same):
    assert found.shown_by(simpler) is same
