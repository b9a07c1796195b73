"""`convgrad explain`: the derivation with the layer's own numbers, proved by finite differences."""

from __future__ import annotations

import html
import json
import os
import re
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from click.testing import CliRunner

from convgrad import reference
from convgrad.cli import cli
from convgrad.explain import PROOF_TOLERANCE, Proof, explain
from convgrad.geometry import resolve_geometry
from convgrad.options import DEFAULT_TOLERANCES, CheckOptions
from convgrad.run.case import random_tensors

SEED = ["--in", "3x20x20", "--kernels", "5x3x3x3"]
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "explain_seed_80.txt")


def run(args: list[str], columns: int = 80):
    return CliRunner().invoke(cli, args, env={"COLUMNS": str(columns), "NO_COLOR": "1"})


def _joined(output: str) -> str:
    """The output with wrapped lines joined, for phrases that may wrap."""
    return " ".join(output.split())


def _steps(output: str) -> list[str]:
    """The numbered tensor steps as 'text shape', each step's wrapped lines joined."""
    steps: list[list[str]] = []
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("As tensors"))
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
    match = re.search(r"HOLDS: every error is within 1e-08 of its tensor's scale, the tolerance of convgrad "
                      r"check in float64 \(largest ([0-9.e+-]+)\)", _joined(output))
    assert match, output
    return float(match.group(1))


def _without_rounding_noise(text: str) -> str:
    """Errors of order 1e-15 depend on the machine's BLAS; everything else must match exactly."""
    return re.sub(r"\d\.\d\de-1\d", "#.##e-##", "\n".join(line.rstrip() for line in text.splitlines()) + "\n")


def test_seed_explanation_matches_the_golden_text():
    result = run(["explain", *SEED])
    assert result.exit_code == 0, result.output
    shown = _without_rounding_noise(result.output)
    if os.environ.get("CONVGRAD_UPDATE_GOLDEN"):  # after a deliberate change: rewrite, then review the diff
        with open(GOLDEN, "w", encoding="utf-8") as handle:
            handle.write(shown)
    with open(GOLDEN, encoding="utf-8") as handle:
        assert shown == handle.read()


def test_seed_explanation_uses_one_vocabulary():
    text = _joined(run(["explain", *SEED]).output)
    # Defined once, then used in that sense: the headline, the formula and the steps agree.
    assert "correlation (a ⋆ k)[y] = Σ_u a[y+u]·k[u]" in text and "convolution (a ∗ k)[y] = Σ_u a[y−u]·k[u]" in text
    assert "dX: a full correlation of dO with the kernels rotated 180° and swapped" in text
    assert "dX[n,c] = Σ_f full_corr(dO[n,f], rot180(K[f,c])) = Σ_f full_conv(dO[n,f], K[f,c])" in text
    assert "full_conv(dO[n,f], rot180" not in text and "full convolution of dO with the kernels rotated" not in text
    # E, dO, and X without padding are named for what they are.
    assert "E is the loss, one number computed from O" in text and "dO = ∂E/∂O" in text
    assert "Xp" not in text


def test_seed_derivation_shows_the_rotation_and_the_swap_by_index():
    text = _joined(run(["explain", *SEED]).output)
    for step in (
        "dX[n,c,y,x] = Σ_f Σ_i,j dO[n,f,i,j] · ∂O[n,f,i,j]/∂X[n,c,y,x]",  # the chain rule
        "dX[n,c,y,x] = Σ_f Σ_u,v dO[n,f,y−u,x−v] · K[f,c,u,v]",  # only the taps that land on y,x
        "Substitute u = 2−u', v = 2−v'",  # the rotation
        "dX[n,c,y,x] = Σ_f Σ_u',v' P[n,f,y+u',x+v'] · K[f,c,2−u',2−v']",
        "K'[c,f,u',v'] = K[f,c,2−u',2−v']: K' has 3 kernels (one per c) of depth 5 (one per f)",  # the swap
        "dX[n,c,y,x] = Σ_f Σ_u',v' P[n,f,y+u',x+v'] · K'[c,f,u',v']",
    ):
        assert step in text, step


