"""The page of `convgrad explain --html`, in a real browser (headless Chromium, see browser.py).

The page shows what `page_data` makes of a derivation: its text, its tensors and the formulas of
dX (P·K', or Q·K' with padding), dK (dO·Xp) and O (b + Xp·K) as structures the page's script
evaluates. Every number the page shows is read back and compared with the reference computed here
in NumPy from the derivation's random inputs alone: each product's factors (exactly: the same
float64 values), the sum and the computed value.
"""

from __future__ import annotations

import base64
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from browser import CHROMIUM_ARGS, chromium_path, open_file, sync_api
from convgrad import reference
from convgrad.explain import explain
from convgrad.geometry import LayerGeometry, resolve_geometry
from convgrad.render.explain_page import render_page
from convgrad.render.page_data import page_data

playwright = sync_api()

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "images" / "explain-page.png"

SEED = resolve_geometry("3x20x20", "5x3x3x3")
ONE_BY_ONE = resolve_geometry("4x6x6", "3x4x1x1")
ONE_D = resolve_geometry("3x12", "4x3x3", stride=2, padding=1)
THREE_D = resolve_geometry("2x5x5x5", "3x2x2x2x2", padding=1)
BATCH_GROUPS = resolve_geometry("4x9x9", "6x2x3x3", batch=2, stride=2, padding=1, dilation=2, groups=2)
DEPTHWISE = resolve_geometry("3x6x6", "3x1x3x3", groups=3, padding=1)  # K's depth index is the constant 0
UNEVEN = resolve_geometry("2x8x7", "3x2x3x3", stride=2, padding="same")  # TensorFlow's: one more after


@dataclass(frozen=True)
class Arrays:
    """A layer's tensors, and the reference's O, dX and dK to compare the page with."""

    geometry: LayerGeometry
    x: np.ndarray
    w: np.ndarray
    b: np.ndarray
    dy: np.ndarray
    xp: np.ndarray  # X padded
    window_source: np.ndarray  # what dX's windows read: P, or with padding Q (P without the padding)
    k2: np.ndarray  # K rotated and swapped
    o: np.ndarray
    dx: np.ndarray
    dk: np.ndarray

    @property
    def padded(self) -> bool:
        return any(self.geometry.padding_totals)

    @property
    def source_name(self) -> str:
        return "Q" if self.padded else "P"

    @property
    def input_name(self) -> str:
        return "Xp" if self.padded else "X"


def _arrays(g: LayerGeometry, data: dict[str, Any]) -> Arrays:
    """The reference's tensors for the inputs the page carries (X, K, b, dO), computed here."""
    def tensor(name: str) -> np.ndarray:
        entry = data["tensors"][name]
        return np.frombuffer(base64.b64decode(entry["data"]), dtype="<f8").reshape(entry["shape"])

    x, w, b, dy = (tensor(name) for name in ("X" if "X" in data["tensors"] else "Xp", "K", "b", "dO"))
    if "Xp" in data["tensors"]:  # the page carries the padded input only: take X back out of it
        x = reference.crop(x, g.padding_pairs)
    settings = g.conv_settings()
    dx, dk, _ = reference.backward(dy, x, w, b, **settings)
    xp = reference.pad(x, g.padding_pairs)
    reach = [d * (k - 1) for k, d in zip(g.kernel_size, g.dilation)]
    spread = reference.zero_insert(dy, g.stride, [n - r for n, r in zip(xp.shape[2:], reach)])
    p = reference.pad(spread, reach)
    source = reference.crop(p, g.padding_pairs)
    return Arrays(g, x, w, b, dy, xp, source, reference.rotate_and_swap(w, g.groups),
                  reference.forward(x, w, b, **settings), dx, dk)


def _data(g: LayerGeometry, seed: int = 0) -> tuple[dict[str, Any], Arrays]:
    data = page_data(explain(g, seed=seed))
    return data, _arrays(g, data)


