"""Writes configs/standard.toml: every pair of settings in at least one small 2-D case, plus 1-D and
3-D cases, and the sizes past which real kernels change their path.

A layer is often wrong only where two settings meet (groups with batch > 1, padding with
batch > 1), so the suite is a strength-2 covering array: for any two of the factors below, every
combination of their levels that can exist appears in some case. A greedy search (at each step,
the candidate case covering most pairs still missing, from a seeded random pool) finds one in a
few dozen cases instead of the thousands of the full product. tests/test_standard_suite.py reads
the shipped file back and checks the property from the geometries themselves.

There are two such arrays. The "basic" cases cover every pair of the settings every conv layer
has (batch, one stride and one padding for all axes, kernel and input shape, F against C, dtype),
so a layer without dilation, groups or per-axis settings still has all of its pairs checked; the
"pairs" cases cover every pair of all the factors.

The "sizes" cases cross the thresholds where real kernels switch to another code path (blocks of
16 channels, chunks of 8 items, Winograd for odd outputs of 9 and more, FFT for kernels of 5 and
more, a patchify path when kernel == stride >= 4, a 1x1 fast path, bands and split reductions past
4096 output positions, int16 indices past 32767 elements, clipping past |100|): a layer wrong only
past one of them passes every small case. Past the size budget (numerics/plan.py) convgrad checks
such a case against the reference with a few directions, so they cost about as much as a small one.

    python configs/generate_standard.py > configs/standard.toml
"""

from __future__ import annotations

import itertools
import random
from typing import Iterator, Optional

import numpy as np

FACTORS: dict[str, tuple[str, ...]] = {
    "batch": ("1", "2", "5"),
    "stride": ("1", "2", "3", "per-axis"),
    "padding": ("0", "1", "2", "per-axis"),
    "dilation": ("1", "2", "per-axis"),
    "groups": ("1", "2", "depthwise", "depthwise x2"),
    "kernel": ("square", "rectangular", "1x1"),
    "input": ("square", "non-square", "stride does not tile"),
    "channels": ("F = C", "F < C", "F > C"),
    "dtype": ("float64", "float32"),
}

BASIC_FACTORS: dict[str, tuple[str, ...]] = {
    factor: tuple(level for level in levels if level != "per-axis")
    for factor, levels in FACTORS.items()
    if factor not in ("dilation", "groups")
}

Case = dict[str, str]
Factors = dict[str, tuple[str, ...]]


def feasible(case: Case) -> bool:
    """Whether a (partial) case can exist: depthwise fixes F against C; only a stride can fail to tile."""
    groups, channels = case.get("groups"), case.get("channels")
    if groups == "depthwise" and channels not in (None, "F = C"):
        return False
    if groups == "depthwise x2" and channels not in (None, "F > C"):
        return False
    if case.get("input") == "stride does not tile" and case.get("stride") == "1":
        return False
    return True


def _pairs(case: Case, factors: Factors) -> Iterator[tuple[str, str, str, str]]:
    for a, b in itertools.combinations(factors, 2):
        yield a, case[a], b, case[b]


def required_pairs(factors: Factors) -> set[tuple[str, str, str, str]]:
    needed = set()
    for a, b in itertools.combinations(factors, 2):
        for va in factors[a]:
            for vb in factors[b]:
                if feasible({a: va, b: vb}):
                    needed.add((a, va, b, vb))
    return needed


def covering_cases(factors: Factors, seed: int = 0, pool: int = 400) -> list[Case]:
    rng = random.Random(seed)
    missing = required_pairs(factors)
    cases: list[Case] = []
    while missing:
        best: Optional[Case] = None
        best_gain = 0
        # Seed each candidate with a missing pair so every step makes progress.
        for _ in range(pool):
            a, va, b, vb = rng.choice(sorted(missing))
            candidate = {a: va, b: vb}
            for factor, levels in factors.items():
                if factor not in candidate:
                    candidate[factor] = rng.choice(levels)
            if not feasible(candidate):
                continue
            gain = sum(1 for pair in _pairs(candidate, factors) if pair in missing)
            if gain > best_gain:
                best, best_gain = candidate, gain
        assert best is not None, "no feasible candidate: the constraints exclude a required pair"
        cases.append(best)
        missing -= set(_pairs(best, factors))
    # Factors outside the array take their plainest level.
    return [{factor: case.get(factor, levels[0]) for factor, levels in FACTORS.items()} for case in cases]


# --- from levels to a small concrete layer -------------------------------------------------------


def _per_axis(level: str, values: dict[str, tuple[int, int]]) -> tuple[int, int]:
    return values[level]