def test_seed_pictures_show_the_swap_the_rotation_and_the_window():
    output = run(["explain", *SEED]).output
    lines = output.splitlines()
    # The grid after the swap: row c holds the slices K[f,c] of every f.
    row = next(line for line in lines if line.strip().startswith("f=0  0,0  0,1  0,2"))
    assert row.split()[-6:] == ["c=0", "0,0", "1,0", "2,0", "3,0", "4,0"]
    # One kernel before and after: the rotated rows are the original rows reversed, in reverse order.
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("K[0,0]"))
    table = [line.split() for line in lines[start + 2:start + 5]]
    before = [cells[1:4] for cells in table]
    after = [cells[5:8] for cells in table]
    assert after == [list(reversed(r)) for r in reversed(before)]
    # The window of dX[0,0,1,1] on the padded dO: rows 1 to 3, columns 1 to 3, dO from row and column 2.
    start = next(i for i, line in enumerate(lines) if "read by the window" in line) - 10
    picture = [line.split()[1:] for line in lines[start:start + 4]]
    assert picture[1][:5] == ["·", "□", "□", "□", "·"]
    assert picture[2][:5] == ["·", "□", "■", "■", "●"]


def test_the_worked_coordinate_is_dx_at_that_coordinate_with_its_products():
    geometry = resolve_geometry("3x20x20", "5x3x3x3")
    worked = explain(geometry).worked
    x, w, b, dy = random_tensors(geometry, CheckOptions(seed=0))
    dx = reference.backward(dy, x, w, b, **geometry.conv_settings())[0]
    padded = np.pad(dy, [(0, 0), (0, 0), (2, 2), (2, 2)])
    assert worked.index == (0, 0, 1, 1)
    assert worked.dx == pytest.approx(dx[0, 0, 1, 1], rel=1e-13)
    assert worked.total == pytest.approx(worked.dx, rel=1e-13)
    assert worked.all_terms == 45 and worked.nonzero_terms == 20
    for filter_terms in worked.filters:
        f = filter_terms.filter
        for t in filter_terms.terms:
            assert t.dy == padded[(0, f, *t.position)]
            assert t.position == (1 + t.tap[0], 1 + t.tap[1])
            assert t.kernel_tap == (2 - t.tap[0], 2 - t.tap[1])  # the rotation, tap by tap
            assert t.kernel == w[(f, 0, *t.kernel_tap)]
            assert t.product == t.dy * t.kernel
    # What is printed: the sum of the products, and dX computed by the steps, equal.
    match = re.search(r"sum (−?[0-9.]+), and dX\[0,0,1,1\] computed by the steps is (−?[0-9.]+)",
                      _joined(run(["explain", *SEED]).output))
    assert match and match.group(1) == match.group(2) == f"{dx[0, 0, 1, 1]:.9f}".replace("-", "−")


@pytest.mark.parametrize(
    "in_shape, kernels, settings",
    [
        ("2x7x8", "3x2x3x3", dict(stride=2)),
        ("2x9x9", "3x2x3x3", dict(dilation=2, padding=1)),
        ("4x6x6", "6x2x3x3", dict(groups=2)),
        ("3x7x8", "6x1x3x2", dict(groups=3, stride="2x1", padding=1, dilation="1x2", batch=2)),
        ("2x4x5x4", "2x2x2x3x2", dict()),
        ("2x9", "3x2x3", dict(stride=2)),
    ],
    ids=["stride", "dilation-padding", "groups", "everything", "3d", "1d-stride"],
)
def test_the_worked_coordinate_sums_to_dx_for_every_kind_of_layer(in_shape, kernels, settings):
    geometry = resolve_geometry(in_shape, kernels, **settings)
    worked = explain(geometry).worked
    x, w, b, dy = random_tensors(geometry, CheckOptions(seed=0))
    dx = reference.backward(dy, x, w, b, **geometry.conv_settings())[0]
    assert worked.dx == pytest.approx(dx[worked.index], rel=1e-12, abs=1e-12)
    assert worked.total == pytest.approx(worked.dx, rel=1e-12, abs=1e-12)
    depth = geometry.channels // geometry.groups
    for filter_terms in worked.filters:
        for t in filter_terms.terms:
            if t.dy_index is not None:  # an entry of dO: the one the stride and padding put there
                assert t.kind == "value" and t.dy == dy[(0, filter_terms.filter, *t.dy_index)]
            else:
                assert t.dy == 0.0
            assert t.kernel == w[(filter_terms.filter, worked.index[1] % depth, *t.kernel_tap)]


