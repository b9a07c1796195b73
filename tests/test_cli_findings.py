"""Where and why in the CLI's table and JSON, and --svg on check."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree

from click.testing import CliRunner

from convgrad.cli import cli
from zoo import spec

SEED = ["check", "--in", "3x20x20", "--kernels", "5x3x3x3"]
BIAS_AVERAGED_OVER_BATCH = ["--impl", spec("BiasAveragedOverBatch")]
KERNELS_NOT_ROTATED = ["--impl", spec("KernelsNotRotated")]


def run(args: list[str]):
    return CliRunner().invoke(cli, args, env={"COLUMNS": "80"})


def test_table_says_where_and_why_below_the_failing_tensor():
    result = run([*SEED, *BIAS_AVERAGED_OVER_BATCH, "--batch", "2"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "where: 5 of 5 coordinates (100.0%) in all 5 kernels" in text
    assert "why: db is 1/2 of the numerical gradient everywhere: 1/N = 1/2, an average over the batch" in text


def test_table_draws_the_heatmap_for_dx():
    result = run([*SEED, *KERNELS_NOT_ROTATED])
    assert result.exit_code == 1, result.output
    assert "why: dX matches the numerical gradient once the kernels are rotated 180°" in " ".join(result.output.split())
    assert "error map of dX[n=0, c=" in result.output and "█" in result.output
    assert all(len(line) <= 80 for line in result.output.splitlines())


def test_json_has_diagnosis_and_location():
    result = run([*SEED, *BIAS_AVERAGED_OVER_BATCH, "--batch", "2", "--json"])
    assert result.exit_code == 1, result.output
    case = json.loads(result.output)["cases"][0]
    assert case["diagnosis"] == [{
        "tensor": "db", "kind": "constant_factor",
        "message": case["diagnosis"][0]["message"],
        "short": "db is 1/2 of the right values everywhere (an average over the batch)",
    }]
    assert "1/N = 1/2" in case["diagnosis"][0]["message"]
    tensors = {t["name"]: t for t in case["tensors"]}
    location = tensors["db"]["location"]
    assert (location["wrong"], location["checked"], location["fraction"]) == (5, 5, 1.0)
    assert location["index_label"] == "kernels" and location["indices"] == [0, 1, 2, 3, 4]
    assert location["region"] is None and location["stride_phases"] is None
    assert tensors["dX"]["location"] is None


def test_json_dx_location_has_border_and_interior():
    case = json.loads(run([*SEED, *KERNELS_NOT_ROTATED, "--json"]).output)["cases"][0]
    location = next(t for t in case["tensors"] if t["name"] == "dX")["location"]
    assert location["index_label"] == "channels" and location["indices"] == [0, 1, 2]
    assert location["region"] == "both"
    assert location["border_reach"] == [2, 2]
    assert location["border_wrong"] + location["interior_wrong"] == location["wrong"]
    assert location["border_total"] + location["interior_total"] == 1200


def test_a_passing_check_has_an_empty_diagnosis_list():
    case = json.loads(run([*SEED, "--json"]).output)["cases"][0]
    assert case["diagnosis"] == [] and all(t["location"] is None for t in case["tensors"])


def test_svg_saves_the_printed_report(tmp_path):
    picture = tmp_path / "report.svg"
    result = run([*SEED, *KERNELS_NOT_ROTATED, "--svg", str(picture)])
    assert result.exit_code == 1
    root = ElementTree.parse(picture).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    saved = picture.read_text().replace("&#160;", " ")
    assert "error" in saved and "map" in saved and "dX" in saved


def test_svg_with_json_keeps_stdout_pure_json(tmp_path):
    picture = tmp_path / "report.svg"
    result = run([*SEED, "--json", "--svg", str(picture)])
    assert result.exit_code == 0
    assert json.loads(result.output)["passed"] is True
    ElementTree.parse(picture)


def test_svg_to_an_unwritable_place_is_one_line_exit_2(tmp_path):
    result = run([*SEED, "--svg", str(tmp_path / "missing" / "report.svg")])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
