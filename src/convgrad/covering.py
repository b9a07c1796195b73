"""Covering arrays of conv settings: every pair of factor levels in some small 2-D case.

A layer is often wrong only where two settings meet (groups with batch > 1, 'same' padding with a
non-square input), so a suite is a strength-2 covering array: for any two of the FACTORS, every
combination of their levels that can exist appears in some case. A greedy search finds one in a
few dozen cases instead of the thousands of the full product.

Two uses: configs/generate_standard.py writes the shipped, full-domain array; and a layer that
cannot run some of the standard cases (declared limits, `supports`, `Unsupported`) gets, at run
time, cases covering every pair of the settings it does support (`domain_cover`): its own domain,
not the full one, so a limit never costs it the pairs it has.

Levels are words (`Case`); `concrete` makes the smallest layer with them, `levels_of` reads them
back from any small 2-D geometry.
"""

from __future__ import annotations

import functools
import itertools
import random
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from convgrad.errors import GeometryError
from convgrad.geometry import LayerGeometry, resolve_geometry

__all__ = [
    "FACTORS",
    "BASIC_FACTORS",
    "Case",
    "Pair",
    "feasible",
    "pairs_of",
    "required_pairs",
    "covering_cases",
    "concrete",
    "geometry_of",
    "levels_of",
    "DomainCover",
    "domain_cover",
]

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

# What every conv layer has: no dilation, no groups, one value for all axes.
BASIC_FACTORS: dict[str, tuple[str, ...]] = {
    factor: tuple(level for level in levels if level != "per-axis")
    for factor, levels in FACTORS.items()
    if factor not in ("dilation", "groups")
}

Case = dict[str, str]
Factors = dict[str, tuple[str, ...]]
Pair = tuple[str, str, str, str]  # factor, level, factor, level (factors in FACTORS order)


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


def pairs_of(case: Case, factors: Iterable[str]) -> Iterator[Pair]:
    """Every pair of `factors` (in their order) with the case's levels."""
    for a, b in itertools.combinations(factors, 2):
        yield a, case[a], b, case[b]


def required_pairs(factors: Factors) -> set[Pair]:
    """Every pair of levels of `factors` that some feasible case has."""
    needed = set()
    for a, b in itertools.combinations(factors, 2):
        for va in factors[a]:
            for vb in factors[b]:
                if feasible({a: va, b: vb}):
                    needed.add((a, va, b, vb))
    return needed


def covering_cases(factors: Factors, seed: int = 0, pool: int = 400) -> list[Case]:
    """A covering array of `factors` (every required pair in some case), greedy from a seeded
    random pool; factors outside `factors` take their plainest level."""
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
            gain = sum(1 for pair in pairs_of(candidate, factors) if pair in missing)
            if gain > best_gain:
                best, best_gain = candidate, gain
        assert best is not None, "no feasible candidate: the constraints exclude a required pair"
        cases.append(best)
        missing -= set(pairs_of(best, factors))
    return [{factor: case.get(factor, levels[0]) for factor, levels in FACTORS.items()} for case in cases]


# --- from levels to a small concrete layer, and back ---------------------------------------------


def concrete(case: Case, index: int, variant: int = 0) -> dict[str, object]:
    """The smallest layer with these levels (C, F <= 6, kernels <= 3, inputs <= 15), as suite-file
    values; `index` picks which way a rectangular kernel or a per-axis value leans. `variant` 1
    makes a rectangular kernel 3x1 (odd on both axes, as 'same' padding needs) instead of 3x2: a
    layer's domain holds both."""
    groups_level, channels = case["groups"], case["channels"]
    if groups_level == "1":
        c, f, groups = {"F = C": (3, 3), "F < C": (3, 2), "F > C": (2, 4)}[channels] + (1,)
    elif groups_level == "2":  # C = 4 so that groups 2 is never also depthwise
        c, f, groups = {"F = C": (4, 4), "F < C": (4, 2), "F > C": (4, 6)}[channels] + (2,)
    elif groups_level == "depthwise":
        c, f, groups = 3, 3, 3
    else:
        c, f, groups = 3, 6, 3
    odd = index % 2 == 1
    rectangular = ((3, 2), (2, 3)) if variant == 0 else ((3, 1), (1, 3))
    kernel = {"square": (3, 3), "rectangular": rectangular[0 if odd else 1], "1x1": (1, 1)}[case["kernel"]]
    stride = {"1": (1, 1), "2": (2, 2), "3": (3, 3), "per-axis": (2, 1) if odd else (1, 3)}[case["stride"]]
    padding = {"0": (0, 0), "1": (1, 1), "2": (2, 2), "per-axis": (1, 0) if odd else (0, 2)}[case["padding"]]
    dilation = {"1": (1, 1), "2": (2, 2), "per-axis": (2, 1) if odd else (1, 2)}[case["dilation"]]
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


def geometry_of(case: Case, index: int, variant: int = 0) -> LayerGeometry:
    """The layer `concrete` describes."""
    values = concrete(case, index, variant)
    return resolve_geometry(
        str(values["in"]), str(values["kernels"]), batch=int(str(values["batch"])), stride=str(values["stride"]),
        padding=str(values["padding"]), dilation=str(values["dilation"]), groups=int(str(values["groups"])),
        dtype=str(values["dtype"]),
    )