# The formula as the Words section defines its terms, applied literally with NumPy.
def _rot180(k: np.ndarray) -> np.ndarray:
    return k[tuple(slice(None, None, -1) for _ in k.shape)]


def _full_corr_2d(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(a ⋆ k)[y,x] = Σ_u,v ap[y+u,x+v]·k[u,v], with a padded by (size of k)−1 zeros: full."""
    kh, kw = k.shape
    ap = np.pad(a, [(kh - 1, kh - 1), (kw - 1, kw - 1)])
    out = np.zeros((a.shape[0] + kh - 1, a.shape[1] + kw - 1))
    for u in range(kh):
        for v in range(kw):
            out += ap[u:u + out.shape[0], v:v + out.shape[1]] * k[u, v]
    return out


def _full_conv_2d(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(a ∗ k)[y,x] = Σ_u,v a[y−u,x−v]·k[u,v], wherever k overlaps a: full."""
    kh, kw = k.shape
    out = np.zeros((a.shape[0] + kh - 1, a.shape[1] + kw - 1))
    for u in range(kh):
        for v in range(kw):
            out[u:u + a.shape[0], v:v + a.shape[1]] += a * k[u, v]
    return out


def _finite_difference_dx(x, w, b, dy) -> np.ndarray:
    """dE/dX by central differences, E = Σ dy·O (exact for a layer linear in x)."""
    settings = dict(stride=[1] * (x.ndim - 2), padding=[0] * (x.ndim - 2), dilation=[1] * (x.ndim - 2), groups=1)
    dx = np.zeros_like(x)
    for q in np.ndindex(*x.shape):
        plus, minus = x.copy(), x.copy()
        plus[q] += 1.0
        minus[q] -= 1.0
        dx[q] = np.sum(dy * (reference.forward(plus, w, b, **settings) - reference.forward(minus, w, b, **settings))) / 2
    return dx


def test_the_printed_formula_applied_literally_gives_dx_in_1d():
    output = _joined(run(["explain", "--in", "2x9", "--kernels", "3x2x3"]).output)
    assert "dX[n,c] = Σ_f full_corr(dO[n,f], rot180(K[f,c])) = Σ_f full_conv(dO[n,f], K[f,c])" in output
    assert "np.convolve(a, k) = np.correlate(a, k[::-1], 'full')" in output
    geometry = resolve_geometry("2x9", "3x2x3")
    x, w, b, dy = random_tensors(geometry, CheckOptions(seed=3))
    expected = _finite_difference_dx(x, w, b, dy)[0]
    for c in range(2):
        as_correlation = sum(np.correlate(dy[0, f], _rot180(w[f, c]), "full") for f in range(3))
        as_convolution = sum(np.convolve(dy[0, f], w[f, c], "full") for f in range(3))
        np.testing.assert_allclose(as_correlation, expected[c], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(as_convolution, expected[c], rtol=1e-12, atol=1e-12)
        # Read the other way, "a full convolution with the rotated kernels", K is rotated twice: wrong.
        rotated_twice = sum(np.convolve(dy[0, f], _rot180(w[f, c]), "full") for f in range(3))
        assert not np.allclose(rotated_twice, expected[c])


def test_the_printed_formula_applied_literally_gives_dx_in_2d():
    geometry = resolve_geometry("3x6x7", "4x3x3x2")
    x, w, b, dy = random_tensors(geometry, CheckOptions(seed=1))
    expected = _finite_difference_dx(x, w, b, dy)[0]
    for c in range(3):
        as_correlation = sum(_full_corr_2d(dy[0, f], _rot180(w[f, c])) for f in range(4))
        as_convolution = sum(_full_conv_2d(dy[0, f], w[f, c]) for f in range(4))
        np.testing.assert_allclose(as_correlation, expected[c], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(as_convolution, expected[c], rtol=1e-12, atol=1e-12)
        assert not np.allclose(sum(_full_conv_2d(dy[0, f], _rot180(w[f, c])) for f in range(4)), expected[c])


@pytest.mark.parametrize(
    "args, steps",
    [
        (["--in", "2x9", "--kernels", "3x2x3"], ["on each side 3x11", "2 kernels of depth 3 2x3x3", "with them 2x9"]),
        (["--in", "2x4x5x4", "--kernels", "2x2x2x3x2"], ["on each side 2x5x7x5", "depth 2 2x2x2x3x2", "with them 2x4x5x4"]),
        (["--in", "2x7x7", "--kernels", "3x2x3x3", "--stride", "2"],
         ["S: insert s−1 = 1 zero between neighbours (the stride) 3x5x5"]),
        (["--in", "2x8x7", "--kernels", "3x2x3x3", "--stride", "2"],
         ["and 1x0 zeros at the end (positions no window reached) 3x6x5"]),
        (["--in", "2x6x6", "--kernels", "3x2x3x3", "--padding", "1"],
         ["with them 2x8x8", "crop the padding 1 off each side 2x6x6"]),
        (["--in", "2x9x9", "--kernels", "3x2x3x3", "--dilation", "2"],
         ["dilate them: 1 zero between taps, so each spans dilation·(kernel−1)+1 = 5 2x3x5x5"]),
        (["--in", "4x6x6", "--kernels", "6x2x3x3", "--groups", "2"],
         ["4 kernels of depth 3 (per group: 3 kernels of depth 2 become 2 kernels of depth 3, for each of the 2 groups) 4x3x3x3",
          "group by group (3 channels of P each) 4x6x6"]),
        (["--in", "3x7x8", "--kernels", "6x1x3x2", "--groups", "3", "--stride", "2x1", "--padding", "1",
          "--dilation", "1x2", "--batch", "2"], ["become 1 kernel of depth 2", "crop the padding 1 off each side 3x7x8"]),
    ],
    ids=["1d", "3d", "stride", "stride-remainder", "padding", "dilation", "groups", "everything"],
)
def test_explain_works_for_every_kind_of_layer(args, steps):
    result = run(["explain", *args])
    assert result.exit_code == 0, result.output
    shown = _steps(result.output)
    for step in steps:
        assert any(step in line for line in shown), (step, shown)
    assert _largest_error(result.output) < 1e-13
    assert all(len(line) <= 80 for line in result.output.splitlines())
    text = _joined(result.output)
    assert not re.search(r"(?:^|\s)1 (zeros|channels|kernels|samples|calls)\b", text), text  # grammar
    assert "dX: a full correlation of" in text and "One coordinate, worked out" in text


def test_padding_strides_and_groups_are_named_in_the_derivation():
    text = _joined(run(["explain", "--in", "4x7x8", "--kernels", "6x2x3x3", "--groups", "2", "--stride", "2",
                        "--padding", "1"]).output)
    assert "Xp is X with 1 zero of padding on each side: 4x9x10 per sample" in text
    assert "S[n,f,2i,2j] = dO[n,f,i,j], with 1 zero between neighbours" in text
    assert "dXp[n,c,y,x] = Σ_f∈group(c) Σ_u',v' P[n,f,y+u',x+v'] · K'[c,f',u',v']" in text
    assert "Then dX[n,c,y,x] = dXp[n,c,y+1,x+1]: the padding is cropped off." in text


def test_the_proofs_tolerance_is_checks_float64_tolerance():
    assert PROOF_TOLERANCE == DEFAULT_TOLERANCES["float64"].rtol == 1e-8
    assert Proof("dX", 0.0, 1e-8, 1, 1).holds and not Proof("dX", 0.0, 1.1e-8, 1, 1).holds
    derivation = explain(resolve_geometry("3x20x20", "5x3x3x3"))
    assert derivation.holds and derivation.tolerance == 1e-8
    assert {p.tensor: p.checked for p in derivation.proofs} == {"dX": 1200, "dK": 135, "db": 5}
    assert max(p.max_rel_error for p in derivation.proofs) < 1e-13
    assert (derivation.dy, derivation.full, derivation.swapped, derivation.correlated) == (
        (5, 18, 18), (5, 22, 22), (3, 5, 3, 3), (3, 20, 20))


def test_float32_is_refused_in_one_line_naming_why():
    result = run(["explain", *SEED, "--dtype", "float32"])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
    assert "--dtype float32 is refused: explain derives and proves the algebra in float64" in result.output
    assert "use check with --dtype float32" in result.output
    assert run(["explain", *SEED, "--dtype", "float64"]).exit_code == 0


def test_explain_json_keeps_its_fields_and_adds_the_new_content():
    result = run(["explain", *SEED, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["holds"] is True and report["tolerance"] == 1e-8
    steps = report["dx_steps"]
    assert steps["padded"] == [5, 22, 22] and steps["rotated_and_swapped"] == [3, 5, 3, 3]
    assert steps["zero_inserted"] is None and steps["cropped"] is None
    assert steps["dilated_extent"] is None and steps["dilated"] is None
    assert all(p["max_rel_error"] < 1e-9 for p in report["proof"])
    worked = report["worked_coordinate"]
    assert worked["index"] == [0, 0, 1, 1] and worked["sum"] == pytest.approx(worked["dx"], rel=1e-13)
    assert len(worked["filters"]) == 5 and all(len(f["terms"]) == 9 for f in worked["filters"])
    assert report["kernel_grid"]["after"]["cells"][1] == [[f, 1] for f in range(5)]
    assert report["rotation"]["after"] == [row[::-1] for row in report["rotation"]["before"][::-1]]
    assert report["padded_dy_map"]["kinds"][2][2] == "value" and report["padded_dy_map"]["kinds"][1][1] == "pad"


def test_explain_json_for_a_dilated_layer_has_the_dilated_shape():
    report = json.loads(run(["explain", "--in", "2x9x9", "--kernels", "3x2x3x3", "--dilation", "2", "--json"]).output)
    assert report["dx_steps"]["dilated"] == [2, 3, 5, 5] and report["dx_steps"]["dilated_extent"] == [5, 5]


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
    svg = html.unescape(picture.read_text()).replace("\xa0", " ")
    for drawn in ("3x5x3x3", "K': 3 kernels x depth 5", "the same, rotated 180°", "■", "read by the window"):
        assert drawn in svg, drawn


def test_explain_help_has_an_example():
    result = run(["explain", "--help"])
    assert result.exit_code == 0 and "convgrad explain --in 3x20x20 --kernels 5x3x3x3" in result.output


def test_the_readme_shows_explain_as_it_prints():
    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
    with open(readme, encoding="utf-8") as handle:
        text = handle.read()
    start = text.index("$ convgrad explain --in 3x20x20 --kernels 5x3x3x3\n") + len("$ convgrad explain --in 3x20x20 --kernels 5x3x3x3\n")
    shown = text[start:text.index("```", start)]
    with open(GOLDEN, encoding="utf-8") as handle:
        assert _without_rounding_noise(shown) == handle.read()
