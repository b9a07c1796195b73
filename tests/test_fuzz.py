"""`convgrad fuzz`: it finds the zoo's bugs that need two settings together, shrinks them to the
smallest layer that shows them, and prints a command line and a suite case that reproduce it."""

from __future__ import annotations

import itertools
import json
import math
import pathlib
import re
import shlex

import pytest
from click.testing import CliRunner

from conftest import assert_bad_input
from convgrad.cli import cli
from convgrad.geometry import resolve_geometry
from convgrad.options import FuzzOptions
from convgrad.run.fuzz import FEATURES, MAX_COORDINATES, complexity, features, random_geometries, shrink_candidates

LARGE_FEATURES = ("C/g or F 17 to 40", "batch 9 to 13", "over 4096 outputs", "kernel 5 or more", "kernel == stride >= 4")
from convgrad.suite import load_suite
from zoo import FOLDER, spec

# Generous: each planted bug below is found and shrunk in a few seconds. Nothing asserts a time.
BUDGET = "60"

JSON_FIELDS = {
    "convgrad_version", "passed", "implementation", "seed", "budget_s", "dtypes", "elapsed_s", "checked",
    "skipped", "skip_reasons", "coverage", "failure",
}
FAILURE_FIELDS = {"found_after", "first", "shrunk", "steps", "tries", "complete", "incomplete_reason", "command", "toml"}


def run(args: list[str]):
    return CliRunner().invoke(cli, args, env={"COLUMNS": "80"})


def fuzz_json(layer: str) -> dict:
    result = run(["fuzz", "--impl", spec(layer), "--budget", BUDGET, "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert set(report) == JSON_FIELDS
    assert set(report["failure"]) == FAILURE_FIELDS
    return report


@pytest.fixture(scope="module")
def groups_bug() -> dict:
    return fuzz_json("GroupsStackedWithoutTranspose")


@pytest.fixture(scope="module")
def chunked_batch() -> dict:
    return fuzz_json("ChunkedBatch")


def assert_reproduces(failure: dict, tmp_path) -> None:
    """The printed command and the suite case both check the shrunk layer, and it fails."""
    words = shlex.split(failure["command"])
    assert words[:2] == ["convgrad", "check"]
    result = run(words[1:])
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output
    suite_file = tmp_path / "found.toml"
    suite_file.write_text(failure["toml"] + "\n")
    (case,) = load_suite(str(suite_file)).cases
    assert case.geometry.settings().items() <= failure["shrunk"]["settings"].items()
    result = run(["check", "--impl", words[3], "--config", str(suite_file)])
    assert result.exit_code == 1, result.output


@pytest.mark.slow
def test_groups_with_batch_is_found_and_shrunk_to_batch_2(groups_bug, tmp_path):
    # The first failure fails its first call; the simplest layer whose first call fails in the
    # same tensors has the smallest batch that meets groups: 2 (at batch 1 only the network
    # scenario's other batch sizes would show it, a part the first failure did not fail in).
    failure = groups_bug["failure"]
    shrunk = failure["shrunk"]["settings"]
    assert failure["complete"] and failure["steps"] > 0
    assert shrunk["groups"] > 1 and shrunk["batch"] == 2
    # Small: one short spatial axis, 1x1 kernels, one channel per group, float64.
    assert shrunk["in"][0] == 2 and len(shrunk["in"]) == 2 and shrunk["in"][1] <= 3 and shrunk["kernels"] == [2, 1, 1]
    assert (shrunk["stride"], shrunk["dilation"], shrunk["dtype"]) == ([1], [1], "float64")
    assert {t["name"] for t in failure["shrunk"]["tensors"] if not t["passed"]} == {"O", "dX", "dK", "db"}
    assert_reproduces(failure, tmp_path)


@pytest.mark.slow
def test_chunked_batch_is_shrunk_to_batch_5(chunked_batch, tmp_path):
    failure = chunked_batch["failure"]
    shrunk = failure["shrunk"]["settings"]
    assert failure["complete"]
    assert shrunk["batch"] == 5 and shrunk["groups"] == 1 and shrunk["in"] == [1, 1]
    failing = {t["name"] for t in failure["shrunk"]["tensors"] if not t["passed"]}
    assert failing == {"dK"}  # the same tensor as the first failure: dK alone is wrong
    assert_reproduces(failure, tmp_path)


@pytest.mark.slow
def test_people_see_the_report_the_command_and_the_suite_case():
    result = run(["fuzz", "--impl", spec("GroupsStackedWithoutTranspose"), "--budget", BUDGET])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    command = next(line for line in lines if line.startswith("convgrad check "))
    assert shlex.split(command)[2:4] == ["--impl", spec("GroupsStackedWithoutTranspose")]
    assert "--batch 2" in command and "--groups 2" in command
    assert "[[case]]" in lines and "groups = 2" in lines
    assert "tensor  expected" in result.output  # the shrunk case's own table
    assert any(line.startswith("shrunk in ") for line in lines)
    assert run(shlex.split(command)[1:]).exit_code == 1
    assert re.match(r"FAIL: N2 2x\d \* 2x1x1 (p1 )?g2 fails; shrunk from random layer ", lines[-1]), lines[-1]


@pytest.mark.slow
def test_a_channels_last_layer_is_shrunk_in_its_own_rank_and_layouts(tmp_path):
    # The correct channels-last layer (2-D only) with db averaged over the batch.
    layer = tmp_path / "channels_last_mean_db.py"
    layer.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(pathlib.Path(FOLDER).parent / 'implementations')!r})\n"
        "from channels_last import backward as correct_backward, forward, spatial_dims\n"
        "def backward(dy, x, w, b, **settings):\n"
        "    dx, dw, db = correct_backward(dy, x, w, b, **settings)\n"
        "    return dx, dw, db / dy.shape[0]\n"
    )
    result = run([
        "fuzz", "--impl", str(layer), "--layout", "nhwc", "--weight-layout", "hwio", "--seed", "8",
        "--budget", BUDGET, "--json",
    ])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    # 1-D and 3-D layers are skipped and counted, and the shrinker keeps to 2-D.
    assert report["skipped"] > 0 and report["coverage"]["1-D"] == report["coverage"]["3-D"] == 0
    assert sum(r["count"] for r in report["skip_reasons"]) == report["skipped"]
    failure = report["failure"]
    assert failure["shrunk"]["settings"]["batch"] == 1 and len(failure["shrunk"]["settings"]["in"]) == 3
    # At batch 1 the mean is the sum: the network scenario's other batch sizes show db wrong.
    sizes = next(c for c in failure["shrunk"]["calls"] if c["name"] == "batch sizes")
    assert not sizes["passed"] and {t["name"] for t in sizes["tensors"] if not t["passed"]} == {"db"}
    words = shlex.split(failure["command"])
    for flag, value in (("--layout", "nhwc"), ("--weight-layout", "hwio"), ("--seed", "8")):
        assert words[words.index(flag) + 1] == value
    assert run(words[1:]).exit_code == 1


