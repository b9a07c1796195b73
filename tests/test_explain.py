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
FIRST_SCREEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "explain_seed_first_screen_80.txt")


def run(args: list[str], columns: int = 80):
    return CliRunner().invoke(cli, args, env={"COLUMNS": str(columns), "NO_COLOR": "1"})


def _joined(output: str) -> str:
    """The output with wrapped lines joined, for phrases that may wrap."""
    return " ".join(output.split())


def _steps(output: str) -> list[str]:
    """The numbered tensor steps as 'text shape', each step's wrapped lines joined."""
    steps: list[list[str]] = []
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("The answer"))
    for line in lines[start + 1:]:
        if re.match(r"\s+\d+\. ", line):
            *words, shape = line.split()
            steps.append([" ".join(words[1:]), shape])
        elif line.startswith("    ") and steps:
            steps[-1][0] += " " + " ".join(line.split())
        else:
            break
    return [f"{text} {shape}" for text, shape in steps]


def _first_screen(output: str) -> str:
    """What a learner reads before scrolling: the answer and the trap."""
    return output[: output.index("Why: the derivation")].rstrip("\n") + "\n"


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
    # Defined once, in the trap, then used in that sense: the answer, the formulas and the steps agree.
    assert "it is a correlation: Σ_u a[y+u]·k[u], the kernel slides as it is" in text
    assert "A convolution flips the kernel first: Σ_u a[y−u]·k[u]" in text
    assert ("dX is the full convolution of dO with K as it is, which is the full correlation of dO with K "
            "rotated 180°") in text
    assert "Rotating K and then convolving" in text and "rotates twice: wrong" in text
    assert "full convolution of dO with the kernels rotated" not in text
    # The library names of the same operation, with this layer's settings.
    assert "torch.nn.functional.conv_transpose2d(dO, K) (or torch.nn.grad.conv2d_input)" in text
    assert "tf.nn.conv2d_transpose; jax.lax.conv_transpose with transpose_kernel=True" in text
    # E, dO, and X without padding are named for what they are; no symbol defined and left unused.
    assert "E is the loss, one number computed from O" in text and "dO = ∂E/∂O" in text
    assert "Xp" not in text and "⋆" not in text and "∗" not in text
    assert "calls)" not in text  # call counts belong to check, not to the derivation


def test_the_answer_comes_first_with_the_seeds_numbers():
    output = run(["explain", *SEED]).output
    lines = output.splitlines()
    assert lines[3] == "The answer: dO 5x18x18 becomes dX 3x20x20"
    assert _steps(output) == [
        "dO = ∂E/∂O, per sample (1 sample in the batch) 5x18x18",
        "P: pad dO by dilation·(kernel−1) = 2 zeros on each side 5x22x22",
        "K: 5 kernels of depth 3 5x3x3x3",
        "K': rotate each kernel 180° and swap the kernel and depth axes: 3 kernels of depth 5 3x5x3x3",
        "dX = a valid correlation of P with K' (each kernel slides over P unflipped, summing over its depth) 3x20x20",
    ]
    assert len(_first_screen(output).splitlines()) <= 30  # one screen: the answer and the trap


def test_seed_first_screen_matches_the_golden_text():
    shown = "\n".join(line.rstrip() for line in _first_screen(run(["explain", *SEED]).output).splitlines()) + "\n"
    if os.environ.get("CONVGRAD_UPDATE_GOLDEN"):
        with open(FIRST_SCREEN, "w", encoding="utf-8") as handle:
            handle.write(shown)
    with open(FIRST_SCREEN, encoding="utf-8") as handle:
        assert shown == handle.read()