def _tensor(array: np.ndarray) -> dict[str, Any]:
    little_endian = np.ascontiguousarray(array, dtype="<f8")
    return {"shape": list(array.shape), "data": base64.b64encode(little_endian.tobytes()).decode("ascii")}


# The reference products, in NumPy: the page lists them in the same order (group variables first).


def _window(start: int, step: int, count: int) -> slice:
    return slice(start, start + step * (count - 1) + 1, step)


def _expected(a: Arrays, tensor: str, coordinate: tuple[int, ...]) -> tuple[list[tuple[float, ...]], float]:
    """Each product's factors, and the reference's value at the coordinate."""
    g = a.geometry
    per_group_c, per_group_f = g.channels // g.groups, g.filters // g.groups
    if tensor == "dX":
        n, c, *position = coordinate
        group = c // per_group_c
        windows = a.window_source[n, group * per_group_f:(group + 1) * per_group_f][
            (Ellipsis, *(_window(y, d, k) for y, d, k in zip(position, g.dilation, g.kernel_size)))]
        return list(zip(windows.ravel(), a.k2[c].ravel())), a.dx[coordinate]
    if tensor == "dK":
        f, c, *tap = coordinate
        channel = f // per_group_f * per_group_c + c
        out = a.dy.shape[2:]
        windows = a.xp[:, channel][
            (slice(None), *(_window(d * u, s, o) for d, u, s, o in zip(g.dilation, tap, g.stride, out)))]
        return list(zip(a.dy[:, f].ravel(), windows.ravel())), a.dk[coordinate]
    n, f, *position = coordinate
    group = f // per_group_f
    windows = a.xp[n, group * per_group_c:(group + 1) * per_group_c][
        (Ellipsis, *(_window(s * i, d, k) for s, i, d, k in zip(g.stride, position, g.dilation, g.kernel_size)))]
    return [(a.b[f],), *zip(windows.ravel(), a.w[f].ravel())], a.o[coordinate]


def _expected_reads(a: Arrays, tensor: str, coordinate: tuple[int, ...]) -> dict[str, tuple[str, set[str]]]:
    """The planes a 2-D layer's first group reads, and the cells read in each: tensor -> (plane, cells)."""
    g = a.geometry
    (sh, sw), (dh, dw) = g.stride, g.dilation
    taps = [(u, v) for u in range(g.kernel_size[0]) for v in range(g.kernel_size[1])]
    cells = lambda pairs: {f"{row},{column}" for row, column in pairs}  # noqa: E731
    per_group_c, per_group_f = g.channels // g.groups, g.filters // g.groups
    if tensor == "dX":
        n, c, y, x = coordinate
        window = [(y + dh * u, x + dw * v) for u, v in taps]
        return {a.source_name: (f"{n},{c // per_group_c * per_group_f}", cells(window)), "K'": (f"{c},0", cells(taps))}
    if tensor == "dK":
        f, c, u, v = coordinate
        out = a.dy.shape[2:]
        positions = [(i, j) for i in range(out[0]) for j in range(out[1])]
        window = [(sh * i + dh * u, sw * j + dw * v) for i, j in positions]
        return {"dO": (f"0,{f}", cells(positions)), a.input_name: (f"0,{f // per_group_f * per_group_c + c}", cells(window))}
    n, f, i, j = coordinate
    window = [(sh * i + dh * u, sw * j + dw * v) for u, v in taps]
    return {a.input_name: (f"{n},{f // per_group_f * per_group_c}", cells(window)), "K": (f"{f},0", cells(taps))}


# The browser.


@pytest.fixture(scope="module")
def browser():
    path = chromium_path()
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def open_page(browser, tmp_path):
    """open_page(data, hash="", **context options): the page written to tmp_path and opened from disk.
    At the end of the test, no page may have made a request or logged an error."""
    contexts, watched = [], []

    def open_(data: dict[str, Any], hash_: str = "", **options: Any):
        path = tmp_path / f"explain-{len(watched)}.html"
        path.write_text(render_page(data), encoding="utf-8")
        contexts.append(browser.new_context(**options))
        watched.append(open_file(contexts[-1], path, hash_))
        return watched[-1].page

    yield open_
    problems = [problem for page in watched for problem in page.problems]
    for context in contexts:
        context.close()
    assert not problems, problems


