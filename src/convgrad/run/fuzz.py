"""Fuzzing a layer: random geometries until one fails, then the simplest geometry that still fails.

    seed -> random_geometries (1-D to 3-D, batch, groups, depthwise, stride, padding, dilation, per
            axis, float64 and float32; one in LARGE_SHARE past a size where real kernels change path)
         -> run_case_isolated on each, until one fails or the budget is spent
         -> shrink: simpler candidates (shrink_candidates), keeping each that fails the same way
            (FailureSignature), until none does: then the case is minimal, or the budget ran out
            first and the result says so (FuzzFailure.incomplete)

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
from convgrad.geometry import Dtype, LayerGeometry, plural, resolve_geometry
from convgrad.adapters.protocol import Implementation
from convgrad.options import CheckOptions, FuzzOptions
from convgrad.report import WRONG, CaseReport
from convgrad.run.isolation import run_case_isolated

__all__ = [
    "FEATURES",
    "Coverage",
    "FailureSignature",
    "FuzzFailure",
    "FuzzResult",
    "FuzzStatus",
    "complexity",
    "failure_signature",
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
    # Why `shrunk` is not known to be minimal (the budget ran out before every simpler layer was
    # checked); None when it is.
    incomplete: Optional[str] = None

    @property
    def complete(self) -> bool:
        """`shrunk` is minimal: no simpler layer (one setting dropped to its default or reduced, or
        two together where the layer refuses one alone) fails the same way (`failure_signature`)."""
        return self.incomplete is None


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


# What each of _Axes shrinks towards: kernel 1, stride 1, padding 0, dilation 1 (an input: the
# smallest its dilated kernel fits in, at least 1).
_NEUTRAL = (1, 1, 1, 0, 1)


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


@dataclass(frozen=True)
class _Move:
    """One change towards a simpler layer: what it touches ("batch", "padding 0": axis 0's
    padding, ...) and the sizes it makes. Its values are fixed when it is made, so two moves that
    touch different things make the same layer in either order (`then`)."""

    touches: frozenset[str]
    apply: Callable[[_Sizes], _Sizes]

    def then(self, other: "_Move") -> "_Move":
        first, second = self.apply, other.apply
        return _Move(self.touches | other.touches, lambda sizes: second(first(sizes)))


def _scalar(**values: int) -> _Move:
    """A move that sets some of channels, filters, groups and batch: batch=1; groups, channels and
    filters together."""
    def apply(s: _Sizes) -> _Sizes:
        get = values.get
        return _Sizes(get("channels", s.channels), get("filters", s.filters), get("groups", s.groups),
                      get("batch", s.batch), s.dtype, s.axes)
    return _Move(frozenset(values), apply)


def _without_axis(axis: int) -> _Move:
    return _Move(frozenset({"rank"}), lambda sizes: replace(sizes, axes=sizes.axes.without(axis)))


def _per_axis(changes: dict[str, dict[int, int]]) -> _Move:
    """A move that sets some axes' values of some per-axis fields: {"padding": {0: 0}}."""
    def apply(sizes: _Sizes) -> _Sizes:
        axes = sizes.axes._replace(**{
            name: tuple(values.get(axis, old) for axis, old in enumerate(getattr(sizes.axes, name)))
            for name, values in changes.items()
        })
        return replace(sizes, axes=axes)
    return _Move(frozenset(f"{name} {axis}" for name, values in changes.items() for axis in values), apply)


