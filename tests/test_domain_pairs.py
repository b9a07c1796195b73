"""A layer that cannot run every standard case still gets every pair of the settings it supports.

A NumPy layer that takes 'valid' and 'same' padding only, without dilation or groups, runs a
handful of the shipped pairs cases; its documented bug (dX wrong for 'same' padding on a
non-square input) sits in a pair none of them has. With `domain_pairs = true` (the shipped suite
sets it) cases are added until every pair of the layer's own domain is covered, and one of them
catches the bug. Fixtures: tests/zoo/same_only.py.
"""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from convgrad.cli import cli
from convgrad.covering import FACTORS, domain_cover, levels_of, pairs_of, required_pairs
from convgrad.adapters.loading import load_implementation
from convgrad.options import CheckOptions
from convgrad.report import CaseReport, SuiteReport
from convgrad.run.domain import cover_domain
from convgrad.suite import load_suite

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDARD = os.path.join(ROOT, "configs", "standard.toml")
SAME_ONLY = os.path.join(ROOT, "tests", "zoo", "same_only.py")


def pairs_suite(tmp_path, domain_pairs: bool) -> str:
    """The shipped suite without its sizes cases (one of which has the bug's pair by chance)."""
    with open(STANDARD, encoding="utf-8") as handle:
        text = handle.read()
    text = text[: text.index('[[case]]\nname = "sizes 1')]
    path = tmp_path / "pairs.toml"
    path.write_text(text.replace("domain_pairs = true", f"domain_pairs = {str(domain_pairs).lower()}"))
    return str(path)