SEED_DATA, SEED_ARRAYS = _data(SEED)


@pytest.fixture(scope="module")
def seed_data():
    return SEED_DATA


def _coordinate(page) -> tuple[int, ...]:
    return tuple(int(value) for value in page.eval_on_selector_all(
        "#explorer-inputs input", "inputs => inputs.map(input => input.value)"))


# Everything _assert_shows reads, in one call.
_SHOWN = """() => {
  const text = (id) => document.getElementById(id).textContent;
  return {
    tensor: document.querySelector("input[name=explorer-tensor]:checked").value,
    coordinate: [...document.querySelectorAll("#explorer-inputs input")].map((input) => Number(input.value)),
    hash: location.hash,
    rows: [...document.querySelectorAll("tr[data-product]")].map((row) => [row.dataset.factors, row.dataset.product]),
    total: document.getElementById("explorer-total").dataset.value,
    computed: document.getElementById("explorer-computed").dataset.value,
    agree: document.getElementById("explorer-agree").dataset.agree,
    agreement: text("explorer-agree"),
    status: text("explorer-status"),
    planes: [...document.querySelectorAll("#explorer-pictures figure")].map((figure) => [
      figure.dataset.tensor, figure.dataset.plane, [...figure.querySelectorAll("td.read")].map((cell) => cell.dataset.cell),
    ]),
  };
}"""


COMPUTED_BY = {"dX": "the steps", "dK": "the reference layer", "O": "the reference forward"}


def _entry(a: Arrays, tensor: str, coordinate: tuple[int, ...]) -> tuple[int, ...]:
    """The tensor's index at a page coordinate: with groups of one channel, dK's depth index is
    the constant 0, not asked for."""
    g = a.geometry
    constant_depth = g.groups > 1 and g.channels == g.groups
    return (coordinate[0], 0, *coordinate[1:]) if tensor == "dK" and constant_depth else coordinate


def _assert_shows(page, a: Arrays, tensor: str, coordinate: tuple[int, ...], *, reads: bool = True) -> None:
    """The page shows `tensor` at `coordinate`: the reference's products, sum and value, agreeing;
    for a 2-D layer, the first group's planes with exactly the cells its products read outlined."""
    shown = page.evaluate(_SHOWN)
    index = _entry(a, tensor, coordinate)
    label = f"{tensor}[{','.join(map(str, index))}]"
    assert (shown["tensor"], tuple(shown["coordinate"])) == (tensor, coordinate)
    assert shown["hash"] == f"#{tensor}={','.join(map(str, coordinate))}"
    factors, truth = _expected(a, tensor, index)
    assert any(math.prod(values) for values in factors), "a coordinate whose products are all 0 tests little"
    assert [tuple(float(value) for value in listed.split()) for listed, _ in shown["rows"]] == factors
    assert [float(product) for _, product in shown["rows"]] == [math.prod(values) for values in factors]
    scale = sum(abs(math.prod(values)) for values in factors) + abs(truth)
    assert float(shown["total"]) == pytest.approx(truth, rel=0, abs=1e-12 * scale)
    assert float(shown["computed"]) == pytest.approx(truth, rel=0, abs=1e-12 * scale)
    assert shown["agree"] == "true"
    assert shown["agreement"] == f"✓ The sum = {label} computed by {COMPUTED_BY[tensor]}."
    assert shown["status"].startswith(f"{label} = ") and shown["status"].endswith("products agrees.")
    if reads:
        expected = {name: (plane, cells) for name, (plane, cells) in _expected_reads(a, tensor, index).items()}
        assert {name: (plane, set(cells)) for name, plane, cells in shown["planes"]} == expected
        assert len(shown["planes"]) == len(expected)


