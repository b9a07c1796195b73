"""--config suites (format and refusals) and multi-case reports: summary, --quiet, JSON, JUnit."""

from __future__ import annotations

import json
import re
import os
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from conftest import assert_bad_input
from convgrad.cli import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDARD = os.path.join(ROOT, "configs", "standard.toml")
SEED = os.path.join(ROOT, "configs", "seed.toml")
NOT_ROTATED = os.path.join(ROOT, "tests", "zoo", "kernels_not_rotated.py")
IN_PLACE = os.path.join(ROOT, "tests", "zoo", "clips_dy_in_place.py")


def run(args: list[str]):
    return CliRunner().invoke(cli, ["check", *args], env={"COLUMNS": "100"})


def config(tmp_path, text: str) -> str:
    path = tmp_path / "suite.toml"
    path.write_text(text)
    return str(path)


def test_seed_config_runs_the_seed_case():
    result = run(["--config", SEED, "--json"])
    assert result.exit_code == 0, result.output
    (case,) = json.loads(result.output)["cases"]
    assert case["name"] == "seed" and case["settings"]["kernels"] == [5, 3, 3, 3]


def test_defaults_apply_to_every_case_and_cases_override_them(tmp_path):
    path = config(
        tmp_path,
        'dtype = "float32"\nbatch = 2\n'
        '[[case]]\nin = "2x5x5"\nkernels = [3, 2, 3, 3]\n'
        '[[case]]\nname = "wide"\nin = [2, 4, 9]\nkernels = "2x2x3"\nbatch = 1\nstride = "1x2"\npadding = "1x0"\n',
    )
    result = run(["--config", path, "--json"])
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.output)["cases"]
    assert first["name"] == "case 1: N2 2x5x5 * 3x2x3x3 float32"
    assert first["settings"]["dtype"] == "float32" and first["settings"]["batch"] == 2
    assert second["name"] == "wide" and second["settings"]["batch"] == 1
    assert second["settings"]["stride"] == [1, 2] and second["settings"]["kernels"] == [2, 2, 2, 3]