def concrete(case: Case, index: int) -> dict[str, object]:
    """The smallest layer with these levels: C, F <= 6, kernels <= 3, inputs <= 12."""
    groups_level, channels = case["groups"], case["channels"]
    if groups_level == "1":
        c, f, groups = {"F = C": (3, 3), "F < C": (3, 2), "F > C": (2, 4)}[channels] + (1,)
    elif groups_level == "2":  # C = 4 so that groups 2 is never also depthwise
        c, f, groups = {"F = C": (4, 4), "F < C": (4, 2), "F > C": (4, 6)}[channels] + (2,)
    elif groups_level == "depthwise":
        c, f, groups = 3, 3, 3
    else:
        c, f, groups = 3, 6, 3
    kernel = {"square": (3, 3), "rectangular": (3, 2) if index % 2 else (2, 3), "1x1": (1, 1)}[case["kernel"]]
    stride = _per_axis(case["stride"], {"1": (1, 1), "2": (2, 2), "3": (3, 3), "per-axis": (2, 1) if index % 2 else (1, 3)})
    padding = _per_axis(case["padding"], {"0": (0, 0), "1": (1, 1), "2": (2, 2), "per-axis": (1, 0) if index % 2 else (0, 2)})
    dilation = _per_axis(case["dilation"], {"1": (1, 1), "2": (2, 2), "per-axis": (2, 1) if index % 2 else (1, 2)})
    spatial = _spatial(case["input"], kernel, stride, padding, dilation)
    return {
        "in": f"{c}x{spatial[0]}x{spatial[1]}",
        "kernels": f"{f}x{c // groups}x{kernel[0]}x{kernel[1]}",
        "batch": int(case["batch"]),
        "stride": _axes(stride),
        "padding": _axes(padding),
        "dilation": _axes(dilation),
        "groups": groups,
        "dtype": case["dtype"],
    }


def _spatial(level: str, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
             dilation: tuple[int, int]) -> tuple[int, int]:
    """The smallest H, W (2 to 8 outputs per axis, some window reading x and not only padding on
    every axis): square (H == W), or non-square and either tiled by the windows or leaving input
    positions that no window reaches, as the level says."""

    def left_over(size: int, axis: int) -> int:  # input positions past the last window
        return (size + 2 * padding[axis] - dilation[axis] * (kernel[axis] - 1) - 1) % stride[axis]

    def outputs(size: int, axis: int) -> int:
        reach = size + 2 * padding[axis] - dilation[axis] * (kernel[axis] - 1) - 1
        return reach // stride[axis] + 1 if reach >= 0 else 0

    def reads_input(size: int, axis: int) -> bool:  # some window reads x, not only padding
        taps = dilation[axis] * np.arange(kernel[axis])
        starts = stride[axis] * np.arange(outputs(size, axis)) - padding[axis]
        read = starts[:, None] + taps[None, :]
        return bool(((read >= 0) & (read < size)).any())

    sizes = sorted(itertools.product(range(2, 16), repeat=2), key=lambda hw: (hw[0] + hw[1], hw))
    for h, w in sizes:
        if not all(2 <= outputs(size, axis) <= 8 for axis, size in enumerate((h, w))):
            continue
        if not (reads_input(h, 0) and reads_input(w, 1)):
            continue
        tiles = left_over(h, 0) == 0 and left_over(w, 1) == 0
        # As the test classifies them: H == W is square; else a left-over input does not tile.
        if {"square": h == w, "non-square": h != w and tiles}.get(level, h != w and not tiles):
            return h, w
    raise AssertionError(f"no input of at most 15x15 fits {level}")


def _axes(values: tuple[int, int]) -> object:
    return values[0] if values[0] == values[1] else f"{values[0]}x{values[1]}"


def _toml(value: object) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def render(sections: dict[str, list[Case]]) -> str:
    lines = [
        "# The suite a CI gate should run. Generated by configs/generate_standard.py: every pair of",
        "# settings below meets in at least one 2-D case (tests/test_standard_suite.py checks it),",
        "# then 1-D and 3-D cases, then sizes past the thresholds where real kernels change path. Layers are",
        "# small so that every coordinate is checked in seconds (the sizes: against the reference);",
        "# 1-D and 3-D cases are skipped for implementations that declare spatial_dims = (2,).",
        "#",
        *(f"#   {factor}: {', '.join(levels)}" for factor, levels in FACTORS.items()),
        "# The basic cases cover every pair of the factors without dilation, groups or per-axis values.",
        'name = "standard"',
        "",
    ]
    for section, cases in sections.items():
        for index, case in enumerate(cases, start=1):
            layer = concrete(case, index)
            label = ", ".join(f"{factor} {case[factor]}" for factor in FACTORS)
            lines += ["[[case]]", f'name = "{section} {index}"', f"# {label}"]
            lines += [f"{key} = {_toml(value)}" for key, value in layer.items() if not _default(key, value)]
            lines.append("")
    lines += EXTRA_CASES + SIZE_CASES
    return "\n".join(lines)


