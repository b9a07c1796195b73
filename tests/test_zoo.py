"""The standard suite against a zoo of broken layers (each must fail, naming the right tensor)
and against correct layers written in other conventions (each must pass)."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from convgrad.cli import cli
from zoo import FOLDER as ZOO

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDARD = os.path.join(ROOT, "configs", "standard.toml")
IMPLEMENTATIONS = os.path.join(ROOT, "tests", "implementations")


def line_of(text: str) -> int:
    """The line of tests/zoo/layers.py that holds `text`: a reason names where a layer raised."""
    with open(os.path.join(ZOO, "layers.py"), encoding="utf-8") as source:
        return next(number for number, line in enumerate(source, 1) if text in line)


# file -> (the tensors that fail in at least one case, a phrase of that case's reason)
BROKEN = {
    "kernels_not_rotated.py": ({"dX"}, None),
    "kernels_not_swapped.py": ({"dX"}, None),
    "dx_depth_f.py": ({"dX"}, "backward returned shape 1x4x6x7 for dX, expected 1x3x6x7"),
    "stride_ignored_in_dx.py": ({"dX"}, None),
    "stride_ignored_in_dk.py": ({"dK"}, None),
    "padding_cropped_one_off.py": ({"dX"}, None),
    "dilation_ignored_in_backward.py": ({"dX", "dK"}, None),
    "groups_mixed.py": ({"dX"}, None),
    "bias_gradient_wrong_axes.py": ({"db"}, None),
    "batch_averaged.py": ({"dK", "db"}, None),
    "one_element_slightly_off.py": ({"dK"}, "1 of 108 coordinates differ"),
    "nan_where_no_window_reaches.py": ({"dX"}, "backward returned NaN in dX"),
    "clips_dy_in_place.py": ({"dX", "dK", "db"}, "backward modified its input dy in place"),
    "true_convolution_forward.py": ({"O"}, None),
    "raises_when_stride_does_not_tile.py": (
        {"O", "dX", "dK", "db"},
        f"forward raised AssertionError: width does not tile (at layers.py:{line_of('does not tile')})",
    ),
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
def test_standard_suite_catches_each_mistake_and_names_the_tensor(filename):
    expected, phrase = BROKEN[filename]
    result = run(["check", "--impl", os.path.join(ZOO, filename), "--config", STANDARD, "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert report["passed"] is False and report["summary"]["failed"] >= 1
    failed = [c for c in report["cases"] if not c["passed"] and c["skipped"] is None]
    named = [c for c in failed if failing_names(c) == expected]
    assert named, [(c["name"], failing_names(c)) for c in failed]
    if phrase is not None:
        assert any(phrase in reasons(c) for c in named), [reasons(c) for c in named]
    # 2-D-only layers skip the 1-D and 3-D cases instead of failing them
    skipped = {c["name"] for c in report["cases"] if c["skipped"] is not None}
    assert skipped == {"1-D", "3-D"}


@pytest.mark.parametrize(
    "impl, extra, skipped",
    [
        ("reference", [], 0),
        (os.path.join(ZOO, "student_conv.py"), [], 2),
        (os.path.join(IMPLEMENTATIONS, "cache_style.py"), [], 6),  # no dilation, groups, per-axis stride, 1-D, 3-D
        (os.path.join(IMPLEMENTATIONS, "channels_last.py"), ["--layout", "nhwc", "--weight-layout", "hwio"], 2),
    ],
    ids=["reference", "student", "cache-style", "channels-last"],
)
def test_correct_implementations_pass_the_standard_suite(impl, extra, skipped):
    result = run(["check", "--impl", impl, "--config", STANDARD, "--json", *extra])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["summary"] == {"passed": 14 - skipped, "failed": 0, "skipped": skipped}


def test_torch_builtin_passes_the_standard_suite():
    pytest.importorskip("torch")
    result = run(["check", "--impl", "torch", "--config", STANDARD, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["summary"] == {"passed": 14, "failed": 0, "skipped": 0}


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
    assert json.loads(result.output)["summary"] == {"passed": 3, "failed": 0, "skipped": 0}


def test_no_forward_check_lets_a_layer_that_means_to_differ_pass():
    impl = os.path.join(ZOO, "true_convolution_forward.py")
    result = run(["check", "--impl", impl, "--in", "2x6x7", "--kernels", "3x2x3x3", "--no-forward-check", "--json"])
    assert result.exit_code == 0, result.output
    names = [t["name"] for t in json.loads(result.output)["cases"][0]["tensors"]]
    assert names == ["dX", "dK", "db"]
    table = run(["check", "--impl", impl, "--in", "2x6x7", "--kernels", "3x2x3x3", "--no-forward-check"])
    assert "O not compared (--no-forward-check)" in table.output