def _go(page, tensor: str, coordinate: tuple[int, ...]) -> None:
    """Follow a link to a coordinate (the hash), and wait for the page to show it."""
    page.evaluate(f"location.hash = '#{tensor}={','.join(map(str, coordinate))}'")
    # Polled from here: the page's policy forbids the string evaluation wait_for_function would use.
    for _ in range(100):
        if page.evaluate("document.querySelector('input[name=explorer-tensor]:checked').value") == tensor \
                and _coordinate(page) == coordinate:
            return
        page.wait_for_timeout(20)
    raise AssertionError(f"the page did not go to {tensor} {coordinate}")


def _type_coordinate(page, coordinate: tuple[int, ...]) -> None:
    for i, value in enumerate(coordinate):
        page.fill(f"#explorer-coordinate-{i}", str(value))


def test_the_seed_page_shows_the_reference_at_coordinates_typed_and_chosen(open_page, seed_data):
    page = open_page(seed_data)
    _assert_shows(page, SEED_ARRAYS, "dX", (0, 0, 10, 10))  # the centre, all 45 products non-zero
    assert page.text_content("#explorer-formula-at") == "dX[0,0,10,10] = Σ_f Σ_u',v' P[0,f,10+u',10+v']·K'[0,f,u',v']"
    for coordinate in [(0, 2, 0, 19), (0, 1, 7, 3)]:
        _type_coordinate(page, coordinate)
        _assert_shows(page, SEED_ARRAYS, "dX", coordinate)
    # A border coordinate reads padding: its zero products are counted, and listed on request.
    _type_coordinate(page, (0, 0, 0, 0))
    first = page.locator("#explorer-products tbody").first
    assert first.locator(".zeros td").text_content().startswith("8 products are 0")
    assert first.locator("tr.zero-product:visible").count() == 0
    first.get_by_role("button", name="show the zero products of f=0").click()
    assert first.locator("tr.zero-product:visible").count() == 8
    assert page.locator('figure[data-tensor="P"] td.read.zero').count() == 8
    page.check("#explorer-tensor-1")
    _assert_shows(page, SEED_ARRAYS, "dK", (0, 0, 1, 1))
    page.select_option("#explorer-group", "0")
    page.check("#explorer-tensor-2")
    _assert_shows(page, SEED_ARRAYS, "O", (0, 0, 9, 9))
    assert page.text_content("#explorer-formula-at") == "O[0,0,9,9] = b[0] + Σ_c Σ_u,v X[0,c,9+u,9+v]·K[0,c,u,v]"
    page.click("#explorer-group-next")  # c=1: the planes of channel 1
    assert page.eval_on_selector_all('figure[data-tensor="K"]', "figures => figures.map(f => f.dataset.plane)") == ["0,1"]


def test_the_keyboard_steps_the_coordinate_like_an_odometer(open_page, seed_data):
    page = open_page(seed_data)
    page.focus("#explorer-pictures")
    for key, coordinate in [("ArrowRight", (0, 0, 10, 11)), ("ArrowDown", (0, 0, 11, 11)),
                            ("ArrowLeft", (0, 0, 11, 10)), ("ArrowUp", (0, 0, 10, 10))]:
        page.keyboard.press(key)
        assert _coordinate(page) == coordinate, key
    _type_coordinate(page, (0, 0, 4, 19))
    page.focus("#explorer-coordinate-3")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "explorer-next"
    page.keyboard.press("Enter")  # x=19 is the last: carry into y
    _assert_shows(page, SEED_ARRAYS, "dX", (0, 0, 5, 0))
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")
    _assert_shows(page, SEED_ARRAYS, "dX", (0, 0, 6, 1))
    assert page.get_attribute("#explorer-status", "aria-live") == "polite"