def _default(key: str, value: object) -> bool:
    return {"batch": 1, "stride": 1, "padding": 0, "dilation": 1, "groups": 1, "dtype": "float64"}.get(key) == value


SIZE_CASES = [
    "[[case]]",
    'name = "sizes 1: C 17, F 17, batch 11"',
    "# C 17 and F 17 (past blocks of 16 and of 8), batch 11 (past chunks of 8), an odd 9x9 output of a 3x3",
    "# stride-1 kernel (Winograd tiles), 2.3e6 multiply-adds per forward",
    'in = "17x9x9"',
    'kernels = "17x17x3x3"',
    "batch = 11",
    "padding = 1",
    "",
    "[[case]]",
    'name = "sizes 2: 4160 outputs, float32"',
    "# 64x65 = 4160 output positions (thread bands, split reductions), C*Hp*Wp = 35376 (past int16 indices),",
    "# dK and db sum 4160 float32 products each, |dK| past 100 (a clip shows)",
    'in = "8x64x65"',
    'kernels = "2x8x3x3"',
    "padding = 1",
    'dtype = "float32"',
    "",
    "[[case]]",
    'name = "sizes 3: 5x5, C 17, float32"',
    "# a kernel of 5 (FFT paths), C 17 and F 19, an odd 11x10 'same' output, float32 sums of 425 products",
    'in = "17x11x10"',
    'kernels = "19x17x5x5"',
    "batch = 2",
    "padding = 2",
    'dtype = "float32"',
    "",
    "[[case]]",
    'name = "sizes 4: 7x7 stem"',
    "# the 7x7 stride-2 kernel of a ResNet stem, F 20",
    'in = "3x23x23"',
    'kernels = "20x3x7x7"',
    "stride = 2",
    "padding = 3",
    "",
    "[[case]]",
    'name = "sizes 5: 4x4 patches"',
    "# non-overlapping 4x4 patches (a patch-embedding fast path)",
    'in = "3x16x20"',
    'kernels = "12x3x4x4"',
    "batch = 2",
    "stride = 4",
    "",
    "[[case]]",
    'name = "sizes 6: 1x1, s2, padded"',
    "# a 1x1 kernel with stride 2 and padding (a subsampling fast path must not drop the padding)",
    'in = "10x9x7"',
    'kernels = "6x10x1x1"',
    "stride = 2",
    "padding = 1",
    "",
]

EXTRA_CASES = [
    "[[case]]",
    'name = "1-D"',
    'in = "4x11"',
    'kernels = "6x2x3"',
    "batch = 2",
    "stride = 2",
    "padding = 1",
    "groups = 2",
    "",
    "[[case]]",
    'name = "1-D dilated, float32"',
    'in = "3x12"',
    'kernels = "2x3x3"',
    "dilation = 2",
    'dtype = "float32"',
    "",
    "[[case]]",
    'name = "3-D"',
    'in = "2x4x5x6"',
    'kernels = "3x2x2x3x2"',
    "padding = 1",
    "batch = 2",
    "",
    "[[case]]",
    'name = "1-D grouped, batch 5, dilated"',
    'in = "4x13"',
    'kernels = "4x2x3"',
    "batch = 5",
    "groups = 2",
    "dilation = 2",
    "padding = 2",
    "",
    "[[case]]",
    'name = "3-D grouped, batch 2, float32"',
    'in = "4x3x4x5"',
    'kernels = "4x2x2x2x2"',
    "groups = 2",
    "batch = 2",
    'dtype = "float32"',
    "",
    "[[case]]",
    'name = "3-D depthwise x2, strided, padded"',
    'in = "2x5x4x6"',
    'kernels = "4x1x3x2x3"',
    "groups = 2",
    'stride = "2x1x3"',
    "padding = 1",
    "",
    "[[case]]",
    'name = "3-D strided, dilated per axis"',
    'in = "2x5x6x7"',
    'kernels = "2x2x2x2x2"',
    'stride = "1x2x1"',
    'dilation = "2x1x1"',
    "",
]


if __name__ == "__main__":
    print(render({"basic": covering_cases(BASIC_FACTORS), "pairs": covering_cases(FACTORS)}), end="")