def _moves(sizes: _Sizes) -> list[_Move]:
    """Every single change towards a simpler layer, the ones that make later checks cheapest
    first: one axis fewer, a smaller batch, groups dropped (or fewer), fewer channels and kernels,
    float64 for float32; then per axis (kernel, input size, stride, padding, dilation): the
    setting dropped on every axis, its per-axis values made equal, each axis's value reduced.

    Padding is dropped or reduced with the input grown by as much, so that the padded input (and
    the output) keeps its size: an input no larger than its kernel could otherwise never lose its
    padding. An input is reduced to the smallest its dilated kernel fits in, at the least.
    """
    s, a = sizes, sizes.axes
    ndim = len(a.spatial)
    moves = [_without_axis(axis) for axis in range(ndim)] if ndim > 1 else []
    moves += [_scalar(batch=b) for b in _towards(s.batch, 1)]
    per_in, per_out = s.channels // s.groups, s.filters // s.groups
    if s.groups > 1:
        moves.append(_scalar(groups=1))  # the same channels and kernels, ungrouped
        moves += [_scalar(groups=n, channels=n * per_in, filters=n * per_out) for n in _towards(s.groups, 1)]
    moves += [_scalar(channels=s.groups * n) for n in _towards(per_in, 1)]
    moves += [_scalar(filters=s.groups * n) for n in _towards(per_out, 1)]
    if s.dtype == "float32":
        moves.append(_Move(frozenset({"dtype"}), lambda t: replace(t, dtype="float64")))
    smallest_input = [max(1, d * (k - 1) + 1 - 2 * p) for k, p, d in zip(a.kernel, a.padding, a.dilation)]
    for name, neutral, values in zip(_Axes._fields, _NEUTRAL, a):
        targets = smallest_input if name == "spatial" else [neutral] * ndim
        off = {axis: target for axis, (value, target) in enumerate(zip(values, targets)) if value > target}
        if name != "spatial" and ndim > 1 and len(off) > 1:
            moves.append(_setting(a, name, off))  # dropped on every axis at once
        if len(set(values)) > 1:
            moves.append(_setting(a, name, {axis: min(values) for axis in range(ndim)}))
        for axis, (value, target) in enumerate(zip(values, targets)):
            moves += [_setting(a, name, {axis: smaller}) for smaller in _towards(value, target)]
    return moves


def _setting(axes: _Axes, name: str, new: dict[int, int]) -> _Move:
    """A move that sets per-axis field `name` to `new` on some axes; padding with each input grown
    by the padding it loses."""
    if name != "padding":
        return _per_axis({name: new})
    grown = {axis: axes.spatial[axis] + 2 * (axes.padding[axis] - p) for axis, p in new.items()}
    return _per_axis({"padding": new, "spatial": grown})


def _no_refusal(geometry: LayerGeometry) -> Optional[str]:
    return None


def shrink_candidates(
    geometry: LayerGeometry, unsupported: Callable[[LayerGeometry], Optional[str]] = _no_refusal
) -> Iterator[LayerGeometry]:
    """Layers simpler than `geometry` that the implementation runs (`unsupported` says None), in
    the order of `_moves`; then, for each move the implementation refuses alone, that move together
    with each other one (a 'same' padding layer cannot lose kernel taps without its padding).

    Every candidate is smaller in `complexity`, so shrinking always ends.
    """
    sizes = _Sizes.of(geometry)
    moves, refused = _moves(sizes), []
    seen: set[LayerGeometry] = set()

    def candidate(move: _Move) -> Optional[LayerGeometry]:
        layer = move.apply(sizes).layer()
        if layer is None or layer in seen or not complexity(layer) < complexity(geometry):
            return None
        seen.add(layer)
        return layer

    for move in moves:
        layer = candidate(move)
        if layer is not None and unsupported(layer) is None:
            yield layer
        elif layer is not None and "rank" not in move.touches:  # a rank the layer refuses stays refused
            refused.append(move)
    for move in refused:
        for other in moves:
            if not move.touches & other.touches and "rank" not in other.touches:
                layer = candidate(move.then(other))
                if layer is not None and unsupported(layer) is None:
                    yield layer


def complexity(geometry: LayerGeometry) -> tuple[int, ...]:
    """How complex a layer is, compared as a tuple: rank; how many settings are off their default
    (a batch, groups, float32, and each axis's stride, padding and dilation); batch, channels,
    kernels, groups; kernel sizes, stride, padding, dilation; input sizes; per-axis values that
    differ. Every shrink candidate is smaller in it: a setting dropped counts for more than the
    input grown to make room for it."""
    g, sizes = geometry, _Sizes.of(geometry)
    off_default = (
        (g.batch > 1) + (g.groups > 1) + (g.dtype == "float32")
        + sum(s != 1 for s in g.stride) + sum(p != 0 for p in g.padding) + sum(d != 1 for d in g.dilation)
    )
    return (
        g.ndim, off_default, g.batch, g.channels, g.filters, g.groups,
        sum(g.kernel_size), sum(g.stride), sum(g.padding), sum(g.dilation), sum(g.spatial),
        sum(len(set(values)) for values in sizes.axes),
    )


