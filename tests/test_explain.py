"""`convgrad explain`: the derivation with the layer's own shapes, proved by finite differences."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree

import pytest
from click.testing import CliRunner

from convgrad.cli import cli
from convgrad.explain import explain
from convgrad.geometry import resolve_geometry

SEED = ["--in", "3x20x20", "--kernels", "5x3x3x3"]


def run(args: list[str]):
    return CliRunner().invoke(cli, args, env={"COLUMNS": "80"})


def _steps(output: str) -> list[str]:
    """The numbered dX steps as 'text shape', each step's wrapped lines joined."""
    steps: list[list[str]] = []
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("dX: a full convolution"))
    for line in lines[start + 1:]:
        if re.match(r"\s+\d+\. ", line):
            *words, shape = line.split()
            steps.append([" ".join(words[1:]), shape])
        elif line.startswith("    ") and steps:
            steps[-1][0] += " " + " ".join(line.split())
        else:
            break
    return [f"{text} {shape}" for text, shape in steps]


def _largest_error(output: str) -> float:
    match = re.search(r"HOLDS: every error is below 1e-09 \(largest ([0-9.e+-]+)\)", output)
    assert match, output
    return float(match.group(1))


def test_seed_explanation_shows_every_shape_of_the_question_and_proves_it():
    result = run(["explain", *SEED])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # wrapped lines joined
    for shown in ("O 1x5x18x18", "dX[n,c] = Σ_f full_conv(dO[n,f], rot180(K[f,c]))", "db 5", "dK 5x3x3x3"):
        assert shown in text, shown
    assert _steps(result.output) == [
        "dO, per sample (1 in the batch) 5x18x18",
        "pad by dilation·(kernel−1) = 2 on each side 5x22x22",
        "the kernels: 5 kernels of depth 3 5x3x3x3",
        "rotate each 180° and swap (transpose) the kernel and channel axes: 3 kernels of depth 5 3x5x3x3",
        "a valid correlation of the padded dO with them 3x20x20",
    ]
    assert _largest_error(result.output) < 1e-9
    assert all(len(line) <= 80 for line in result.output.splitlines())


def test_seed_proof_covers_every_coordinate_below_1e_9():
    derivation = explain(resolve_geometry("3x20x20", "5x3x3x3"))
    assert derivation.holds
    assert {p.tensor: p.checked for p in derivation.proofs} == {"dX": 1200, "dK": 135, "db": 5}
    assert max(p.max_rel_error for p in derivation.proofs) < 1e-9
    assert (derivation.dy, derivation.full, derivation.swapped, derivation.correlated) == (
        (5, 18, 18), (5, 22, 22), (3, 5, 3, 3), (3, 20, 20))


@pytest.mark.parametrize(
    "args, steps",
    [
        (["--in", "2x9", "--kernels", "3x2x3"], ["on each side 3x11", "2 kernels of depth 3 2x3x3", "with them 2x9"]),
        (["--in", "2x4x5x4", "--kernels", "2x2x2x3x2"], ["on each side 2x5x7x5", "depth 2 2x2x2x3x2", "with them 2x4x5x4"]),
        (["--in", "2x7x7", "--kernels", "3x2x3x3", "--stride", "2"],
         ["insert s−1 = 1 zeros between neighbours (the stride) 3x5x5"]),
        (["--in", "2x8x7", "--kernels", "3x2x3x3", "--stride", "2"],
         ["and 1x0 zeros at the end (positions no window reached) 3x6x5"]),
        (["--in", "2x6x6", "--kernels", "3x2x3x3", "--padding", "1"],
         ["with them 2x8x8", "crop the padding 1 off each side 2x6x6"]),
        (["--in", "2x9x9", "--kernels", "3x2x3x3", "--dilation", "2"],
         ["dilate them: 1 zeros between taps, so each spans dilation·(kernel−1)+1 5"]),
        (["--in", "4x6x6", "--kernels", "6x2x3x3", "--groups", "2"],
         ["4 kernels of depth 3 (per group: 3 kernels of depth 2 become 2 kernels of depth 3, for each of the 2 groups) 4x3x3x3",
          "group by group (3 channels of dO each) 4x6x6"]),
        (["--in", "3x7x8", "--kernels", "6x1x3x2", "--groups", "3", "--stride", "2x1", "--padding", "1",
          "--dilation", "1x2", "--batch", "2"], ["crop the padding 1 off each side 3x7x8"]),
    ],
    ids=["1d", "3d", "stride", "stride-remainder", "padding", "dilation", "groups", "everything"],
)
def test_explain_works_for_every_kind_of_layer(args, steps):
    result = run(["explain", *args])
    assert result.exit_code == 0, result.output
    shown = _steps(result.output)
    for step in steps:
        assert any(step in line for line in shown), (step, shown)
    assert _largest_error(result.output) < 1e-9
    assert all(len(line) <= 80 for line in result.output.splitlines())


def test_explain_json_has_the_shapes_and_the_proof():
    result = run(["explain", *SEED, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["holds"] is True
    steps = report["dx_steps"]
    assert steps["padded"] == [5, 22, 22] and steps["rotated_and_swapped"] == [3, 5, 3, 3]
    assert steps["zero_inserted"] is None and steps["cropped"] is None
    assert all(p["max_rel_error"] < 1e-9 for p in report["proof"])


def test_explain_refuses_bad_geometry_in_one_line():
    result = run(["explain", "--in", "3x20x20", "--kernels", "5x4x3x3"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "use --kernels 5x3x3x3" in result.output


def test_explain_svg_is_a_valid_picture_of_what_was_printed(tmp_path):
    picture = tmp_path / "explain.svg"
    result = run(["explain", *SEED, "--svg", str(picture)])
    assert result.exit_code == 0, result.output
    root = ElementTree.parse(picture).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "3x5x3x3" in picture.read_text().replace("&#160;", " ")


def test_explain_help_has_an_example():
    result = run(["explain", "--help"])
    assert result.exit_code == 0 and "convgrad explain --in 3x20x20 --kernels 5x3x3x3" in result.output