def test_a_file_of_top_level_settings_alone_is_one_case(tmp_path):
    result = run(["--config", config(tmp_path, 'in = "2x5x5"\nkernels = "2x2x3x3"\n'), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["cases"]) == 1


@pytest.mark.parametrize(
    "text, message",
    [
        ('in = "2x5x5"\nkernels = "2x2x3x3"\nstrides = 2\n', "unknown key 'strides' at the top level; did you mean 'stride'?"),
        ('[[case]]\nin = "2x5x5"\nkernels = "2x2x3x3"\ndilaton = 2\n', "unknown key 'dilaton' in case 1; did you mean 'dilation'?"),
        ('[[cases]]\nin = "2x5x5"\n', "unknown key 'cases' at the top level; did you mean 'case'?"),
        ('[[case]]\nin = "2x5x5"\nkernels = "2x2x3x3"\nstride = true\n', "stride = true in case 1 is not a valid stride; give e.g. stride = 2 or \"2x1\""),
        ('[[case]]\nin = "2x5x5"\nkernels = "2x2x3x3"\ndtype = "float16"\n', "dtype = \"float16\" in case 1 is not supported; did you mean 'float64'? use float64 or float32"),
        ('[[case]]\nin = "2x5x5"\nkernels = "2x2x3x3"\nbatch = 1.5\n', "batch = 1.5 in case 1 is not a valid batch"),
        ('[[case]]\nname = "a"\nkernels = "2x2x3x3"\n', "no 'in' in case 1 ('a'); set in = \"3x20x20\" in the case or at the top level"),
        ('[[case]]\nin = "2x5x5"\n', "no 'kernels' in case 1; set kernels = \"5x3x3x3\""),
        ('[[case]]\nin = "2x5x5"\nkernels = "2x3x3x3"\n', "in case 1: kernels expect 3 input channels but in has 2; use kernels = \"2x2x3x3\""),
        ('[[case]]\nin = "2x5x5"\nkernels = "2x2x3x3"\nstride = 0\n', "in case 1: stride = 0 has 0"),
        ('[[case]\nin = "2x5x5"\n', "is not valid TOML: "),
        ('case = 3\n', "'case' must be a list of [[case]] tables"),
    ],
    ids=[
        "unknown-top", "unknown-case", "unknown-table", "bool", "dtype", "float-batch", "no-in", "no-kernels",
        "geometry", "stride-zero", "toml-syntax", "case-not-tables",
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path, text, message):
    assert_bad_input(run(["--config", config(tmp_path, text)]), message)


def test_missing_config_file(tmp_path):
    assert_bad_input(run(["--config", str(tmp_path / "none.toml")]), "none.toml' does not exist")


def test_suite_file_errors_speak_the_files_words_to_python_callers(tmp_path):
    from convgrad.errors import ConfigError
    from convgrad.suite import load_suite

    with pytest.raises(ConfigError, match=r"none.toml: no such file; check the path"):
        load_suite(str(tmp_path / "none.toml"))
    with pytest.raises(ConfigError, match=r"is a folder; give a suite file"):
        load_suite(str(tmp_path))
    path = tmp_path / "suite.toml"
    path.write_text('[[case]]\nin = "2x5x5"\nkernels = "2x2x3x3"\npadding = "0,1x0,1x0,1"\nstride = 2\n')
    with pytest.raises(ConfigError) as info:
        load_suite(str(path))
    message = str(info.value)
    assert 'padding = "0,1x0,1x0,1" has 3 axes but the input has 2 spatial axes; give one or 2 like padding = "0,1x0,1"' in message
    assert "--" not in message and "padding=" not in message


def test_geometry_flags_are_refused_beside_a_config():
    assert_bad_input(
        run(["--config", SEED, "--stride", "2"]),
        "--stride cannot be combined with --config: the suite file sets the geometry of every case; put stride = ... in the file instead",
    )


def test_geometry_flags_are_still_required_without_a_config():
    assert_bad_input(run(["--kernels", "5x3x3x3"]), "Missing option '--in'")


@pytest.mark.slow
def test_a_failing_suite_shows_each_way_of_failing_once_then_the_cases_grouped_by_cause():
    result = run(["--impl", NOT_ROTATED, "--config", STANDARD])
    assert result.exit_code == 1
    tables = re.compile(r"^ tensor +expected +got", re.MULTILINE)
    groups = [line for line in result.stdout.splitlines() if re.match(r"(FAIL|ERROR|SKIP|PASS) +\d+ cases? ", line)]
    failing = [line for line in groups if line.startswith(("FAIL", "ERROR"))]
    assert len(tables.findall(result.stdout)) == len(failing) >= 1  # the first case of each way of failing
    assert failing[0].startswith("FAIL 28 cases dX: looks like the kernels were not rotated 180°")
    assert "(basic 1 in full above)" in result.stdout and "FAIL: dX does not match" in result.stdout
    assert len(result.stdout.splitlines()) <= 120 and "\x1b[" not in result.stdout
    assert "FAIL: 28 of 51 cases failed, 15 passed, 8 skipped" in result.stdout


SMALL_SUITE = """
[[case]]
name = "strided"
in = "3x7x7"
kernels = "4x3x3x3"
stride = 2

[[case]]
name = "one by one"
in = "3x5x5"
kernels = "4x3x1x1"

[[case]]
name = "also strided"
in = "2x6x6"
kernels = "3x2x2x2"
stride = 2
"""


def test_verbose_prints_every_case_and_the_table_and_quiet_only_the_groups(tmp_path):
    suite = tmp_path / "small.toml"
    suite.write_text(SMALL_SUITE)
    verbose, quiet = (run(["--impl", NOT_ROTATED, "--config", str(suite), flag]) for flag in ("--verbose", "--quiet"))
    assert verbose.exit_code == quiet.exit_code == 1
    # --verbose: every case in full, then the table of every case
    assert len(re.findall(r"^ tensor +expected +got", verbose.stdout, re.MULTILINE)) == 3
    rows = [line for line in verbose.stdout.splitlines() if line.startswith(" one by one ")]
    assert rows and "x1x1" in rows[0] and "PASS" in rows[0].split()  # 1x1 kernels need no rotation
    # --quiet: one row per way the cases ended, the cases named
    assert "expected  got" not in quiet.stdout
    assert " ".join(quiet.stdout.split()).startswith(
        "FAIL 2 cases dX: looks like the kernels were not rotated 180° strided; also strided PASS 1 case one by one"
    )
    for result in (verbose, quiet):
        assert "FAIL: 2 of 3 cases failed, 1 passed" in result.stdout


@pytest.mark.slow
def test_json_covers_every_case():
    result = run(["--impl", NOT_ROTATED, "--config", STANDARD, "--json"])
    report = json.loads(result.output)
    assert len(report["cases"]) == 51 and report["passed"] is False
    assert report["summary"] == {"passed": 15, "failed": 28, "error": 0, "skipped": 8, "lost precision": 0, "not checked": 0}  # the uneven case among them
    names = [c["name"] for c in report["cases"]]
    assert len(set(names)) == 51
    skipped = [c for c in report["cases"] if c["skipped"] is not None]
    assert all(c["passed"] is False and c["tensors"] == [] for c in skipped)


@pytest.mark.slow
def test_junit_has_one_testcase_per_case_with_reasons(tmp_path):
    path = tmp_path / "report.xml"
    result = run(["--impl", IN_PLACE, "--config", STANDARD, "--junit", str(path), "--quiet"])
    assert result.exit_code == 1
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites" and root.get("tests") == "51"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "standard"
    assert (suite.get("failures"), suite.get("skipped"), suite.get("errors")) == ("43", "8", "0")
    cases = suite.findall("testcase")
    assert len(cases) == 51
    by_name = {c.get("name"): c for c in cases}
    failure = by_name["basic 1"].find("failure")  # writing into an input is a failure, not an error
    assert failure.get("message").startswith("backward modified its input dy in place")
    assert "N=2  X 2x6x4" in failure.text
    assert by_name["3-D"].find("skipped").get("message").endswith("handles 2-D layers only (spatial_dims) and this case is 3-D")
    assert all(float(c.get("time")) >= 0 for c in cases)


def test_junit_for_a_passing_single_case(tmp_path):
    path = tmp_path / "ok.xml"
    result = run(["--in", "2x5x5", "--kernels", "2x2x3x3", "--junit", str(path), "--quiet"])
    assert result.exit_code == 0, result.output
    (case,) = ET.parse(path).getroot().iter("testcase")
    assert list(case) == [] and case.get("classname") == "convgrad.reference"


def test_junit_into_a_missing_folder_is_refused_before_checking(tmp_path):
    result = run(["--config", SEED, "--junit", str(tmp_path / "no" / "r.xml")])
    assert_bad_input(result, "'--junit': the folder")
    assert "does not exist; create it or write elsewhere" in result.output


def test_junit_class_names_are_dotted_names_not_paths(tmp_path):
    import xml.etree.ElementTree as ET

    report = tmp_path / "report.xml"
    impl = "tests/zoo/student_conv.py"
    result = run(["--impl", impl, "--in", "3x6x6", "--kernels", "2x3x3x3", "--junit", str(report)])
    assert result.exit_code == 0, result.output
    (testcase,) = ET.parse(report).getroot().iter("testcase")
    assert testcase.get("classname") == "convgrad.student_conv"


def test_fail_fast_starts_no_case_after_the_first_failure_and_counts_the_rest():
    from convgrad.suite import load_suite

    result = run(["--impl", NOT_ROTATED, "--config", STANDARD, "--json", "--fail-fast", "--jobs", "1"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    ran = report["cases"]
    assert [c["status"] for c in ran][-1] == "failed" and all(c["status"] != "failed" for c in ran[:-1])
    assert report["not_run"] == len(load_suite(STANDARD).cases) - len(ran) > 0
    assert report["domain_pairs"] is None  # the gate has its answer: nothing is added
    quiet = run(["--impl", NOT_ROTATED, "--config", STANDARD, "--quiet", "--fail-fast", "--jobs", "1"])
    assert f"stopped at the first failure (--fail-fast): {report['not_run']} more not run" in quiet.output


def test_two_cases_of_one_name_and_quiet_with_verbose_are_bad_input(tmp_path):
    suite = tmp_path / "twice.toml"
    suite.write_text('[[case]]\nname = "a"\nin = "3x5x5"\nkernels = "2x3x3x3"\n\n'
                     '[[case]]\nname = "a"\nin = "3x6x6"\nkernels = "2x3x3x3"\n')
    twice = run(["--config", str(suite)])
    (tmp_path / "seed.toml").write_text('[[case]]\nname = "a"\nin = "3x5x5"\nkernels = "2x3x3x3"\n')
    assert twice.exit_code == 2 and "case 2 is named 'a' like case 1; give each case its own name" in twice.output
    both = run(["--config", str(suite).replace("twice.toml", "seed.toml"), "--quiet", "--verbose"])
    assert both.exit_code == 2 and "--quiet and --verbose" in both.output
    assert all(len(r.output.strip().splitlines()) == 1 for r in (twice, both))
