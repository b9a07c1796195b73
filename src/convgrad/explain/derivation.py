"""The derivation of a layer's gradients for its own numbers, and the proof that it holds.

dX is computed literally by the steps `convgrad explain` shows (reference.zero_insert, pad,
rotate_and_swap, dilate, correlate, crop), every shape is read off the arrays those steps produce,
coordinates of dX and dK are written out as the sums of their products, and the results are
compared with central finite differences at every coordinate, with the tolerance `convgrad check`
uses. The formulas printed come from formulas.py, as data a test evaluates.

Always float64: this is about the mathematics, and float32's rounding (and its 1e-3 tolerance)
would only blur the proof, so another dtype is refused rather than silently replaced.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from convgrad import reference
from convgrad.compare import compare
from convgrad.errors import Parameter, SettingError
from convgrad.explain.formulas import LayerFormulas, layer_formulas
from convgrad.geometry import GradientName, LayerGeometry
from convgrad.numerics.gradient import ProgressFactory
from convgrad.numerics.method import numerical_gradient
from convgrad.numerics.plan import plan_differences
from convgrad.options import DEFAULT_TOLERANCES, CheckOptions
from convgrad.run.case import random_tensors

__all__ = [
    "Derivation",
    "Proof",
    "WorkedProduct",
    "FilterTerms",
    "WorkedCoordinate",
    "KernelGrid",
    "PlaneMap",
    "WeightTerm",
    "WeightCoordinate",
    "Shortcut",
    "explain",
    "PROOF_TOLERANCE",
    "GRID_CAP",
    "MAP_CAP",
    "MAP_WIDTH",
    "WORKED_FILTERS",
]

# The derivation holds when every error is within check's own float64 tolerance of the scale.
PROOF_TOLERANCE = DEFAULT_TOLERANCES["float64"].rtol
GRID_CAP = 5  # rows and columns of the kernel grids pictured; more would not fit 80 columns
MAP_CAP = 10  # positions per axis of a padded plane pictured from its corner (more if the reads need)
MAP_WIDTH = 36  # at most, per axis: two characters a position fit 80 columns
WORKED_FILTERS = 5  # filters whose products the worked coordinate lists; the rest as one sum

CellKind = Literal["pad", "zero", "value"]  # padding, a zero inserted by the stride, an entry of dO


@dataclass(frozen=True)
class Proof:
    """One gradient computed by the derivation, against central finite differences."""

    tensor: GradientName
    max_abs_error: float
    max_rel_error: float
    checked: int
    forward_calls: int

    @property
    def holds(self) -> bool:
        return self.max_rel_error <= PROOF_TOLERANCE


@dataclass(frozen=True)
class WorkedProduct:
    """One product of the worked coordinate: padded dO at `position` times K'[c, f', tap]."""

    tap: tuple[int, ...]  # u' in K' (the rotated kernel)
    kernel_tap: tuple[int, ...]  # the same tap in K: k-1-u' (the rotation)
    position: tuple[int, ...]  # in the padded dO of this sample and filter: y + p + d*u'
    dy: float  # the padded dO's value there
    dy_index: Optional[tuple[int, ...]]  # the entry of dO it is (spatial), None for a zero
    kernel: float  # K'[c, f', u'] = K[f, c', k-1-u']
    product: float
    kind: CellKind  # why a zero dO value is zero, or "value"


@dataclass(frozen=True)
class FilterTerms:
    """The products one filter f contributes (K' channel f' = f within its group)."""

    filter: int  # f
    depth_index: int  # f' = f - (first filter of the group): its channel in K'
    terms: tuple[WorkedProduct, ...]
    partial: float  # the sum of the terms


@dataclass(frozen=True)
class WorkedCoordinate:
    """dX at one coordinate written out as its products, against dX computed by the steps."""

    index: tuple[int, ...]  # (n, c, *spatial) in dX
    channel_in_group: int  # c' = c - first channel of the group: K[f, c'] holds c's kernels
    window: tuple[tuple[int, int], ...]  # (start, stop) per axis in the padded dO, stop exclusive
    filters: tuple[FilterTerms, ...]  # every filter of c's group
    shown: int  # filters whose products are listed (the first ones)
    rest: float  # the partial sums of the filters after `shown`, added up
    total: float  # every product added up
    dx: float  # dX at `index` computed by the steps

    @property
    def nonzero_terms(self) -> int:
        return sum(t.kind == "value" for f in self.filters for t in f.terms)

    @property
    def all_terms(self) -> int:
        return sum(len(f.terms) for f in self.filters)

    @property
    def zero_terms(self) -> int:
        """Products whose padded dO value is padding or a zero the stride inserted."""
        return self.all_terms - self.nonzero_terms

    @property
    def hidden_filters(self) -> int:
        """Filters after the first `shown`, whose products are given only as one sum (`rest`)."""
        return len(self.filters) - self.shown


@dataclass(frozen=True)
class KernelGrid:
    """Which kernel slice K[f, c'] sits where, before (F x C/g) or after the swap (C x F/g)."""

    rows: int  # kernels
    columns: int  # their depth
    cells: tuple[tuple[tuple[int, int], ...], ...]  # (f, c') of the slice at each cell, capped


@dataclass(frozen=True)
class PlaneMap:
    """A plane of a padded tensor (P of the worked dX, or Xp of the worked dK) as kinds of cells
    from its corner, and the positions the worked coordinate reads (2-D cut)."""

    tensor: str  # "P" or "Xp"
    channel: int  # of sample 0: the filter of P, the input channel of Xp
    axes: tuple[int, ...]  # which spatial axes the map shows (the last one or two)
    cut: tuple[int, ...]  # the index taken along every other spatial axis (3-D: depth)
    size: tuple[int, ...]  # the whole padded extent along the shown axes
    origin: tuple[int, ...]  # the first position shown along each shown axis
    kinds: tuple[tuple[CellKind, ...], ...]  # rows x columns (one row in 1-D), from the corner
    taps: frozenset[tuple[int, ...]]  # the positions the worked window reads, along the shown axes


@dataclass(frozen=True)
class WeightTerm:
    """One product of the worked dK coordinate: dO at `dy_index` times Xp at `x_position`."""

    dy_index: tuple[int, ...]  # (n, *o) in dO
    x_position: tuple[int, ...]  # (n, *spatial) in Xp: s*o + d*u
    dy: float
    x: float
    on_padding: bool  # Xp is padding there: the product is 0

    @property
    def product(self) -> float:
        return self.dy * self.x


@dataclass(frozen=True)
class WeightCoordinate:
    """dK at one coordinate (its centre tap) written out as its products, against dK by the reference."""

    index: tuple[int, ...]  # (f, c', *tap) in dK
    channel: int  # the input channel the kernel slice reads: Cg*group + c'
    terms: tuple[WeightTerm, ...]  # every sample and output position, in order
    total: float
    dk: float


@dataclass(frozen=True)
class Shortcut:
    """With padding p: pad S by d*(k-1)-p per side (negative: crop) and skip the crop at the end."""

    sides: tuple[tuple[int, int], ...]  # (before, after) per axis
    shape: tuple[int, ...]  # Q per sample: F x (H + d*(k-1))
    max_difference: float  # between dX this way and by the crop


@dataclass(frozen=True)
class Derivation:
    """Shapes at every step of dX as a full correlation (per sample, without N), the worked
    coordinate, what the pictures show, and the proofs."""

    geometry: LayerGeometry
    seed: int
    dy: tuple[int, ...]  # F x Ho x Wo
    spread: Optional[tuple[int, ...]]  # after zero insertion; None when the stride leaves dO as is
    trailing_zeros: tuple[int, ...]  # zeros appended per axis where the stride skipped positions
    reach: tuple[int, ...]  # dilation * (kernel - 1): the full correlation's padding per side
    full: tuple[int, ...]  # P: S (or dO at stride 1) padded by the reach
    kernels: tuple[int, ...]  # F x C/g x k
    swapped: tuple[int, ...]  # C x F/g x k: rotated 180 degrees, kernel and channel axes swapped
    dilated: Optional[tuple[int, ...]]  # C x F/g x (d*(k-1)+1) when the dilation is not 1
    correlated: tuple[int, ...]  # C x Hp x Wp
    cropped: Optional[tuple[int, ...]]  # C x H x W after cropping the padding; None without padding
    last_tap: tuple[int, ...]  # k - 1 per axis: the rotation maps tap u to k-1-u
    between: tuple[int, ...]  # s - 1 per axis: zeros inserted between neighbours of dO
    tap_gaps: tuple[int, ...]  # d - 1 per axis: zeros between the taps of a dilated kernel
    worked: WorkedCoordinate  # a coordinate whose window lies on dO (as far as the layer allows)
    whole_window: bool  # the worked window lies wholly on dO's entries and inserted zeros
    border: Optional[WorkedCoordinate]  # the corner, when its window hangs over the padding
    weight: WeightCoordinate
    shortcut: Optional[Shortcut]  # with padding only
    formulas: LayerFormulas
    tensors: dict[str, np.ndarray]  # every tensor the formulas read or define, by name (the page reads them)
    grid_before: KernelGrid
    grid_after: KernelGrid
    kernel_before: np.ndarray  # K[f, c'] of the first pictured slice (spatial taps only)
    kernel_after: np.ndarray  # the same slice in K': K'[c, f'], i.e. rotated 180 degrees
    kernel_slice: tuple[int, int, int, int]  # (f, c', c, f'): where the pictured slice is in K and K'
    padded_map: PlaneMap
    input_map: PlaneMap  # Xp of the worked dK, its reads marked
    proofs: tuple[Proof, ...]
    tolerance: float = PROOF_TOLERANCE

    @property
    def dilated_extent(self) -> Optional[tuple[int, ...]]:
        """d*(k-1)+1 per axis when the kernels are dilated."""
        return None if self.dilated is None else self.dilated[2:]

    @property
    def holds(self) -> bool:
        return all(p.holds for p in self.proofs)

    @property
    def padded(self) -> bool:
        return any(self.geometry.padding_totals)

    @property
    def input_name(self) -> str:
        """What the forward and dK read: X, or Xp with padding."""
        return "Xp" if self.padded else "X"

    @property
    def source_name(self) -> str:
        """What P pads: S (dO spread by the stride), or dO itself at stride 1."""
        return "S" if self.spread is not None else "dO"


def _refuse_other_dtypes(geometry: LayerGeometry) -> None:
    if geometry.dtype != "float64":
        raise SettingError(
            Parameter("dtype", geometry.dtype), " is refused: explain derives and proves the algebra in float64, "
            "where rounding cannot hide an error, and float32 would need a tolerance of 1e-3; drop ",
            Parameter("dtype"), " (to check a float32 layer, use check with ", Parameter("dtype", geometry.dtype), ")",
        )


def _cell_kinds(dy: np.ndarray, geometry: LayerGeometry, size: list[int], reach: tuple[int, ...]) -> np.ndarray:
    """What each position of the padded dO holds, found by sending markers through the same steps:
    2 an entry of dO, 1 a zero the stride inserted, 0 padding."""
    values = reference.pad(reference.zero_insert(np.ones_like(dy[:1, :1]), geometry.stride, size), reach)
    inside = reference.pad(np.ones((1, 1, *size)), reach)
    return (values + inside)[0, 0].astype(int)


_KIND_NAMES: tuple[CellKind, ...] = ("pad", "zero", "value")


def _window_start(g: LayerGeometry, kinds: np.ndarray, reach: tuple[int, ...]) -> tuple[tuple[int, ...], bool]:
    """The dX position to work out: per axis, the first whose window reads the most entries of dO,
    preferring windows wholly inside dO's span (no padding read). True when every axis got one."""
    spatial, whole = [], True
    for axis, (h, d, k, p) in enumerate(zip(g.spatial, g.dilation, g.kernel_size, g.padding)):
        # The kinds are separable: along one axis, through dO's first entry on every other axis.
        line = kinds[tuple(reach[a] if a != axis else slice(None) for a in range(g.ndim))]
        values = [int(line[y + p + d * np.arange(k)].tolist().count(2)) for y in range(h)]
        inside = [bool((line[y + p + d * np.arange(k)] > 0).all()) for y in range(h)]
        best = max(range(h), key=lambda y: (inside[y], values[y], -y))
        whole &= inside[best]
        spatial.append(best)
    return tuple(spatial), whole


def _worked(
    geometry: LayerGeometry, full: np.ndarray, swapped: np.ndarray, dx: np.ndarray, kinds: np.ndarray,
    reach: tuple[int, ...], spatial: tuple[int, ...],
) -> WorkedCoordinate:
    """dX[0, 0, *spatial] as the sum of padded dO times rotated kernel values."""
    g = geometry
    c = 0
    corner = tuple(y + p for y, p in zip(spatial, g.padding))  # where the window starts in the padded dO (p before)
    per_group = g.filters // g.groups
    depth = g.channels // g.groups
    group = c // depth
    filters = []
    for f_in_group in range(per_group):
        f = group * per_group + f_in_group
        terms = []
        for tap in np.ndindex(*g.kernel_size):
            position = tuple(y + d * u for y, d, u in zip(corner, g.dilation, tap))
            dy_value = float(full[(0, f, *position)])
            kind = _KIND_NAMES[int(kinds[position])]
            # Back through the padding (reach) and the zero insertion (stride) to dO's own index.
            source = tuple((q - r) // s for q, r, s in zip(position, reach, g.stride))
            kernel_value = float(swapped[(c, f_in_group, *tap)])
            terms.append(WorkedProduct(
                tap=tuple(tap),
                kernel_tap=tuple(k - 1 - u for k, u in zip(g.kernel_size, tap)),
                position=position,
                dy=dy_value,
                dy_index=source if kind == "value" else None,
                kernel=kernel_value,
                product=dy_value * kernel_value,
                kind=kind,
            ))
        partial = math.fsum(t.product for t in terms)
        filters.append(FilterTerms(filter=f, depth_index=f_in_group, terms=tuple(terms), partial=partial))
    # One filter left over is listed rather than summed as "the other 1 filter".
    shown = len(filters) if len(filters) <= WORKED_FILTERS + 1 else WORKED_FILTERS
    extent = [r + 1 for r in reach]
    return WorkedCoordinate(
        index=(0, c, *spatial),
        channel_in_group=c - group * depth,
        window=tuple((y, y + e) for y, e in zip(corner, extent)),
        filters=tuple(filters),
        shown=shown,
        rest=math.fsum(f.partial for f in filters[shown:]),
        total=math.fsum(t.product for f in filters for t in f.terms),
        dx=float(dx[(0, c, *spatial)]),
    )


def _input_kinds(g: LayerGeometry) -> np.ndarray:
    """What each position of Xp (spatial) holds: 2 an entry of X, 0 padding (_KIND_NAMES)."""
    return (2 * reference.pad(np.ones((1, 1, *g.spatial)), g.padding_pairs)[0, 0]).astype(int)


def _weight_worked(g: LayerGeometry, dy: np.ndarray, xp: np.ndarray, dw: np.ndarray, kinds: np.ndarray) -> WeightCoordinate:
    """dK[0, 0, centre tap] as the sum over samples and output positions of dO times Xp."""
    tap = tuple(k // 2 for k in g.kernel_size)
    channel = 0  # filter 0 is in group 0, whose first channel is 0
    terms = []
    for n in range(g.batch):
        for o in np.ndindex(*g.out_spatial):
            position = tuple(s * i + d * u for s, i, d, u in zip(g.stride, o, g.dilation, tap))
            terms.append(WeightTerm(
                dy_index=(n, *o), x_position=(n, *position), dy=float(dy[(n, 0, *o)]),
                x=float(xp[(n, channel, *position)]), on_padding=_KIND_NAMES[int(kinds[position])] == "pad",
            ))
    index = (0, 0, *tap)
    return WeightCoordinate(
        index=index, channel=channel, terms=tuple(terms), total=math.fsum(t.product for t in terms),
        dk=float(dw[index]),
    )


def _grids(w_shape: tuple[int, ...], groups: int) -> tuple[KernelGrid, KernelGrid]:
    """Where each kernel slice (f, c') goes, found by swapping an array of labels the way the
    derivation swaps the kernels."""
    filters, depth = w_shape[:2]
    labels = np.arange(filters * depth).reshape(filters, depth, 1)
    swapped = reference.rotate_and_swap(labels, groups)[:, :, 0]

    def grid(table: np.ndarray) -> KernelGrid:
        cells = tuple(
            tuple(divmod(int(label), depth) for label in row[:GRID_CAP]) for row in table[:GRID_CAP]
        )
        return KernelGrid(rows=table.shape[0], columns=table.shape[1], cells=cells)

    return grid(labels[:, :, 0]), grid(swapped)


def _shown_range(size: int, focus: tuple[int, int]) -> tuple[int, int]:
    """Positions [start, stop) of one axis to picture: from the corner when the positions `focus`
    (first and last, inclusive) lie near it, else a window around them; at most MAP_WIDTH."""
    low, high = focus
    start = 0 if high + 3 <= MAP_WIDTH else max(0, low - 3)
    stop = min(size, max(start + MAP_CAP, high + 3), start + MAP_WIDTH)
    return start, stop


def _plane_map(
    tensor: str, channel: int, kinds: np.ndarray, reads: frozenset[tuple[int, ...]], cut: tuple[int, ...],
    focus: tuple[tuple[int, int], ...],
) -> PlaneMap:
    """The last one or two spatial axes of `kinds` (cut at `cut` along the others), as much as
    shows the positions `focus` (first and last per axis, inclusive) and the padding around them."""
    ndim = kinds.ndim
    axes = tuple(range(max(0, ndim - 2), ndim))
    plane = kinds[cut] if cut else kinds
    if plane.ndim == 1:
        plane = plane[None, :]
    ranges = [_shown_range(kinds.shape[a], f) for a, f in zip(axes, focus[-len(axes):])]
    rows = ranges[0] if len(ranges) == 2 else (0, 1)
    columns = ranges[-1]
    capped = plane[rows[0]:rows[1], columns[0]:columns[1]]
    return PlaneMap(
        tensor=tensor,
        channel=channel,
        axes=axes,
        cut=cut,
        size=tuple(kinds.shape[a] for a in axes),
        origin=tuple(start for start, _ in ranges),
        kinds=tuple(tuple(_KIND_NAMES[int(k)] for k in row) for row in capped),
        taps=frozenset(
            tuple(r[a] for a in axes) for r in reads if tuple(r[a] for a in range(ndim) if a not in axes) == cut
        ),
    )


def _padded_dy_map(kinds: np.ndarray, worked: WorkedCoordinate, ndim: int) -> PlaneMap:
    """P of the worked coordinate's first filter; for 3-D, cut at the window's last depth position
    (nearest to dO's entries, since the window starts near the corner). A window too wide to
    picture (a large dilation) is pictured around the reads that land on dO."""
    axes = range(max(0, ndim - 2), ndim)
    cut = tuple(worked.window[a][1] - 1 for a in range(ndim) if a not in axes)
    terms = worked.filters[0].terms
    reads = frozenset(t.position for t in terms)
    on_dy = [t.position for t in terms if t.kind == "value"]
    focus = tuple(
        (lo, hi - 1) if hi - lo <= MAP_WIDTH - 6 or not on_dy else (min(p[a] for p in on_dy), max(p[a] for p in on_dy))
        for a, (lo, hi) in enumerate(worked.window)
    )
    return _plane_map("P", worked.filters[0].filter, kinds, reads, cut, focus)


def _input_map(g: LayerGeometry, weight: WeightCoordinate, kinds: np.ndarray) -> PlaneMap:
    """Xp of the worked dK's channel in sample 0, the positions its products read marked."""
    reads = frozenset(t.x_position[1:] for t in weight.terms if t.x_position[0] == 0)
    first = min(reads)
    axes = range(max(0, g.ndim - 2), g.ndim)
    cut = tuple(first[a] for a in range(g.ndim) if a not in axes)
    return _plane_map("Xp", weight.channel, kinds, reads, cut, tuple((q, q) for q in first))


def explain(geometry: LayerGeometry, seed: int = 0, progress: Optional[ProgressFactory] = None) -> Derivation:
    """Follow the derivation step by step on random tensors and prove it with finite differences.

    Raises SettingError for a dtype other than float64 (see the module docstring).
    """
    _refuse_other_dtypes(geometry)
    options = CheckOptions(seed=seed, differences="central")  # the proof trusts no linearity test
    x, w, b, dy = random_tensors(geometry, options)
    g = geometry
    reach = tuple(d * (k - 1) for k, d in zip(g.kernel_size, g.dilation))
    size = [hp - r for hp, r in zip(g.padded_spatial, reach)]

    # dX, literally as shown: spread dO by the stride, pad it, rotate and swap the kernels, dilate
    # them, correlate, crop.
    spread = reference.zero_insert(dy, g.stride, size)
    full = reference.pad(spread, reach)
    swapped = reference.rotate_and_swap(w, g.groups)
    dilated = reference.dilate(swapped, g.dilation)
    correlated = reference.correlate(full, dilated, stride=[1] * g.ndim, dilation=[1] * g.ndim, groups=g.groups)
    dx = reference.crop(correlated, g.padding_pairs)

    settings = g.conv_settings()
    dw = reference.weight_gradient(dy, x, g.kernel_size, **settings)
    db = reference.bias_gradient(dy)

    def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        return reference.forward(x, w, b, **settings)

    y = forward(x, w, b)
    proofs = []
    derived_gradients: tuple[tuple[GradientName, np.ndarray], ...] = (("dX", dx), ("dK", dw), ("db", db))
    for name, derived in derived_gradients:
        # Every coordinate by differences, at any size (the derivation is what is proved here, and
        # the reference is the derivation), coloured where that is cheaper.
        plan = plan_differences(name, geometry, options, (x, w, b), y, budget=None)
        numerical = numerical_gradient(plan, forward, (x, w, b), dy, geometry, progress=progress)
        comparison = compare(name, derived, numerical.values, PROOF_TOLERANCE, method=numerical.method)
        proofs.append(Proof(
            tensor=name,
            max_abs_error=comparison.max_abs_error or 0.0,
            max_rel_error=comparison.max_rel_error or 0.0,
            checked=comparison.checked,
            forward_calls=numerical.forward_calls,
        ))

    kinds = _cell_kinds(dy, g, size, reach)
    start, whole_window = _window_start(g, kinds, reach)
    worked = _worked(g, full, swapped, dx, kinds, reach, start)
    corner = _worked(g, full, swapped, dx, kinds, reach, (0,) * g.ndim)
    xp = reference.pad(x, g.padding_pairs)
    input_kinds = _input_kinds(g)
    weight = _weight_worked(g, dy, xp, dw, input_kinds)
    tensors = {"X": x, "K": w, "b": b, "dO": dy, "Xp": xp, "O": y, "S": spread, "P": full, "K'": swapped,
               "dXp": correlated, "dX": dx, "dK": dw, "db": db}
    shortcut = None
    if any(g.padding_totals):
        # The padding to add is the reach minus the padding to crop; a negative side is a crop.
        shortcut_padded = reference.crop(full, g.padding_pairs)
        by_shortcut = reference.correlate(shortcut_padded, dilated, stride=[1] * g.ndim, dilation=[1] * g.ndim,
                                          groups=g.groups)
        shortcut = Shortcut(
            sides=tuple((r - before, r - after) for r, (before, after) in zip(reach, g.padding_pairs)),
            shape=shortcut_padded.shape[1:],
            max_difference=float(np.max(np.abs(by_shortcut - dx))),
        )
        tensors["Q"] = shortcut_padded
    grid_before, grid_after = _grids(w.shape, g.groups)
    f_first = worked.filters[0]
    inserted = [s * (o - 1) + 1 for s, o in zip(g.stride, g.out_spatial)]
    return Derivation(
        geometry=geometry,
        seed=seed,
        dy=dy.shape[1:],
        spread=spread.shape[1:] if spread is not dy else None,
        trailing_zeros=tuple(n - i for n, i in zip(size, inserted)),
        reach=reach,
        full=full.shape[1:],
        kernels=w.shape,
        swapped=swapped.shape,
        dilated=dilated.shape if dilated is not swapped else None,
        correlated=correlated.shape[1:],
        cropped=dx.shape[1:] if any(g.padding_totals) else None,
        last_tap=tuple(k - 1 for k in g.kernel_size),
        between=tuple(s - 1 for s in g.stride),
        tap_gaps=tuple(d - 1 for d in g.dilation),
        worked=worked,
        whole_window=whole_window,
        border=corner if corner.nonzero_terms < worked.nonzero_terms else None,
        weight=weight,
        shortcut=shortcut,
        formulas=layer_formulas(g),
        tensors=tensors,
        grid_before=grid_before,
        grid_after=grid_after,
        kernel_before=w[f_first.filter, worked.channel_in_group],
        kernel_after=swapped[worked.index[1], f_first.depth_index],
        kernel_slice=(f_first.filter, worked.channel_in_group, worked.index[1], f_first.depth_index),
        padded_map=_padded_dy_map(kinds, worked, g.ndim),
        input_map=_input_map(g, weight, input_kinds),
        proofs=tuple(proofs),
    )
