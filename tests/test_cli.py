"""The command line: table, JSON, exit codes and one-line errors."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from convgrad.cli import cli
from zoo import spec

SEED = ["check", "--in", "3x20x20", "--kernels", "5x3x3x3"]


def run(args: list[str], **env: str):
    return CliRunner().invoke(cli, args, env={"COLUMNS": "80", **env})


def test_seed_check_prints_the_table_and_passes():
    result = run(SEED)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if "expected" in line)
    for column in ("tensor", "expected", "got", "abs err", "rel err", "tol", "checked", "status"):
        assert column in header
    rows = {line.split()[0]: line.split() for line in lines if line.split()[-1:] in (["PASS"], ["FAIL"])}
    assert rows["O"][1:3] == ["1x5x18x18", "1x5x18x18"]
    assert rows["dX"][1:3] == ["1x3x20x20", "1x3x20x20"]
    assert rows["dK"][1:3] == ["5x3x3x3", "5x3x3x3"]
    assert rows["db"][1:3] == ["5", "5"]
    assert all(row[-1] == "PASS" for row in rows.values())
    assert "seed 0" in result.output and "float64" in result.output and "step 0.5" in result.output
    assert "PASS: dX, dK and db match finite differences in all 1340 coordinates" in result.output
    assert "\x1b[" not in result.output  # no colour codes into a pipe


def test_json_report_is_complete():
    result = run([*SEED, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["passed"] is True
    (case,) = report["cases"]
    assert case["passed"] is True and case["elapsed_s"] > 0
    assert case["output_shape"] == [1, 5, 18, 18]
    assert case["settings"]["in"] == [3, 20, 20] and case["settings"]["kernels"] == [5, 3, 3, 3]
    assert (case["settings"]["method"], case["settings"]["samples"], case["settings"]["forward_check"]) == ("auto", None, True)
    tensors = {t["name"]: t for t in case["tensors"]}
    assert set(tensors) == {"O", "dX", "dK", "db"}
    for name, shape in (("dX", [1, 3, 20, 20]), ("dK", [5, 3, 3, 3]), ("db", [5])):
        t = tensors[name]
        assert t["shape"] == t["expected_shape"] == shape
        assert t["checked"] == t["total"]
        assert t["passed"] is True and t["max_rel_error"] < 1e-7
        assert t["tolerance"] == 1e-8 and len(t["worst_index"]) == len(shape)
        assert t["reason"] is None and t["note"] is None and t["location"] is None
        for key in ("max_abs_error", "method", "forward_calls", "step"):
            assert key in t


def test_json_reports_a_failure_with_reason_and_exit_1():
    result = run([*SEED, "--json", "--batch", "2", "--impl", spec("BiasAveragedOverBatch")])
    assert result.exit_code == 1, result.output
    case = json.loads(result.output)["cases"][0]
    db = next(t for t in case["tensors"] if t["name"] == "db")
    assert db["passed"] is False and "coordinates differ" in db["reason"]
    assert json.loads(result.output)["passed"] is False


def test_failing_table_shows_worst_index_with_both_values():
    result = run([*SEED, "--impl", spec("BiasOncePerKernelElement")])
    assert result.exit_code == 1
    assert "db: 5 of 5 coordinates differ" in result.output
    assert "analytical" in result.output and "numerical" in result.output
    assert "FAIL: db does not match" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--in", "3x20x20", "--kernels", "5x4x3x3"], "kernels expect 4 input channels but --in has 3; use --kernels 5x3x3x3"),
        (["--in", "3x20", "--kernels", "5x3x3x3"], "--kernels 5x3x3x3 has 4 sizes but --in 3x20 is 1-D"),
        (["--in", "3", "--kernels", "5x3x3x3"], "--in 3 has 1 sizes; give channels then 1 to 3 spatial sizes"),
        (["--in", "6x8x8", "--kernels", "4x2x3x3", "--groups", "4"], "--groups 4 does not divide the 6 input channels C"),
        (["--in", "3x0x20", "--kernels", "5x3x3x3"], "every size must be a positive whole number"),
        (["--in", "3x20x20", "--kernels", "5x3x3x3", "--stride", "0"], "--stride 0 has 0; each value must be 1 or more"),
        (["--in", "3x20x20", "--kernels", "5x3x3x3", "--padding", "-1"], "--padding -1 has -1; each value must be zero or more"),
        (["--in", "3x20x20", "--kernels", "5x3x3x3", "--dilation", "2x2x2"], "--dilation 2x2x2 has 3 values but the input has 2"),
        (["--in", "3x4x4", "--kernels", "5x3x5x5"], "larger than the padded input along H"),
        (["--in", "3x4x4", "--kernels", "5x3x3x3", "--dilation", "2"], "dilated kernel (3 with dilation 2 spans 5)"),
        (["--in", "3x20x20", "--kernels", "5x3x4x4", "--padding", "same"], "cannot be split evenly"),
        (["--in", "3x20x20", "--kernels", "5x3x3x3", "--batch", "0"], "batch size must be a whole number of 1 or more"),
        (["--in", "3xax20", "--kernels", "5x3x3x3"], "'a' is not a whole number"),
        (["--in", "512x4000x4000", "--kernels", "512x512x3x3"], "use a smaller --in, --batch or --kernels"),
        (["--in", "3x20x20", "--kernels", "5x3x3x3", "--dtype", "float16"], "'float16' is not one of"),
        (["--in", "3x20x20", "--kernels", "5x3x3x3", "--rtol", "nan"], "--rtol nan must be a finite number"),
        (["--in", "3x20x20"], "Missing option '--kernels'"),
        (["--in", "3x20x20", "--kernels", "5x3x3x3", "--inn", "3"], "No such option"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message):
    result = run(["check", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert message in lines[0]


def test_separators_and_short_kernel_form():
    for args in (["--in", "3×20×20", "--kernels", "5×3×3"], ["--in", "3,20,20", "--kernels", "5,3,3,3"]):
        result = run(["check", *args, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["cases"][0]["settings"]["kernels"] == [5, 3, 3, 3]


def test_help_exists_with_examples():
    result = run(["check", "--help"])
    assert result.exit_code == 0
    assert "convgrad check --in 3x20x20 --kernels 5x3x3x3" in result.output
    assert run(["--help"]).exit_code == 0


def test_module_entry_point_runs():
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "convgrad", "check", "--in", "2x5", "--kernels", "2x2x3", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("PASS")


def test_quiet_still_says_why_a_check_failed():
    result = run([*SEED, "--quiet", "--impl", spec("BiasOncePerKernelElement")])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "FAIL: db does not match"
    assert lines[1].startswith("  db: 5 of 5 coordinates differ")


def test_a_layer_that_raises_gets_its_reason_as_the_verdict(tmp_path):
    layer = tmp_path / "raises.py"
    layer.write_text("def forward(x, w, b, **s):\n    raise RuntimeError('not yet')\n\n"
                     "def backward(dy, x, w, b, **s):\n    return x, w, b\n")
    result = run([*SEED, "--impl", str(layer), "--quiet"])
    assert result.exit_code == 1
    assert result.output.strip() == "ERROR (not checked): forward raised RuntimeError: not yet (at raises.py:2)"


WIDE_3D = ["--in", "6x10x10x10", "--kernels", "16x6x3x3x3", "--batch", "12", "--padding", "1",
           "--dtype", "float32", "--method", "sample", "--samples", "2", "--seed", "42"]


def _tokens(output: str) -> set[str]:
    return {token for line in output.splitlines() for token in line.split()}


@pytest.mark.parametrize("columns", ["80", "60"])
@pytest.mark.slow
def test_narrow_tables_never_split_a_shape_or_a_header_field(columns):
    result = run(["check", *WIDE_3D], COLUMNS=columns)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line) <= int(columns) for line in lines)
    assert {"12x16x10x10x10", "12x6x10x10x10", "16x6x3x3x3", "6x10x10x10"} <= _tokens(result.output)
    # Header lines break between fields: no line ends inside "rtol 0.001 of each tensor's scale".
    header_lines = lines[:next(i for i, line in enumerate(lines) if not line.strip())]
    header = " / ".join(header_lines)
    assert "rtol 0.001 of each tensor's scale" in header and "seed 42" in header
    assert not any(line.rstrip().endswith(("rtol", "of", "each", "padding", "stride")) for line in header_lines)
    table_header = next(line for line in lines if "status" in line)
    # got (equal to expected here) goes before bits, so one shape column is left
    assert table_header.split()[:2] == ["tensor", "shape"]
    assert ("bits" in table_header.split()) == (columns == "80")
    assert "rel err" in table_header  # the judged error stays; tol is in the header line above


def test_a_wrong_shape_keeps_its_got_column_at_any_width():
    layer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zoo", "dx_depth_f.py")
    result = run(["check", "--impl", layer, "--in", "3x6x7", "--kernels", "4x3x3x3"], COLUMNS="50")
    assert result.exit_code == 1
    header = next(line for line in result.output.splitlines() if line.split()[:1] == ["tensor"])
    assert "got" in header.split()


def test_suite_summary_wraps_geometry_between_fields_at_60_columns(tmp_path):
    suite = tmp_path / "long.toml"
    suite.write_text('[[case]]\nname = "a rather long case name for a 3-D layer"\nin = "4x6x7x8"\n'
                     'kernels = "6x2x3x2x3"\nstride = "2x1x1"\npadding = "1x0x1"\ndilation = "1x2x1"\n'
                     'groups = 2\nbatch = 3\n')
    result = run(["check", "--config", str(suite), "--verbose"], COLUMNS="60")
    assert result.exit_code == 0, result.output
    assert {"N3", "4x6x7x8", "6x2x3x2x3", "s2x1x1", "p1x0x1", "d1x2x1", "g2", "PASS"} <= _tokens(result.output)
    assert "…" not in result.output and all(len(line) <= 60 for line in result.output.splitlines())