def test_the_hash_opens_a_coordinate_and_a_bad_one_falls_back_to_the_centre(open_page, seed_data):
    page = open_page(seed_data, "#dK=2,1,0,2")
    _assert_shows(page, SEED_ARRAYS, "dK", (2, 1, 0, 2))
    _go(page, "O", (0, 4, 17, 0))
    _assert_shows(page, SEED_ARRAYS, "O", (0, 4, 17, 0))
    page.evaluate("location.hash = '#dX=0,0,20,1'")  # y out of range
    page.wait_for_function("location.hash === '#dX=0,0,10,10'")
    _assert_shows(page, SEED_ARRAYS, "dX", (0, 0, 10, 10))
    assert _coordinate(open_page(seed_data, "#nonsense")) == (0, 0, 10, 10)


# A coordinate of each explorer per geometry: the last sample and group, products of both kinds.
OTHER_GEOMETRIES = {
    "1x1": (ONE_BY_ONE, {"dX": (0, 3, 5, 5), "dK": (2, 3, 0, 0), "O": (0, 2, 5, 5)}),
    "1d": (ONE_D, {"dX": (0, 2, 11), "dK": (3, 2, 2), "O": (0, 3, 5)}),
    "3d": (THREE_D, {"dX": (0, 1, 4, 4, 4), "dK": (2, 1, 1, 1, 1), "O": (0, 2, 3, 3, 3)}),
    "batch-groups": (BATCH_GROUPS, {"dX": (1, 2, 5, 7), "dK": (5, 1, 2, 2), "O": (1, 5, 3, 3)}),
    # dK's coordinate is (f, u, v): the depth index is not a variable, so it is not asked for.
    "depthwise": (DEPTHWISE, {"dX": (0, 2, 0, 5), "dK": (2, 0, 2), "O": (0, 1, 5, 0)}),
    "uneven": (UNEVEN, {"dX": (0, 1, 7, 6), "dK": (2, 1, 0, 2), "O": (0, 2, 3, 3)}),
}


@pytest.mark.parametrize("geometry, coordinates", OTHER_GEOMETRIES.values(), ids=OTHER_GEOMETRIES)
def test_every_explorer_on_other_geometries(open_page, geometry, coordinates):
    data, a = _data(geometry, seed=1)
    page = open_page(data)
    for tensor, coordinate in coordinates.items():
        _go(page, tensor, coordinate)
        _assert_shows(page, a, tensor, coordinate, reads=geometry.ndim == 2)


def test_big_planes_fit_and_a_longer_one_shows_a_window_round_the_reads(open_page):
    data, a = _data(resolve_geometry("2x58x58", "2x2x3x3"))
    page = open_page(data, viewport={"width": 1100, "height": 900})
    _assert_shows(page, a, "dX", (0, 0, 29, 29))
    assert page.text_content('figure[data-tensor="P"] figcaption') == "P[0,0]: 60 rows, 60 columns; 9 cells read"
    assert page.evaluate("[...document.querySelectorAll('#explorer-pictures figure')].every("
                         "figure => figure.getBoundingClientRect().right <= innerWidth)")
    data, a = _data(resolve_geometry("2x150", "2x2x3"))
    page = open_page(data)
    _assert_shows(page, a, "dX", (0, 0, 75), reads=False)
    assert page.text_content('figure[data-tensor="P"] figcaption') == "P[0]: 2 rows, columns 72–80 of 152; 6 cells read"


def test_reads_outside_a_tensor_are_zeros_drawn_outside_it(open_page):
    data, a = _data(BATCH_GROUPS)
    products = next(term for term in data["explorers"][2]["formula"]["terms"] if len(term["factors"]) == 2)
    window = products["factors"][0]
    assert window["tensor"] == "Xp"
    window["tensor"] = "X"  # the unpadded input: a window over the padding reads outside X
    data["tensors"]["X"] = _tensor(a.x)
    for index, padding in zip(window["index"][2:], BATCH_GROUPS.padding):
        index["const"] = -padding
    page = open_page(data, "#O=1,4,0,3")
    _assert_shows(page, a, "O", (1, 4, 0, 3), reads=False)
    outside = page.eval_on_selector_all('figure[data-tensor="X"] td.read.outside', "cells => cells.map(c => c.dataset.cell)")
    assert sorted(outside) == ["-1,5", "-1,7", "-1,9", "1,9", "3,9"]  # row -1 and column 9 of X


