"""The standard suite against a zoo of broken layers (each must fail, naming the right tensor)
and against correct layers written in other conventions (each must pass)."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from checking import skipped_for_uneven_padding

from convgrad.cli import cli
from convgrad.suite import load_suite
from zoo import FOLDER as ZOO

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDARD = os.path.join(ROOT, "configs", "standard.toml")
SUITE = load_suite(STANDARD)
IMPLEMENTATIONS = os.path.join(ROOT, "tests", "implementations")


def line_of(text: str) -> int:
    """The line of tests/zoo/layers.py that holds `text`: a reason names where a layer raised."""
    with open(os.path.join(ZOO, "layers.py"), encoding="utf-8") as source:
        return next(number for number, line in enumerate(source, 1) if text in line)


# file -> (the tensors that fail in at least one case, a phrase of that case's reason)
BROKEN = {
    "kernels_not_rotated.py": ({"dX"}, None),
    "kernels_not_swapped.py": ({"dX"}, None),
    "dx_depth_f.py": ({"dX"}, "backward returned shape 2x4x6x4 for dX, expected 2x2x6x4"),
    "stride_ignored_in_dx.py": ({"dX"}, None),
    "stride_ignored_in_dk.py": ({"dK"}, None),
    "padding_cropped_one_off.py": ({"dX"}, None),
    "dilation_ignored_in_backward.py": ({"dX", "dK"}, None),
    "groups_mixed.py": ({"dX"}, None),
    "bias_gradient_wrong_axes.py": ({"db"}, None),
    "batch_averaged.py": ({"dK", "db"}, None),
    "one_element_slightly_off.py": ({"dK"}, "1 of 48 coordinates differ"),
    "nan_where_no_window_reaches.py": ({"dX"}, "backward returned NaN in dX"),
    "clips_dy_in_place.py": ({"dX", "dK", "db"}, "backward modified its input dy in place"),
    "true_convolution_forward.py": ({"O"}, None),
    "raises_when_stride_does_not_tile.py": (
        {"O", "dX", "dK", "db"},
        f"forward raised AssertionError: height does not tile (at layers.py:{line_of('does not tile')})",
    ),
}


# The mistakes that make a layer uncheckable in some cases: it raises, or returns the wrong shape
# (unswapped kernels where C != F, the padding cropped past the edge), elsewhere wrong numbers.
NOT_CHECKABLE = {
    "raises_when_stride_does_not_tile.py": {"error"},
    "dx_depth_f.py": {"error", "failed"},
    "kernels_not_swapped.py": {"error", "failed"},
    "padding_cropped_one_off.py": {"error", "failed"},
}


def run(args: list[str]):
    return CliRunner().invoke(cli, args, env={"COLUMNS": "100"})


def failing_names(case: dict) -> set[str]:
    return {t["name"] for t in case["tensors"] if not t["passed"]}


def reasons(case: dict) -> str:
    return " ".join([case["reason"] or ""] + [t["reason"] or "" for t in case["tensors"]])


def test_the_zoo_has_at_least_twelve_mistakes():
    assert len(BROKEN) >= 12
    assert set(BROKEN) <= set(os.listdir(ZOO))


@pytest.mark.parametrize("filename", sorted(BROKEN))
@pytest.mark.slow
def test_standard_suite_catches_each_mistake_and_names_the_tensor(filename):
    expected, phrase = BROKEN[filename]
    # The first failing case is enough for a gate: --fail-fast starts no case after it; the layers
    # that fail in more than one way, or first in a way other than their own, run every case.
    every_case = len(NOT_CHECKABLE.get(filename, ())) > 1 or filename == "dilation_ignored_in_backward.py"
    fail_fast = [] if every_case else ["--fail-fast"]
    result = run(["check", "--impl", os.path.join(ZOO, filename), "--config", STANDARD, "--json", *fail_fast])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["passed"] is False and report["summary"]["failed"] + report["summary"]["error"] >= 1
    failed = [c for c in report["cases"] if not c["passed"] and c["skipped"] is None]
    named = [c for c in failed if failing_names(c) == expected]
    assert named, [(c["name"], failing_names(c)) for c in failed]
    # A layer that raises or returns the wrong shape could not be checked; NaN, an input written
    # into and wrong numbers are failures.
    statuses = {c["status"] for c in named}
    assert statuses == NOT_CHECKABLE.get(filename, {"failed"}), [(c["name"], c["status"]) for c in named]
    if phrase is not None:
        assert any(phrase in reasons(c) for c in named), [reasons(c) for c in named]
    # 2-D-only layers skip the 1-D and 3-D cases instead of failing them
    skipped = {c["name"] for c in report["cases"] if c["skipped"] is not None}
    not_2d = {case.name for case in SUITE.cases if case.geometry.ndim != 2}
    not_2d |= {c["name"] for c in report["cases"] if skipped_for_uneven_padding(c)}  # and the uneven one
    assert skipped == not_2d if every_case else skipped <= not_2d


def _two_d_only(geometry):
    return geometry.ndim != 2


def _course_style(geometry):
    """conv_param holds one stride and one pad for both axes, and no dilation or groups."""
    return (geometry.ndim != 2 or geometry.groups != 1 or any(d != 1 for d in geometry.dilation)
            or len(set(geometry.stride)) > 1 or len(set(geometry.padding)) > 1)


@pytest.mark.parametrize(
    "impl, extra, cannot",
    [
        ("reference", [], lambda geometry: False),
        (os.path.join(ZOO, "student_conv.py"), [], _two_d_only),
        (os.path.join(IMPLEMENTATIONS, "cache_style.py"), [], _course_style),
        (os.path.join(IMPLEMENTATIONS, "channels_last.py"), ["--layout", "nhwc", "--weight-layout", "hwio"], _two_d_only),
    ],
    ids=["reference", "student", "cache-style", "channels-last"],
)
@pytest.mark.slow
def test_correct_implementations_pass_the_standard_suite(impl, extra, cannot):
    result = run(["check", "--impl", impl, "--config", STANDARD, "--json", *extra])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    uneven = {case["name"] for case in report["cases"] if skipped_for_uneven_padding(case)}
    skipped = len({case.name for case in SUITE.cases if cannot(case.geometry)} | uneven)
    assert report["summary"] == {"passed": len(SUITE.cases) - skipped, "failed": 0, "error": 0, "skipped": skipped, "lost precision": 0, "not checked": 0}
    assert_one_sided_everywhere(report)


def assert_one_sided_everywhere(report):
    """A correct layer is affine in x, w and b: no false alarm with one-sided differences, and no
    tensor of any case falls back to central ones. (A tensor whose one-sided differences would save
    no more calls than the linearity test costs, db's one colour or a tensor of two coordinates, is
    differenced central from the start.)"""
    tensors = [t for case in report["cases"] for t in case["tensors"] if t["name"] != "O"]
    for t in tensors:
        assert "not linear" not in (t.get("note") or ""), t
    assert any(t["method"].endswith(", one-sided") for t in tensors)


@pytest.mark.slow
def test_torch_builtin_passes_the_standard_suite():
    pytest.importorskip("torch")
    result = run(["check", "--impl", "torch", "--config", STANDARD, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["summary"] == {"passed": len(SUITE.cases), "failed": 0, "error": 0, "skipped": 0, "lost precision": 0, "not checked": 0}
    assert_one_sided_everywhere(json.loads(result.output))


@pytest.mark.slow
def test_jax_builtin_passes_in_1d_2d_and_3d(tmp_path):
    pytest.importorskip("jax")
    config = tmp_path / "small.toml"
    config.write_text(
        '[[case]]\nin = "2x7"\nkernels = "4x1x3"\ngroups = 2\nstride = 2\n'
        '[[case]]\nin = "2x5x6"\nkernels = "3x2x3x2"\nbatch = 2\npadding = 1\ndilation = "1x2"\n'
        '[[case]]\nin = "1x3x4x3"\nkernels = "2x1x2x2x2"\n'
    )
    result = run(["check", "--impl", "jax", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["summary"] == {"passed": 3, "failed": 0, "error": 0, "skipped": 0, "lost precision": 0, "not checked": 0}
    assert_one_sided_everywhere(json.loads(result.output))


def test_no_forward_check_lets_a_layer_that_means_to_differ_pass():
    impl = os.path.join(ZOO, "true_convolution_forward.py")
    result = run(["check", "--impl", impl, "--in", "2x6x7", "--kernels", "3x2x3x3", "--no-forward-check", "--json"])
    assert result.exit_code == 0, result.output
    names = [t["name"] for t in json.loads(result.output)["cases"][0]["tensors"]]
    assert names == ["dX", "dK", "db"]
    table = run(["check", "--impl", impl, "--in", "2x6x7", "--kernels", "3x2x3x3", "--no-forward-check"])
    assert "O not compared (--no-forward-check)" in table.output
