"""Fuzzing a layer: random geometries until one fails, then the simplest geometry that still fails.

    seed -> random_geometries (1-D to 3-D, batch, groups, depthwise, stride, padding, dilation, per
            axis, float64 and float32; one in LARGE_SHARE past a size where real kernels change path)
         -> run_case_isolated on each, until one fails or the budget is spent
         -> shrink: simpler candidates (shrink_candidates), keeping each that still fails, until none does

Written by hand rather than with hypothesis, whose search and shrinking this imitates: convgrad's
runtime depends on numpy, click and rich only. Nothing here prints; render/fuzz.py draws the result.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Literal, NamedTuple, Optional, Sequence

import numpy as np

from convgrad.errors import GeometryError
from convgrad.geometry import Dtype, LayerGeometry, resolve_geometry
from convgrad.adapters.protocol import Implementation
from convgrad.options import CheckOptions, FuzzOptions
from convgrad.report import CaseReport
from convgrad.run.isolation import run_case_isolated

__all__ = [
    "FEATURES",
    "Coverage",
    "FuzzFailure",
    "FuzzResult",
    "FuzzStatus",
    "complexity",
    "failing_parts",
    "features",
    "run_fuzz",
    "random_geometries",
    "shrink_candidates",
]

# Gradient coordinates (x, w and b) of a drawn small layer at most: keeps a check to a fraction of
# a second, so a minute tries a few hundred layers. Larger small draws are redrawn.
MAX_COORDINATES = 600
# The share of draws past a size real kernels switch path at (configs/generate_standard.py names
# them): most such layers are past the size budget and checked against the reference
# (numerics/plan.py), at about the cost of a small one.
LARGE_SHARE = 0.25

# What a run covered, counted over the geometries checked (a geometry counts once per feature it has).
FEATURES = (
    "1-D", "2-D", "3-D",
    "groups 1", "groups > 1", "depthwise", "depthwise x2",
    "batch > 1", "strided", "padded", "dilated", "per-axis values", "stride does not tile",
    "rectangular kernel", "1x1 kernel", "float32",
    "C/g or F 17 to 40", "batch 9 to 13", "over 4096 outputs", "kernel 5 or more", "kernel == stride >= 4",
)


def features(geometry: LayerGeometry) -> tuple[str, ...]:
    """The FEATURES `geometry` has, in their order."""
    g = geometry
    if g.groups == 1:
        grouping = "groups 1"
    elif g.groups != g.channels:
        grouping = "groups > 1"
    else:
        grouping = "depthwise" if g.filters == g.channels else "depthwise x2"
    per_axis = (g.stride, g.padding, g.dilation)
    untiled = any(
        (h + 2 * p - d * (k - 1) - 1) % s
        for h, k, s, p, d in zip(g.spatial, g.kernel_size, g.stride, g.padding, g.dilation)
    )
    has = {
        f"{g.ndim}-D", grouping,
        *(["batch > 1"] if g.batch > 1 else []),
        *(["strided"] if any(s > 1 for s in g.stride) else []),
        *(["padded"] if any(g.padding) else []),
        *(["dilated"] if any(d > 1 for d in g.dilation) else []),
        *(["per-axis values"] if any(len(set(v)) > 1 for v in per_axis) else []),
        *(["stride does not tile"] if untiled else []),
        *(["rectangular kernel"] if len(set(g.kernel_size)) > 1 else []),
        *(["1x1 kernel"] if all(k == 1 for k in g.kernel_size) else []),
        *(["float32"] if g.dtype == "float32" else []),
        *(["C/g or F 17 to 40"] if any(17 <= n <= 40 for n in (g.channels // g.groups, g.filters)) else []),
        *(["batch 9 to 13"] if 9 <= g.batch <= 13 else []),
        *(["over 4096 outputs"] if math.prod(g.out_spatial) > 4096 else []),
        *(["kernel 5 or more"] if max(g.kernel_size) >= 5 else []),
        *(["kernel == stride >= 4"] if g.kernel_size == g.stride and min(g.stride) >= 4 else []),
    }
    return tuple(f for f in FEATURES if f in has)


@dataclass(frozen=True)
class Coverage:
    """How many of the geometries checked had each feature, in the order of FEATURES."""

    counts: tuple[tuple[str, int], ...] = tuple((f, 0) for f in FEATURES)

    def add(self, geometry: LayerGeometry) -> "Coverage":
        has = set(features(geometry))
        return Coverage(tuple((f, n + (f in has)) for f, n in self.counts))

    def count(self, feature: str) -> int:
        return dict(self.counts)[feature]


@dataclass(frozen=True)
class FuzzFailure:
    """The first geometry that failed, and the simplest one found that still fails."""

    first: CaseReport
    shrunk: CaseReport
    found_after: int  # geometries checked when it was found, itself included
    steps: int  # simpler geometries kept, one after another
    tries: int  # candidates checked while shrinking
    complete: bool  # no simpler candidate fails (False: the budget ran out first)


@dataclass(frozen=True)
class FuzzResult:
    """What `run_fuzz` did: what it checked and skipped, what that covered, and the failure it found."""

    implementation: str
    seed: int
    options: FuzzOptions
    checked: int
    skipped: int
    coverage: Coverage
    elapsed_s: float
    failure: Optional[FuzzFailure] = None
    skip_reasons: tuple[tuple[str, int], ...] = ()  # each reason, with how many geometries it skipped

    @property
    def passed(self) -> bool:
        """No geometry failed, and at least one was checked (a run that checked nothing proves nothing)."""
        return self.failure is None and self.checked > 0


@dataclass(frozen=True)
class FuzzStatus:
    """Where a run is, for a progress display: sent before each geometry is checked."""

    phase: Literal["searching", "shrinking"]
    geometry: LayerGeometry
    elapsed_s: float
    budget_s: float
    checked: int
    skipped: int
    steps: int = 0
    tries: int = 0


# --- drawing ------------------------------------------------------------------------------------

# Levels drawn from, with repeats for weight: half the layers strided, a third dilated, ...
_STRIDES = (1, 1, 2, 3)
_DILATIONS = (1, 1, 2)
_PADDINGS = (0, 0, 1, 2)
_GROUPINGS = ("groups 1", "groups 1", "groups 2", "depthwise", "depthwise x2")


def random_geometries(seed: int, dtypes: Sequence[Dtype] = ("float64", "float32")) -> Iterator[LayerGeometry]:
    """Endless random layers, small but for one in LARGE_SHARE; the same seed and dtypes give the
    same sequence.

    Each axis is built backwards from its output size, so every layer drawn exists: with out,
    kernel k, stride s, dilation d, padding p and a remainder r < s (r > 0: the stride does not
    tile the input), H = (out - 1)*s + d*(k - 1) + 1 + r - 2p.
    """
    rng = np.random.default_rng(seed)
    while True:
        if rng.random() < LARGE_SHARE:
            yield _draw_large(rng, dtypes)
            continue
        geometry = _draw(rng, dtypes)
        if geometry is not None and _coordinates(geometry) <= MAX_COORDINATES:
            yield geometry


def _draw_large(rng: np.random.Generator, dtypes: Sequence[Dtype]) -> LayerGeometry:
    """A 2-D layer past one threshold where real kernels change path, the rest of it small."""
    dtype = dtypes[int(rng.integers(0, len(dtypes)))]
    past = str(rng.choice(_THRESHOLDS))
    c, f, groups, batch = int(rng.integers(2, 7)), int(rng.integers(2, 7)), 1, int(rng.integers(1, 4))
    k, s, p = 3, 1, int(rng.integers(0, 2))
    out = [int(rng.integers(3, 8)), int(rng.integers(3, 8))]
    if past == "channels":  # blocks of 8 or 16 channels: C/g and F between 17 and 40, off the block
        groups = int(rng.choice((1, 1, 2)))
        c, f = groups * int(rng.integers(17, 41)), groups * int(rng.integers(9, 21))
    elif past == "batch":  # chunks of 8 items
        batch = int(rng.integers(9, 14))
    elif past == "positions":  # bands, split reductions and narrow indices past 4096 outputs
        out = [int(rng.integers(64, 72)), int(rng.integers(65, 80))]
        c, f, p = int(rng.integers(8, 11)), int(rng.integers(1, 3)), 1
    elif past == "odd outputs":  # Winograd tiles of 2 or 4 with a ragged edge
        out = [2 * int(rng.integers(4, 8)) + 1, int(rng.integers(9, 16))]
    elif past == "large kernel":  # FFT paths
        k, s = int(rng.choice((5, 7))), int(rng.choice((1, 2)))
        p = int(rng.integers(0, k // 2 + 1))
    elif past == "patches":  # kernel == stride >= 4
        k = s = int(rng.choice((4, 5)))
        p = 0
    else:  # a strided 1x1 with padding
        k, s, p = 1, 2, int(rng.integers(1, 3))
    spatial = [(o - 1) * s + k - 2 * p for o in out]
    return resolve_geometry(
        (c, *spatial), (f, c // groups, k, k), batch=batch, stride=s, padding=p, groups=groups, dtype=dtype
    )


_THRESHOLDS = ("channels", "batch", "positions", "odd outputs", "large kernel", "patches", "strided 1x1")


def _draw(rng: np.random.Generator, dtypes: Sequence[Dtype]) -> Optional[LayerGeometry]:
    ndim = int(rng.integers(1, 4))
    small = ndim == 3  # 3-D sizes multiply fast

    def per_axis(levels: Sequence[int]) -> list[int]:
        # One value for every axis half the time, else one per axis.
        if rng.random() < 0.5:
            return [int(rng.choice(levels))] * ndim
        return [int(rng.choice(levels)) for _ in range(ndim)]

    kernel = per_axis((1, 2) if small else (1, 2, 3))
    stride, dilation, padding = per_axis(_STRIDES), per_axis(_DILATIONS), per_axis(_PADDINGS)
    spatial = []
    for axis in range(ndim):
        out = int(rng.integers(1, 3 if small else 5))
        remainder = int(rng.integers(0, stride[axis]))
        reach = (out - 1) * stride[axis] + dilation[axis] * (kernel[axis] - 1) + remainder
        padding[axis] = min(padding[axis], reach // 2)  # keeps H >= 1
        spatial.append(reach + 1 - 2 * padding[axis])
    grouping = str(rng.choice(_GROUPINGS))
    if grouping == "groups 1":
        channels, filters, groups = int(rng.integers(1, 4)), int(rng.integers(1, 4)), 1
    elif grouping == "groups 2":  # 2 or 3 channels a group, so that it is not also depthwise
        channels, filters, groups = 2 * int(rng.integers(2, 4)), 2 * int(rng.integers(1, 3)), 2
    else:
        groups = channels = int(rng.integers(2, 4))
        filters = channels * (1 if grouping == "depthwise" else 2)
    axes = _Axes(tuple(spatial), tuple(kernel), tuple(stride), tuple(padding), tuple(dilation))
    batch, dtype = int(rng.integers(1, 7)), dtypes[int(rng.integers(0, len(dtypes)))]
    return _Sizes(channels, filters, groups, batch, dtype, axes).layer()


def _coordinates(geometry: LayerGeometry) -> int:
    """Gradient coordinates a check compares: every element of x, w and b."""
    return sum(math.prod(s) for s in (geometry.x_shape, geometry.w_shape, geometry.b_shape))


# --- shrinking ----------------------------------------------------------------------------------

class _Axes(NamedTuple):
    """The per-axis sizes and settings of a layer, one value per spatial axis each."""

    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]

    def without(self, axis: int) -> "_Axes":
        return _Axes(*(values[:axis] + values[axis + 1:] for values in self))


_NEUTRAL = (1, 1, 1, 0, 1)  # what each of _Axes shrinks towards: size and kernel 1, stride 1, padding 0, dilation 1


@dataclass(frozen=True)
class _Sizes:
    """A layer's sizes, free to change one at a time; `layer` says whether they make a layer."""

    channels: int
    filters: int
    groups: int
    batch: int
    dtype: Dtype
    axes: _Axes

    @classmethod
    def of(cls, g: LayerGeometry) -> "_Sizes":
        axes = _Axes(g.spatial, g.kernel_size, g.stride, g.padding, g.dilation)
        return cls(g.channels, g.filters, g.groups, g.batch, g.dtype, axes)

    def layer(self) -> Optional[LayerGeometry]:
        """The layer, or None where these sizes make none (e.g. a kernel larger than the input)."""
        a = self.axes
        try:
            return resolve_geometry(
                (self.channels, *a.spatial), (self.filters, self.channels // self.groups, *a.kernel),
                batch=self.batch, stride=a.stride, padding=a.padding, dilation=a.dilation, groups=self.groups,
                dtype=self.dtype,
            )
        except GeometryError:
            return None


def _towards(value: int, target: int) -> list[int]:
    """Smaller values to try, boldest first: the target itself, halfway, one less."""
    return [v for v in dict.fromkeys((target, (value + target) // 2, value - 1)) if target <= v < value]


def shrink_candidates(geometry: LayerGeometry) -> Iterator[LayerGeometry]:
    """Layers simpler than `geometry`, the ones that make later checks cheapest first: fewer axes,
    smaller batch, fewer groups (or none), channels and kernels, smaller sizes, stride, padding
    and dilation towards 1, 0 and 1, per-axis values made equal, float64 for float32.

    Every candidate is smaller in `complexity`, so shrinking always ends.
    """
    g, sizes = geometry, _Sizes.of(geometry)
    simpler = [replace(sizes, axes=sizes.axes.without(axis)) for axis in range(g.ndim)] if g.ndim > 1 else []
    simpler += [replace(sizes, batch=b) for b in _towards(g.batch, 1)]
    per_in, per_out = g.channels // g.groups, g.filters // g.groups
    if g.groups > 1:
        simpler.append(replace(sizes, groups=1))  # the same channels and kernels, ungrouped
        simpler += [replace(sizes, groups=n, channels=n * per_in, filters=n * per_out) for n in _towards(g.groups, 1)]
    simpler += [replace(sizes, channels=g.groups * n) for n in _towards(per_in, 1)]
    simpler += [replace(sizes, filters=g.groups * n) for n in _towards(per_out, 1)]
    for name, neutral, values in zip(_Axes._fields, _NEUTRAL, sizes.axes):
        if len(set(values)) > 1:
            simpler.append(replace(sizes, axes=sizes.axes._replace(**{name: (min(values),) * g.ndim})))
        for axis, value in enumerate(values):
            simpler += [
                replace(sizes, axes=sizes.axes._replace(**{name: values[:axis] + (smaller,) + values[axis + 1:]}))
                for smaller in _towards(value, neutral)
            ]
    if g.dtype == "float32":
        simpler.append(replace(sizes, dtype="float64"))
    for candidate in dict.fromkeys(s.layer() for s in simpler):
        if candidate is not None and complexity(candidate) < complexity(g):
            yield candidate


def complexity(geometry: LayerGeometry) -> tuple[int, ...]:
    """How complex a layer is, compared as a tuple: rank, batch, channels, kernels, groups, kernel
    and input sizes, stride, padding, dilation, per-axis values that differ, float32. Every
    shrink candidate is smaller in it."""
    g, sizes = geometry, _Sizes.of(geometry)
    return (
        g.ndim, g.batch, g.channels, g.filters, g.groups, sum(g.kernel_size), sum(g.spatial),
        sum(g.stride), sum(g.padding), sum(g.dilation),
        sum(len(set(values)) for values in sizes.axes), int(g.dtype == "float32"),
    )


def failing_parts(report: CaseReport) -> frozenset[str]:
    """What failed: the case as a whole (it raised, hung or died), else each failing tensor and call."""
    if report.reason is not None:
        return frozenset({"case"})
    return frozenset({t.name for t in report.failing} | {c.name for c in report.failing_calls})


# --- the run ------------------------------------------------------------------------------------


def run_fuzz(
    implementation: Implementation,
    options: CheckOptions,
    fuzz_options: FuzzOptions = FuzzOptions(),
    *,
    status: Optional[Callable[[FuzzStatus], None]] = None,
) -> FuzzResult:
    """Check random layers drawn from `options.seed` until one fails, then shrink it.

    No geometry is started after `fuzz_options.budget_s` seconds (one that started finishes,
    within `options.timeout`); the shrunk case is the simplest found by then. Geometries the
    implementation cannot run are skipped and counted. `status` hears of each geometry before it
    is checked.
    """
    for dtype in fuzz_options.dtypes:
        options.tolerances(dtype)  # a --step too small for a dtype is refused before any time is spent
    start = time.perf_counter()
    deadline = start + fuzz_options.budget_s
    checked = skipped = 0
    coverage = Coverage()
    reasons: dict[str, int] = {}
    failure: Optional[FuzzFailure] = None
    for geometry in random_geometries(options.seed, fuzz_options.dtypes):
        if time.perf_counter() >= deadline:
            break
        reason = implementation.unsupported(geometry)
        if reason is not None:
            skipped += 1
            reasons[reason] = reasons.get(reason, 0) + 1
            continue
        if status is not None:
            status(FuzzStatus("searching", geometry, time.perf_counter() - start, fuzz_options.budget_s, checked, skipped))
        report = run_case_isolated(geometry, implementation, options, name=f"fuzz case {checked + 1}")
        checked += 1
        coverage = coverage.add(geometry)
        if report.failed:
            progress = _Progress(start, fuzz_options.budget_s, checked, skipped, status)
            failure = _shrink(report, implementation, options, deadline, progress)
            break
    return FuzzResult(
        implementation=implementation.name, seed=options.seed, options=fuzz_options, checked=checked,
        skipped=skipped, coverage=coverage, elapsed_s=time.perf_counter() - start, failure=failure,
        skip_reasons=tuple(reasons.items()),
    )


@dataclass(frozen=True)
class _Progress:
    """What the shrinker tells `status`, besides its own steps and tries."""

    start: float
    budget_s: float
    found_after: int
    skipped: int
    status: Optional[Callable[[FuzzStatus], None]]

    def __call__(self, geometry: LayerGeometry, steps: int, tries: int) -> None:
        if self.status is not None:
            elapsed = time.perf_counter() - self.start
            self.status(FuzzStatus("shrinking", geometry, elapsed, self.budget_s, self.found_after, self.skipped, steps, tries))


def _shrink(
    first: CaseReport, implementation: Implementation, options: CheckOptions, deadline: float, progress: _Progress
) -> FuzzFailure:
    """Greedy: the first candidate that still fails, in a part that failed before, replaces the
    case, and the candidates of the new case are tried from the start; until none fails."""
    best, steps, tries = first, 0, 0
    seen: set[LayerGeometry] = {first.geometry}
    while True:
        for candidate in shrink_candidates(best.geometry):
            if time.perf_counter() >= deadline:
                return FuzzFailure(first, _named(best), progress.found_after, steps, tries, complete=False)
            if candidate in seen or implementation.unsupported(candidate) is not None:
                continue
            seen.add(candidate)
            progress(candidate, steps, tries)
            report = run_case_isolated(candidate, implementation, options, name="fuzz case")
            tries += 1
            if report.failed and failing_parts(report) & failing_parts(best):
                best, steps = report, steps + 1
                break
        else:
            return FuzzFailure(first, _named(best), progress.found_after, steps, tries, complete=True)


def _named(report: CaseReport) -> CaseReport:
    return replace(report, name=f"shrunk: {report.geometry.brief()}")