# The statuses of a row that is itself wrong (report.py), not left unchecked after another call failed.
FIRST_CALL, CASE = "first call", "case"


@dataclass(frozen=True)
class FailureSignature:
    """How a case fails, as shrinking compares it: where, and which tensors are wrong there.

    Where is the first call when any of its tensors is wrong ("dK"): with wrong values, a wrong
    shape, or a call that raised or hung there alike (a wrong shape in one layer is often wrong
    values in a smaller one: the same mistake). Later calls are left out then: they mostly fail
    because the first call did, and which of them also fail changes with the sizes. When the
    first call is right: the first later call that failed, with its wrong tensors. "case" when
    the case failed as a whole with no call to blame (its process died).

    The diagnosis is left out on purpose. It reads the failure: the heuristics that name a mistake
    need sizes to tell mistakes apart (a 1x1 kernel is its own rotation) and can be misled by a
    setting that does not matter (a layer that ignores its dilation, with padding kept, looks
    like a padding mistake). Requiring it would keep exactly those settings; the shrunk case gets
    its own diagnosis, usually a truer one.
    """

    where: str
    tensors: frozenset[str] = frozenset()

    def shown_by(self, other: "FailureSignature") -> bool:
        """Whether a case failing as `other` fails the same way: in the same place, with at least
        these tensors wrong (a layer whose every tap reads padding gets dX and dK right by
        accident: a simpler one may get them wrong too). A later call's failure is also shown by
        a first call wrong in its tensors: the same mistake, seen sooner."""
        if CASE in (self.where, other.where):
            return other.where == self.where
        sooner = other.where == FIRST_CALL and bool(self.tensors)
        return (other.where == self.where or sooner) and other.tensors >= self.tensors


def failure_signature(report: CaseReport) -> FailureSignature:
    """How a failed case fails (see FailureSignature)."""
    wrong = frozenset(row.name for row in report.rows if row.status in WRONG)
    if wrong:
        return FailureSignature(FIRST_CALL, wrong)
    if report.failure is not None or not report.failing_calls:
        return FailureSignature(CASE)
    call = report.failing_calls[0]
    return FailureSignature(call.name, frozenset(t.name for t in call.tensors if t.status in WRONG))


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
    """Greedy: the first candidate that fails the same way as the case (`FailureSignature.shown_by`)
    replaces it, and the candidates of the new case are tried from the start; until none does, which
    makes the case minimal: no setting can be dropped or reduced, alone or with another the layer
    needs it with, and still fail the same way. Each layer is checked once."""
    best, steps, tries = first, 0, 0
    # A layer that did not fail the same way as one case does not fail the same way as a simpler one
    # (shown_by is transitive, and a simpler case fails in at least as many ways): each is checked once.
    checked: set[LayerGeometry] = {first.geometry}
    while True:
        candidates = [c for c in shrink_candidates(best.geometry, implementation.unsupported) if c not in checked]
        target = failure_signature(best)
        for done, candidate in enumerate(candidates):
            if time.perf_counter() >= deadline:
                left = len(candidates) - done
                incomplete = (f"the budget ran out with {left} of {plural(len(candidates), 'simpler layer')} "
                              f"not yet checked; one of them may fail the same way")
                return FuzzFailure(first, _named(best), progress.found_after, steps, tries, incomplete)
            checked.add(candidate)
            progress(candidate, steps, tries)
            report = run_case_isolated(candidate, implementation, options, name="fuzz case")
            tries += 1
            if report.failed and target.shown_by(failure_signature(report)):
                best, steps = report, steps + 1
                break
        else:
            return FuzzFailure(first, _named(best), progress.found_after, steps, tries)


def _named(report: CaseReport) -> CaseReport:
    return replace(report, name=f"shrunk: {report.geometry.brief()}")
