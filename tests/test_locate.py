"""Where the errors are: counts, channels, border or interior, stride phases, and the heatmap."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

from conftest import ReferenceWith
from convgrad import reference
from checking import check_layer
from convgrad.render.console import make_console
from convgrad.compare import compare
from convgrad.geometry import resolve_geometry
from convgrad.findings.locate import MAP_COLUMNS, MAP_ROWS, locate
from convgrad.render.findings import describe_location
from convgrad.render.heatmap import GLYPHS, OK_GLYPH, render_heatmap
from zoo import layers as zoo


def _plain(renderable) -> list[str]:
    out = io.StringIO()
    make_console(file=out, width=80).print(renderable)
    return out.getvalue().splitlines()


def _marked_cells(lines: list[str]) -> np.ndarray:
    """The heatmap's rows as booleans: True where a cell shows an error glyph."""
    glyphs = re.escape(OK_GLYPH + "".join(GLYPHS))
    rows = [m.group(1) for m in (re.match(rf"^\s*\d+ ([{glyphs}][{glyphs} ]*)$", line.rstrip() + " ") for line in lines) if m]
    return np.array([[cells[2 * j] in GLYPHS for j in range(len(cells) // 2)] for cells in rows])


def test_a_border_only_error_is_located_on_the_border_and_drawn_there():
    geometry = resolve_geometry("2x9x12", "3x2x3x3")
    case = check_layer(geometry, zoo.DxEdgesForgotten())
    dx = case.tensor("dX")
    location = dx.location
    border = np.zeros((9, 12), dtype=bool)
    border[:2], border[-2:], border[:, :2], border[:, -2:] = True, True, True, True
    assert location.region == "border" and location.reach == (2, 2)
    assert location.wrong == location.border_wrong == 2 * border.sum() and location.interior_wrong == 0
    assert "only on the border (within 2 of an edge" in describe_location(location)
    marked = _marked_cells(_plain(render_heatmap(location)))
    assert marked.shape == (9, 12)
    np.testing.assert_array_equal(marked, border)


def test_errors_on_one_stride_phase_are_reported_as_such():
    class EvenPositionsOff(ReferenceWith):
        def backward(self, dy, x, w, b, **settings):
            dx, dw, db = reference.backward(dy, x, w, b, **settings)
            dx[:, :, ::2, ::2] *= 1.01  # padding 0, so phase (0, 0) of the padded input
            return dx, dw, db

    case = check_layer(resolve_geometry("2x8x8", "2x2x2x2", stride=2), EvenPositionsOff())
    location = case.tensor("dX").location
    assert location.phases == ((0, 0),) and location.phase_count == 4
    assert "only on stride phases (0,0) of 4" in describe_location(location)


def test_wrong_kernels_and_channels_are_listed():
    class KernelTwoOff(ReferenceWith):
        def backward(self, dy, x, w, b, **settings):
            dx, dw, db = reference.backward(dy, x, w, b, **settings)
            dw[2] += 0.5
            return dx, dw, db

    case = check_layer(resolve_geometry("3x6x6", "5x3x3x3"), KernelTwoOff())
    location = case.tensor("dK").location
    assert location.channels == (2,) and location.wrong == 27 and location.fraction == 27 / 135
    assert "in kernels 2 of 5" in describe_location(location)
    assert location.map_title.startswith("dK[f=2, c=") and location.error_map.shape == (3, 3)


def _located(geometry, index):
    x_shape = geometry.x_shape
    numerical = np.random.default_rng(0).standard_normal(x_shape)
    analytical = numerical.copy()
    analytical[index] += 1.0
    return locate(compare("dX", analytical, numerical, 1e-8, method="dense"), geometry)


def test_a_large_map_is_shrunk_to_fit_80_columns_and_keeps_the_error():
    geometry = resolve_geometry("1x90x200", "1x1x3x3")
    location = _located(geometry, (0, 0, 50, 150))
    rows, cols = location.error_map.shape
    assert rows <= MAP_ROWS and cols <= MAP_COLUMNS
    lines = _plain(render_heatmap(location))
    assert max(len(line.rstrip()) for line in lines) <= 80
    br, bc = location.map_block
    marked = _marked_cells(lines)
    assert marked.sum() == 1 and marked[50 // br, 150 // bc]


def test_1d_and_3d_maps():
    one = _located(resolve_geometry("2x30", "1x2x3"), (0, 1, 7))
    assert one.error_map.shape == (1, 30) and one.map_title == "dX[n=0, c=1]"
    three = _located(resolve_geometry("1x4x5x6", "1x1x2x2x2"), (0, 0, 3, 1, 2))
    assert three.map_title == "dX[n=0, c=0, D=3]" and three.map_axes == ("H", "W")
    assert three.error_map.shape == (5, 6) and three.error_map[1, 2] > 0


def test_a_sampled_check_leaves_uncompared_positions_blank_and_claims_no_region():
    case = check_layer(resolve_geometry("3x8x8", "4x3x3x3"), zoo.KernelsNotRotated(), method="sample", samples=6)
    location = case.tensor("dX").location
    assert location.checked == 6
    assert location.border_total + location.interior_total == 6
    assert np.isnan(location.error_map).sum() >= 64 - 6
    assert "blank not compared" in render_heatmap(location).plain


@pytest.mark.parametrize("shape", [(1, 8, 30, 30), (7,), (2, 3, 1, 5)])
def test_worst_coordinates_are_largest_first_and_equal_errors_in_index_order(shape):
    from convgrad.compare import WORST_SHOWN

    values = np.random.default_rng(0).standard_normal(shape)
    exact = compare("dX", values, values.copy(), 1e-6, method="coloured")  # every error 0: a pass lists one
    assert [c.index for c in exact.worst] == [np.unravel_index(0, shape)]
    failing = compare("dX", values, values.copy(), -1.0, method="coloured")  # every error 0, and past -1
    assert [c.index for c in failing.worst] == [np.unravel_index(f, shape) for f in range(min(WORST_SHOWN, values.size))]
    # Errors of a few sizes, many of them equal (as rounding errors are, in units of the last
    # place): the same list as a stable full sort makes, on any machine.
    rng = np.random.default_rng(1)
    whole = rng.integers(-50, 50, size=shape).astype(np.float64)
    errors = rng.integers(0, 4, size=shape) / 2**20  # exact in float64: whole + errors - whole == errors
    got = compare("dX", whole + errors, whole, 0.0, method="coloured")  # fails: every worst coordinate listed
    expected = sorted(range(values.size), key=lambda f: (-errors.flat[f], f))[:WORST_SHOWN]
    assert [c.index for c in got.worst] == [np.unravel_index(f, shape) for f in expected]
    # A pass lists its worst alone: the first of the largest equal errors, by index.
    passing = compare("dX", whole + errors, whole, 1.0, method="coloured")
    assert passing.passed and [c.index for c in passing.worst] == [np.unravel_index(expected[0], shape)]