@functools.lru_cache(maxsize=None)  # a domain asks for the same few hundred again and again
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

    for h, w in sorted(itertools.product(range(2, 16), repeat=2), key=lambda hw: (hw[0] + hw[1], hw)):
        if not all(2 <= outputs(size, axis) <= 8 for axis, size in enumerate((h, w))):
            continue
        if not (reads_input(h, 0) and reads_input(w, 1)):
            continue
        tiles = left_over(h, 0) == 0 and left_over(w, 1) == 0
        # As levels_of classifies them: H == W is square; else a left-over input does not tile.
        if {"square": h == w, "non-square": h != w and tiles}.get(level, h != w and not tiles):
            return h, w
    raise AssertionError(f"no input of at most 15x15 fits {level}")


def _axes(values: tuple[int, int]) -> object:
    return values[0] if values[0] == values[1] else f"{values[0]}x{values[1]}"


def _one_or_per_axis(values: tuple[int, ...]) -> str:
    return "per-axis" if len(set(values)) > 1 else str(values[0])


def levels_of(g: LayerGeometry) -> Optional[Case]:
    """A small 2-D case's level of every factor, read from its geometry; None for a geometry
    outside the factors (another rank, or a level no factor has: batch 11, C 17, padding that
    differs before and after, ...)."""
    if g.ndim != 2 or g.uneven_padding:
        return None
    c, f = g.channels, g.filters
    if g.groups == 1:
        groups = "1"
    elif g.groups == c and f == c:
        groups = "depthwise"
    elif g.groups == c and f == 2 * c:
        groups = "depthwise x2"
    else:
        groups = str(g.groups)
    k = g.kernel_size
    left_over = any(g.left_over)
    case = {
        "batch": str(g.batch),
        "stride": _one_or_per_axis(g.stride),
        "padding": _one_or_per_axis(g.padding),
        "dilation": _one_or_per_axis(g.dilation),
        "groups": groups,
        "kernel": "1x1" if all(v == 1 for v in k) else "square" if len(set(k)) == 1 else "rectangular",
        "input": "square" if len(set(g.spatial)) == 1 else "stride does not tile" if left_over else "non-square",
        "channels": "F = C" if f == c else "F < C" if f < c else "F > C",
        "dtype": g.dtype,
    }
    if any(level not in FACTORS[factor] for factor, level in case.items()):
        return None
    return case


# --- the pairs of one layer's own domain ---------------------------------------------------------


@dataclass(frozen=True)
class DomainCover:
    """The pairs of settings a layer supports, and cases that cover the ones a suite left out."""

    pairs: frozenset[Pair]  # every pair some case the layer accepts has
    covered: frozenset[Pair]  # of those, the pairs of the cases already checked
    added: tuple[LayerGeometry, ...]  # small cases the layer accepts that cover the rest


@functools.lru_cache(maxsize=1)  # the same for every layer: made once, read by every suite
def _every_case() -> tuple[tuple[Case, LayerGeometry], ...]:
    """Every feasible combination of the FACTORS' levels, with its concrete layer (both rectangular
    kernels for a rectangular level)."""
    every = []
    for index, combination in enumerate(itertools.product(*FACTORS.values())):
        case = dict(zip(FACTORS, combination))
        if not feasible(case):
            continue
        for variant in (0, 1) if case["kernel"] == "rectangular" else (0,):
            try:
                every.append((case, geometry_of(case, index, variant)))
            except GeometryError:  # pragma: no cover - concrete makes only layers that exist
                continue
    return tuple(every)


def domain_cover(
    accepts: Callable[[LayerGeometry], bool], checked: Iterable[LayerGeometry],
    refused: Iterable[LayerGeometry] = (),
) -> DomainCover:
    """Cases covering every pair of the FACTORS that some case `accepts` (and that is not one of
    `refused`, the cases the layer turned down at run time) has, beyond the pairs of the cases
    already `checked`; greedy over every feasible case, deterministic."""
    turned_down = set(refused)
    candidates = [(case, geometry) for case, geometry in _every_case()
                  if geometry not in turned_down and accepts(geometry)]
    holding: dict[Pair, list[int]] = {}
    for number, (case, _) in enumerate(candidates):
        for pair in pairs_of(case, FACTORS):
            holding.setdefault(pair, []).append(number)
    pairs = frozenset(holding)
    read = [levels_of(g) for g in checked]
    covered = frozenset(pair for levels in read if levels is not None for pair in pairs_of(levels, FACTORS)) & pairs
    missing = set(pairs - covered)
    added: list[LayerGeometry] = []
    while missing:
        # Among the cases holding the first missing pair, the one covering most missing pairs.
        first = min(missing)
        best = max(holding[first], key=lambda n: (sum(p in missing for p in pairs_of(candidates[n][0], FACTORS)), -n))
        case, geometry = candidates[best]
        added.append(geometry)
        missing -= set(pairs_of(case, FACTORS))
    return DomainCover(pairs=pairs, covered=covered, added=tuple(added))