def check(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["check", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def test_the_shipped_suite_asks_for_the_layers_own_pairs():
    assert load_suite(STANDARD).domain_pairs


@pytest.mark.slow
def test_without_the_domain_the_restricted_layers_bug_passes(tmp_path):
    # The problem: the suite's 'same' cases also need dilation or groups, which the layer refuses.
    code, report = check("--impl", f"{SAME_ONLY}:SameOrValidNonSquareBug", "--config", pairs_suite(tmp_path, False))
    assert code == 0 and report["domain_pairs"] is None
    assert report["summary"]["passed"] < 10


@pytest.mark.slow
def test_the_domain_cases_catch_the_non_square_same_bug(tmp_path):
    code, report = check("--impl", f"{SAME_ONLY}:SameOrValidNonSquareBug", "--config", pairs_suite(tmp_path, True))
    assert code == 1
    domain = report["domain_pairs"]
    assert domain["covered"] == domain["pairs"] and domain["added"] > 0 and domain["refused"] == 0
    failing = [c for c in report["cases"] if c["status"] == "failed"]
    assert failing and all(c["name"].startswith("domain ") for c in failing)
    assert all({t["name"] for t in c["tensors"] if not t["passed"]} == {"dX"} for c in failing)
    assert all(c["settings"]["in"][1] != c["settings"]["in"][2] for c in failing)  # non-square inputs


@pytest.mark.slow
def test_the_correct_restricted_layer_passes_with_every_pair_of_its_domain(tmp_path):
    result = CliRunner().invoke(
        cli, ["check", "--impl", f"{SAME_ONLY}:SameOrValidConv", "--config", pairs_suite(tmp_path, True), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("pairs of settings"))
    assert "within the layer's own domain" in line
    covered, pairs = (int(n) for n in line.split(": ")[1].split(" covered")[0].split(" of "))
    assert covered == pairs > 100


def ran(cases) -> SuiteReport:
    """Reports of cases that ran (cover_domain reads only their geometry and whether they ran)."""
    return SuiteReport(tuple(
        CaseReport.build(name=c.name, geometry=c.geometry, implementation="reference", options=CheckOptions())
        for c in cases
    ))


def test_a_layer_that_runs_every_case_has_the_full_domain_and_nothing_added():
    # The pairs cases that ran hold every pair any layer has: nothing is enumerated or added.
    covered = cover_domain(ran(load_suite(STANDARD).cases), load_implementation("reference"), CheckOptions())
    full = len(required_pairs(FACTORS))
    assert covered.domain is not None and (covered.domain.pairs, covered.domain.covered, covered.domain.added) == (full, full, 0)


@pytest.mark.slow
def test_pairs_are_counted_from_the_cases_that_ran_not_assumed(tmp_path):
    # Two cases that ran, nothing skipped: far from every pair, so the domain's cases are added.
    suite = tmp_path / "two.toml"
    suite.write_text('domain_pairs = true\n[[case]]\nin = "3x8x8"\nkernels = "2x3x3x3"\n'
                     '[[case]]\nin = "4x7x6"\nkernels = "4x2x3x3"\ngroups = 2\nstride = 2\n')
    code, report = check("--config", str(suite))
    assert code == 0
    domain = report["domain_pairs"]
    assert domain["covered"] == domain["pairs"] == len(required_pairs(FACTORS)) and domain["added"] > 10


@pytest.mark.slow
def test_cases_the_layer_turns_down_at_run_time_are_left_out_and_counted(tmp_path):
    suite = tmp_path / "two.toml"  # a grouped case it turns down, a plain one it runs
    suite.write_text(
        'domain_pairs = true\n[[case]]\nin = "4x5x5"\nkernels = "4x2x3x3"\ngroups = 2\n'
        '[[case]]\nin = "3x5x5"\nkernels = "2x3x3x3"\n'
    )
    layer = tmp_path / "no_groups_at_run_time.py"
    layer.write_text(
        "from convgrad import Unsupported, reference\n"
        "def forward(x, w, b, **settings):\n"
        "    if settings['groups'] > 1:\n"
        "        raise Unsupported('groups are not implemented')\n"
        "    return reference.forward(x, w, b, **settings)\n"
        "def backward(dy, x, w, b, **settings):\n"
        "    return reference.backward(dy, x, w, b, **settings)\n"
    )
    code, report = check("--impl", str(layer), "--config", str(suite))
    assert code == 0
    domain = report["domain_pairs"]
    assert domain["refused"] > 0 and domain["covered"] <= domain["pairs"]
    assert not any(c["name"].startswith("domain ") and c["skipped"] for c in report["cases"])  # left out


def test_domain_cover_adds_only_cases_the_layer_accepts_and_covers_every_pair_it_has():
    implementation = load_implementation(f"{SAME_ONLY}:SameOrValidConv")
    accepts = lambda g: implementation.unsupported(g) is None  # noqa: E731
    cover = domain_cover(accepts, checked=[])
    assert cover.added and all(accepts(g) for g in cover.added)
    seen = {pair for g in cover.added for pair in pairs_of(levels_of(g), FACTORS)}
    assert cover.pairs <= seen
    # No dilation and no groups in the domain: the layer's keywords do not take them.
    assert all(level in ("1",) for factor, level, *_ in cover.pairs if factor in ("dilation", "groups"))


@pytest.mark.parametrize("value", ["yes", 1])
def test_domain_pairs_must_be_true_or_false(tmp_path, value):
    path = tmp_path / "bad.toml"
    path.write_text(f'domain_pairs = {json.dumps(value)}\nin = "3x5x5"\nkernels = "2x3x3x3"\n')
    result = CliRunner().invoke(cli, ["check", "--config", str(path)])
    assert result.exit_code == 2 and "domain_pairs at the top level must be true or false" in result.output


@pytest.mark.slow
def test_same_padding_with_a_rectangular_kernel_is_in_the_domain_and_catches_square_pads(tmp_path):
    # 'same' needs odd kernels: the domain holds 3x1 kernels as well as 3x2 ones for "rectangular".
    code, report = check("--impl", f"{SAME_ONLY}:SameOrValidSquarePads", "--config", pairs_suite(tmp_path, True))
    assert code == 1
    failing = [c for c in report["cases"] if c["status"] != "passed" and c["skipped"] is None]
    assert failing and all(c["name"].startswith("domain ") for c in failing)
    assert all(sorted(c["settings"]["kernels"][2:]) == [1, 3] for c in failing)