def test_seed_derivation_shows_the_rotation_and_the_swap_by_index():
    text = _joined(run(["explain", *SEED]).output)
    for step in (
        "dX[n,c,y,x] = Σ_f Σ_i,j dO[n,f,i,j]·∂O[n,f,i,j]/∂X[n,c,y,x]",  # the chain rule
        "dX[n,c,y,x] = Σ_f Σ_u,v dO[n,f,y−u,x−v]·K[f,c,u,v]",  # only the taps that land on y,x
        "Substitute u = 2−u', v = 2−v'",  # the rotation
        "P[n,f,a+2,b+2] = dO[n,f,a,b]",
        "dX[n,c,y,x] = Σ_f Σ_u',v' P[n,f,y+u',x+v']·K[f,c,2−u',2−v']",
        "K'[c,f,u',v'] = K[f,c,2−u',2−v'] K' has 3 kernels (one per c) of depth 5 (one per filter)",  # the swap
        "dX[n,c,y,x] = Σ_f Σ_u',v' P[n,f,y+u',x+v']·K'[c,f,u',v']",
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
    # The window of dX[0,0,2,2] on the padded dO: rows and columns 2 to 4, wholly on dO.
    start = next(i for i, line in enumerate(lines) if "■ read, on dO" in line) - 10
    picture = [line.split()[1:] for line in lines[start:start + 6]]
    assert picture[1][:6] == ["·"] * 6
    assert picture[2][:6] == picture[4][:6] == ["·", "·", "■", "■", "■", "●"]
    assert picture[5][:6] == ["·", "·", "●", "●", "●", "●"]


def test_the_worked_coordinate_is_dx_at_that_coordinate_with_its_products():
    geometry = resolve_geometry("3x20x20", "5x3x3x3")
    worked = explain(geometry).worked
    x, w, b, dy = random_tensors(geometry, CheckOptions(seed=0))
    dx = reference.backward(dy, x, w, b, **geometry.conv_settings())[0]
    padded = np.pad(dy, [(0, 0), (0, 0), (2, 2), (2, 2)])
    assert worked.index == (0, 0, 2, 2)  # the first whose window lies wholly on dO
    assert worked.dx == pytest.approx(dx[0, 0, 2, 2], rel=1e-13)
    assert worked.total == pytest.approx(worked.dx, rel=1e-13)
    assert worked.all_terms == worked.nonzero_terms == 45
    for filter_terms in worked.filters:
        f = filter_terms.filter
        for t in filter_terms.terms:
            assert t.dy == padded[(0, f, *t.position)]
            assert t.position == (2 + t.tap[0], 2 + t.tap[1])
            assert t.kernel_tap == (2 - t.tap[0], 2 - t.tap[1])  # the rotation, tap by tap
            assert t.kernel == w[(f, 0, *t.kernel_tap)]
            assert t.product == t.dy * t.kernel
    # What is printed: the sum of the products, and dX computed by the steps, equal.
    text = _joined(run(["explain", *SEED]).output)
    match = re.search(r"sum (−?[0-9.]+), and dX\[0,0,2,2\] computed by the steps is (−?[0-9.]+)", text)
    assert match and match.group(1) == match.group(2) == f"{dx[0, 0, 2, 2]:.9f}".replace("-", "−")
    assert "The 45 products where the window lies on an entry of dO:" in text  # no "(the other 0 of 45 ...)"
    # The border, where the window hangs over the padding: 5 products per corner, summed.
    border = explain(geometry).border
    assert border is not None and border.index == (0, 0, 0, 0) and border.nonzero_terms == 5
    assert border.total == pytest.approx(dx[0, 0, 0, 0], rel=1e-13)
    assert "At the border, dX[0,0,0,0]: its window hangs over the padding of dO, so only 5 of its 45" in text


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
    assert "dX is the full convolution of dO with K as it is, which is the full correlation of dO with K" in output
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
        (["--in", "2x9", "--kernels", "3x2x3"], ["on each side 3x11", "2 kernels of depth 3 2x3x3", "summing over its depth) 2x9"]),
        (["--in", "2x4x5x4", "--kernels", "2x2x2x3x2"], ["on each side 2x5x7x5", "depth 2 2x2x2x3x2", "summing over its depth) 2x4x5x4"]),
        (["--in", "2x7x7", "--kernels", "3x2x3x3", "--stride", "2"],
         ["S: insert stride−1 = 1 zero between neighbours 3x5x5"]),
        (["--in", "2x8x7", "--kernels", "3x2x3x3", "--stride", "2"],
         ["and 1x0 zeros at the end (positions no window reached) 3x6x5"]),
        (["--in", "2x6x6", "--kernels", "3x2x3x3", "--padding", "1"],
         ["summing over its depth) 2x8x8", "crop the padding 1 off each side 2x6x6"]),
        (["--in", "2x9x9", "--kernels", "3x2x3x3", "--dilation", "2"],
         ["dilate them: 1 zero between taps, so each spans dilation·(kernel−1)+1 = 5 2x3x5x5"]),
        (["--in", "4x6x6", "--kernels", "6x2x3x3", "--groups", "2"],
         ["4 kernels of depth 3 (per group: 3 kernels of depth 2 become 2 kernels of depth 3, in each of the 2 groups) 4x3x3x3",
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
    assert "The trap" in text and "One coordinate of dX, worked out" in text
    assert "One coordinate of dK, worked out" in text
    assert not re.search(r"the other (0 of|1 filter)|1 kernel of depth \d+ become\b", text), text


def test_padding_strides_and_groups_are_named_in_the_derivation():
    text = _joined(run(["explain", "--in", "4x7x8", "--kernels", "6x2x3x3", "--groups", "2", "--stride", "2",
                        "--padding", "1"]).output)
    assert "Xp is X with 1 zero of padding on each side: 4x9x10 per sample" in text
    assert "where S is dO spread out by the stride, 1 zero between neighbours, 0 elsewhere: S[n,f,2i,2j] = dO[n,f,i,j]" in text
    assert ("dXp[n,c,y,x] = Σ_f' Σ_u',v' P[n,3g+f',y+u',x+v']·K'[c,f',u',v'] where g = ⌊c/2⌋ (c's group)") in text
    assert "The padding is cropped off: dX[n,c,y,x] = dXp[n,c,y+1,x+1]" in text
    assert ("full correlation of dO with K rotated 180° (dO first spread out by the stride (S), group by group, "
            "the padding cropped off at the end)") in text
    assert "conv_transpose2d(dO, K, stride=2, padding=1, output_padding=(0, 1), groups=2)" in text
    # The shortcut: pad by 2−1 = 1 and skip the crop, with its formula.
    assert "pad S by dilation·(kernel−1) − padding = 1 zero on each side (Q, 6x9x10)" in text
    assert "Q[n,f,a+1,b+1] = S[n,f,a,b]" in text and "the same dX (largest difference" in text


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
    assert worked["index"] == [0, 0, 2, 2] and worked["sum"] == pytest.approx(worked["dx"], rel=1e-13)
    assert len(worked["filters"]) == 5 and all(len(f["terms"]) == 9 for f in worked["filters"])
    assert report["kernel_grid"]["after"]["cells"][1] == [[f, 1] for f in range(5)]
    assert report["rotation"]["after"] == [row[::-1] for row in report["rotation"]["before"][::-1]]
    assert report["padded_dy_map"]["kinds"][2][2] == "value" and report["padded_dy_map"]["kinds"][1][1] == "pad"
    formulas = {f["name"]: f for f in report["formulas"]}
    assert formulas["swapped"]["text"] == "dX[n,c,y,x] = Σ_f Σ_u',v' P[n,f,y+u',x+v']·K'[c,f,u',v']"
    assert formulas["swapped"]["free"] == ["n", "c", "y", "x"]
    assert report["dk_coordinate"]["index"] == [0, 0, 1, 1]
    assert report["dk_coordinate"]["sum"] == pytest.approx(report["dk_coordinate"]["dk"], rel=1e-13)


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
    for drawn in ("3x5x3x3", "K': 3 kernels x depth 5", "the same, rotated 180°", "■", "read, on dO"):
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
    with open(FIRST_SCREEN, encoding="utf-8") as handle:
        assert _without_rounding_noise(shown) == handle.read()


@pytest.mark.parametrize("in_shape, kernels, settings", [
    ("3x20x20", "5x3x3x3", {}),
    ("4x9x9", "6x2x3x3", dict(stride=2, padding=1, groups=2, batch=2)),
    ("2x9", "3x2x3", dict(dilation=2, padding="0,1")),
])
def test_the_worked_dk_coordinate_is_dk_there_with_its_products(in_shape, kernels, settings):
    geometry = resolve_geometry(in_shape, kernels, **settings)
    d = explain(geometry)
    x, w, b, dy = random_tensors(geometry, CheckOptions(seed=0))
    dk = reference.backward(dy, x, w, b, **geometry.conv_settings())[1]
    xp = reference.pad(x, geometry.padding_pairs)
    k = d.weight
    assert k.dk == dk[k.index] and k.total == pytest.approx(k.dk, rel=1e-12, abs=1e-12)
    assert len(k.terms) == geometry.batch * int(np.prod(geometry.out_spatial))
    for t in k.terms:
        assert t.dy == dy[(t.dy_index[0], k.index[0], *t.dy_index[1:])]
        assert t.x == xp[(t.x_position[0], k.channel, *t.x_position[1:])]
        assert t.x == 0.0 or not t.on_padding  # padding reads 0


@pytest.mark.parametrize("args, index, products", [
    (["--in", "2x9x9", "--kernels", "3x2x3x3", "--stride", "2"], "dX[0,0,2,2]", "12 products"),
    (["--in", "2x6x6", "--kernels", "3x2x3x3", "--padding", "1"], "dX[0,0,1,1]", "27 products"),
    (["--in", "2x9", "--kernels", "3x2x3", "--dilation", "2"], "dX[0,0,4]", "9 products"),
])
def test_the_worked_dx_window_lies_wholly_on_do(args, index, products):
    text = _joined(run(["explain", *args]).output)
    assert f"One coordinate of dX, worked out: {index} Chosen because its window lies wholly on dO" in text
    assert f"The {products} where the window lies on an entry of dO" in text


def test_explain_html_writes_the_page_and_says_where(tmp_path):
    page = tmp_path / "seed.html"
    result = CliRunner().invoke(cli, ["explain", *SEED, "--html", str(page)], env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and 'id="convgrad-data"' in text
    assert "http://" not in text.replace("http://www.w3.org", "") and "https://" not in text  # nothing to fetch
    assert f"Page written to {page}: open it in a browser." in result.output
    assert "The answer: dO 5x18x18 becomes dX 3x20x20" in text


def test_explain_html_into_a_missing_folder_is_bad_input(tmp_path):
    result = run(["explain", *SEED, "--html", str(tmp_path / "missing" / "seed.html")])
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0 and "Traceback" not in result.output


def test_explain_html_dash_is_bad_input():
    result = run(["explain", *SEED, "--html", "-"])
    assert result.exit_code == 2 and "needs a file path, such as out.html" in result.output