def reference_layer_file(tmp_path, name: str, forward_first_line: str) -> str:
    """A file with the reference layer whose forward first runs `forward_first_line`."""
    layer = tmp_path / name
    layer.write_text(
        "import os, time\n"
        "from convgrad import reference\n"
        "def forward(x, w, b, **settings):\n"
        f"    {forward_first_line}\n"
        "    return reference.forward(x, w, b, **settings)\n"
        "def backward(dy, x, w, b, **settings):\n"
        "    return reference.backward(dy, x, w, b, **settings)\n"
    )
    return str(layer)


def test_a_layer_that_crashes_is_a_failure_shrunk_like_any_other(tmp_path):
    layer = reference_layer_file(tmp_path, "dies.py", "if max(settings['dilation']) > 1: os._exit(3)")
    result = run(["fuzz", "--impl", layer, "--budget", BUDGET, "--json"])
    assert result.exit_code == 1, result.output
    shrunk = json.loads(result.stdout)["failure"]["shrunk"]
    assert "exited with code 3" in shrunk["reason"]
    assert (shrunk["settings"]["in"], shrunk["settings"]["kernels"], shrunk["settings"]["dilation"]) == ([1, 1], [1, 1, 1], [2])


@pytest.mark.slow
def test_a_layer_that_raises_is_reported_as_an_error_not_a_wrong_gradient(tmp_path):
    layer = reference_layer_file(tmp_path, "raises.py", "if settings['groups'] > 1: raise ValueError('no groups')")
    result = run(["fuzz", "--impl", layer, "--budget", BUDGET])
    assert result.exit_code == 1, result.output
    verdict = next(line for line in result.stdout.splitlines() if line.startswith(("ERROR:", "FAIL:", "PASS:")))
    assert verdict.startswith("ERROR:") and "cannot be checked" in verdict, result.stdout