def test_a_value_that_disagrees_with_its_products_is_said_loudly(open_page):
    data, a = _data(ONE_BY_ONE)
    wrong = a.dx.copy()
    wrong[0, 0, 3, 3] += 1e-9
    data["tensors"]["dX"] = _tensor(wrong)
    page = open_page(data)
    assert page.get_attribute("#explorer-agree", "data-agree") == "false"
    assert page.text_content("#explorer-agree").startswith("✗ The sum does NOT equal dX[0,0,3,3] computed by the steps")
    assert "does NOT agree" in page.text_content("#explorer-status")
    page.focus("#explorer-pictures")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#explorer-agree", "data-agree") == "true"


def test_text_that_looks_like_markup_stays_text(open_page):
    data, _ = _data(ONE_BY_ONE)
    nasty = "</script><!-- <b>bold</b> & ${title}"
    data["sections"][-1] = {"title": nasty, "text": nasty}
    data["explorers"][0]["note"] = nasty
    page = open_page(data)
    assert page.text_content("main section.step:last-of-type h2") == nasty
    assert page.text_content("main section.step:last-of-type pre") == nasty
    assert page.text_content("#explorer-note") == nasty
    assert page.get_attribute("#explorer-agree", "data-agree") == "true"


def _luminance(css_colour: str) -> float:
    red, green, blue = (int(part) for part in css_colour[css_colour.index("(") + 1:-1].split(",")[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def test_dark_mode_follows_the_system_and_print_shows_the_worked_coordinate(open_page):
    data, _ = _data(ONE_BY_ONE)
    background = "getComputedStyle(document.body).backgroundColor"
    assert _luminance(open_page(data).evaluate(background)) > 0.9
    dark = open_page(data, color_scheme="dark")
    assert _luminance(dark.evaluate(background)) < 0.15
    assert _luminance(dark.evaluate("getComputedStyle(document.body).color")) > 0.8
    dark.emulate_media(media="print")
    assert _luminance(dark.evaluate(background)) > 0.9
    assert dark.is_hidden("#explorer-controls") and dark.is_hidden("#explorer-group")
    assert dark.is_hidden(".zeros button") or dark.locator(".zeros").count() == 0
    assert dark.is_visible(".products-table") and dark.is_visible('figure[data-tensor="P"]')
    assert dark.evaluate("getComputedStyle(document.querySelector('#explorer-products')).maxHeight") == "none"
    assert dark.evaluate("getComputedStyle(document.querySelector('figure')).breakInside") == "avoid"


def test_a_screenshot_of_the_seed_page(open_page, seed_data, tmp_path):
    # The first screen: the answer and the explorer at work (the whole page is several screens long).
    page = open_page(seed_data, "#dX=0,1,9,10", viewport={"width": 1100, "height": 1350})
    _assert_shows(page, SEED_ARRAYS, "dX", (0, 1, 9, 10))
    picture = tmp_path / "explain-page.png"
    page.screenshot(path=str(picture), full_page=False)
    assert picture.stat().st_size > 10_000
    if os.environ.get("CONVGRAD_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(picture, SCREENSHOT)


def test_a_group_of_thousands_of_products_lists_the_rest_on_request(open_page):
    data, a = _data(resolve_geometry("1x34x34", "1x1x3x3"))  # dK: 32x32 = 1024 products in one group
    page = open_page(data, "#dK=0,0,1,1")
    assert page.locator("tr[data-product]").count() == 1000
    page.get_by_role("button", name="list the other 24 products").click()
    _assert_shows(page, a, "dK", (0, 0, 1, 1))