@pytest.mark.slow
def test_a_layer_that_hangs_times_out_and_the_budget_still_ends_the_run(tmp_path):
    layer = reference_layer_file(tmp_path, "hangs.py", "if settings['groups'] > 1: time.sleep(60)")
    result = run(["fuzz", "--impl", layer, "--budget", "4", "--timeout", "0.5", "--json"])
    assert result.exit_code == 1, result.output
    failure = json.loads(result.stdout)["failure"]
    assert failure["shrunk"]["settings"]["groups"] > 1 and "timed out after 0.5 s" in failure["shrunk"]["reason"]
    assert "--timeout 0.5" in failure["command"]


@pytest.mark.parametrize("impl", ["reference", spec("TapLoopConv")])
@pytest.mark.slow
def test_a_correct_layer_passes_and_says_what_was_covered(impl):
    result = run(["fuzz", "--impl", impl, "--budget", "5", "--dtype", "both"])
    assert result.exit_code == 0, result.output
    assert "PASS: none of" in result.output and "covered" in result.output
    for feature in ("1-D", "3-D", "depthwise x2", "batch > 1", "stride does not tile", "float32"):
        assert feature in result.output


@pytest.mark.slow
def test_json_reports_counts_and_coverage_of_a_clean_run():
    result = run(["fuzz", "--budget", "3", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == JSON_FIELDS
    assert report["passed"] is True and report["failure"] is None
    assert report["checked"] > 0 and report["skipped"] == 0 and report["dtypes"] == ["float64", "float32"]
    assert list(report["coverage"]) == list(FEATURES)
    assert sum(report["coverage"][rank] for rank in ("1-D", "2-D", "3-D")) == report["checked"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--budget", "0"], "--budget 0 must be a number of seconds greater than 0"),
        (["--budget", "-1"], "--budget -1 must be a number of seconds greater than 0"),
        (["--budget", "soon"], "Invalid value for '--budget'"),
        (["--impl", "nosuch.py"], "--impl nosuch.py: no such file"),
        (["--dtype", "float16"], "Invalid value for '--dtype'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    assert_bad_input(run(["fuzz", *args]), message)


def test_budget_is_checked_before_the_implementation_is_imported():
    assert_bad_input(run(["fuzz", "--budget", "0", "--impl", "nosuch.py"]), "--budget 0")


def test_the_same_seed_draws_the_same_layers():
    def first(seed: int, dtypes=("float64", "float32")):
        return list(itertools.islice(random_geometries(seed, dtypes), 40))

    assert first(7) == first(7)
    assert first(7) != first(8)
    assert {g.dtype for g in first(7, ("float32",))} == {"float32"}


def test_eighty_layers_cover_every_feature_and_only_the_large_draws_are_large():
    layers = list(itertools.islice(random_geometries(0, ("float64", "float32")), 80))
    assert {f for g in layers for f in features(g)} == set(FEATURES)
    large = [g for g in layers if set(features(g)) & set(LARGE_FEATURES)]
    assert 0.1 < len(large) / len(layers) < 0.4  # LARGE_SHARE of the draws, about
    for g in layers:
        if g not in large and not (g.kernel_size == (1, 1) and 2 in g.stride):
            assert sum(math.prod(s) for s in (g.x_shape, g.w_shape, g.b_shape)) <= MAX_COORDINATES
            assert g.batch <= 6


def test_every_shrink_candidate_is_a_simpler_layer():
    layer = resolve_geometry("4x5x6x3", "8x1x2x3x1", batch=4, stride="2x1x1", padding="1x0x1", dilation="1x2x1",
                             groups=4, dtype="float32")
    candidates = list(shrink_candidates(layer))
    assert candidates and all(complexity(c) < complexity(layer) for c in candidates)
    assert len(set(candidates)) == len(candidates)
    # Among them: one axis fewer, batch 1, groups dropped, float64.
    assert any(c.ndim == 2 for c in candidates)
    assert any(c.batch == 1 for c in candidates)
    assert any(c.groups == 1 and c.channels == 4 for c in candidates)
    assert any(c.dtype == "float64" for c in candidates)


def test_fuzz_options_validate_like_check_options():
    with pytest.raises(Exception, match="budget=0 must be"):
        FuzzOptions(budget_s=0)
    assert FuzzOptions(budget_s=5, dtypes=("float32", "float32")).dtypes == ("float32",)


def test_help_has_examples():
    result = run(["fuzz", "--help"])
    assert result.exit_code == 0
    assert "convgrad fuzz --impl my_conv.py" in result.output and "--budget" in result.output
