"""Every formula `convgrad explain` prints, built for one layer's geometry.

Groups are written out rather than hinted at: with g groups, kernel f reads the channels
Cg·⌊f/Fg⌋ + c' (c' < Cg = C/g, the depth index of K), and dX's channel c collects the filters
Fg·⌊c/Cg⌋ + f' (f' < Fg = F/g). A sum over a single value is left out (depthwise layers have no
Σ_f'), and so is a let nobody reads.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional

from convgrad.explain.formula import Affine, Derivative, Formula, Let, Read, Term, affine, variable
from convgrad.geometry import LayerGeometry

__all__ = ["LayerFormulas", "layer_formulas", "OUT_INDEX", "TAP_INDEX", "IN_INDEX"]

OUT_INDEX = {1: ("i",), 2: ("i", "j"), 3: ("h", "i", "j")}  # positions in O
TAP_INDEX = {1: ("u",), 2: ("u", "v"), 3: ("t", "u", "v")}  # taps in K
IN_INDEX = {1: ("y",), 2: ("y", "x"), 3: ("z", "y", "x")}  # positions in X
PADDED_INDEX = {1: ("a",), 2: ("a", "b"), 3: ("a", "b", "e")}  # positions in S before padding


@dataclass(frozen=True)
class LayerFormulas:
    """The forward, db, dK, and dX derived in four steps (with the tensors they name), for one layer."""

    forward: Formula  # O from Xp (or X) and K, plus b
    padded_input: Optional[Formula]  # Xp from X; None without padding
    bias: Formula  # db
    weights: Formula  # dK
    spread: Optional[Formula]  # S from dO; None at stride 1
    padded_dy: Formula  # P from S (or dO)
    chain_rule: Formula  # step 1: dXp (or dX) through ∂O/∂Xp
    by_taps: Formula  # step 2: position minus tap, a convolution
    rotated: Formula  # step 3: position plus tap, K read back to front
    swapped_kernels: Formula  # K' from K
    swapped: Formula  # step 4: a valid correlation of P with K'
    cropped: Optional[Formula]  # dX from dXp; None without padding
    shortcut_padded_dy: Optional[Formula]  # Q: S padded by d·(k−1)−p, with padding only
    shortcut: Optional[Formula]  # dX as a valid correlation of Q with K', with padding only

    def named(self) -> tuple[tuple[str, Formula], ...]:
        """Every formula there is, by field name."""
        found = ((f.name, getattr(self, f.name)) for f in fields(self))
        return tuple((name, formula) for name, formula in found if formula is not None)


Extents = tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class _Members:
    """The members (channels, or filters) of the group of one index `of` (a filter, or a channel)."""

    absolute: Affine  # a member's own index: members·g + member', or the member itself without groups
    inner: Affine  # its index within the group (K's depth index, or K''s)
    sums: tuple[str, ...]  # Σ over the members; empty for a single member
    extents: Extents
    group_lets: tuple[Let, ...]  # g = ⌊of/of_per_group⌋
    place: Affine  # of's own place within its group
    place_lets: tuple[Let, ...]


def _members(of: str, of_per_group: int, member: str, members: int, groups: int) -> _Members:
    if groups == 1:
        return _Members(variable(member), variable(member), (member,), ((member, members),), (), variable(of), ())
    # One `of` per group (depthwise): its group is itself, and no let is needed to say so.
    group, group_lets = (of, ()) if of_per_group == 1 else ("g", (Let("g", of, of_per_group, "div", f"{of}'s group"),))
    place_let = Let(f"{of}'", of, of_per_group, "mod", f"{of}'s place in its group")
    place, place_lets = (affine(0), ()) if of_per_group == 1 else (variable(f"{of}'"), (place_let,))
    if members == 1:
        return _Members(variable(group), affine(0), (), (), group_lets, place, place_lets)
    inner = f"{member}'"
    return _Members(affine((group, members), inner), variable(inner), (inner,), ((inner, members),), group_lets, place,
                    place_lets)


def _reads(tensor: str, *index: Affine) -> Read:
    return Read(tensor, index)


def _plus(*parts: Affine) -> Affine:
    return Affine(tuple(p for part in parts for p in part.parts))


def _scaled(factor: int, name: str) -> Affine:
    return affine((name, factor))


def layer_formulas(g: LayerGeometry) -> LayerFormulas:
    nd = g.ndim
    out, taps, ins, pos = OUT_INDEX[nd], TAP_INDEX[nd], IN_INDEX[nd], PADDED_INDEX[nd]
    primed = tuple(f"{t}'" for t in taps)
    padded = any(g.padding_totals)
    strided = any(s > 1 for s in g.stride)
    before = tuple(b for b, _ in g.padding_pairs)
    reach = tuple(d * (k - 1) for k, d in zip(g.kernel_size, g.dilation))
    depth, per_group = g.channels // g.groups, g.filters // g.groups  # Cg, Fg
    x_name, dx_name = ("Xp", "dXp") if padded else ("X", "dX")
    source = "S" if strided else "dO"

    out_vars = [variable(o) for o in out]
    tap_vars = [variable(t) for t in taps]
    in_vars = [variable(i) for i in ins]
    primed_vars = [variable(t) for t in primed]
    windows = [_plus(_scaled(s, o), _scaled(d, t)) for s, d, o, t in zip(g.stride, g.dilation, out, taps)]
    n, c, f = variable("n"), variable("c"), variable("f")

    batch = (("n", g.batch),)
    out_extents = tuple(zip(out, g.out_spatial))
    tap_extents = tuple(zip(taps, g.kernel_size))
    primed_extents = tuple(zip(primed, g.kernel_size))
    in_extents = tuple(zip(ins, g.padded_spatial if padded else g.spatial))

    kernel_channels = _members("f", per_group, "c", depth, g.groups)  # forward, dK: kernel f's channels
    channel_filters = _members("c", depth, "f", per_group, g.groups)  # dX: the filters channel c feeds
    channel_of_f, depth_index = kernel_channels.absolute, kernel_channels.inner
    channel_sums, channel_extents, f_lets = kernel_channels.sums, kernel_channels.extents, kernel_channels.group_lets
    filter_of_c, filter_in_group = channel_filters.absolute, channel_filters.inner
    filter_sums, filter_extents, k_depth = channel_filters.sums, channel_filters.extents, channel_filters.place
    c_lets = channel_filters.group_lets + channel_filters.place_lets
    filter_extent_all = (("f", g.filters),)

    def sums(*groups: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
        return tuple(group for group in groups if group)

    forward = Formula(
        lhs=_reads("O", n, f, *out_vars),
        terms=(
            Term((), (_reads("b", f),)),
            Term(sums(channel_sums, taps), (_reads(x_name, n, channel_of_f, *windows), _reads("K", f, depth_index, *tap_vars))),
        ),
        extents=batch + filter_extent_all + out_extents + channel_extents + tap_extents,
        lets=f_lets,
    )
    padded_input = None if not padded else Formula(
        lhs=_reads("Xp", n, c, *(affine(i, p) for i, p in zip(ins, before))),
        terms=(Term((), (_reads("X", n, c, *in_vars),)),),
        extents=batch + (("c", g.channels),) + tuple(zip(ins, g.spatial)),
    )
    bias = Formula(
        lhs=_reads("db", f),
        terms=(Term(sums(("n",), out), (_reads("dO", n, f, *out_vars),)),),
        extents=filter_extent_all + batch + out_extents,
    )
    k_index = (f, depth_index, *tap_vars)
    weights = Formula(
        lhs=_reads("dK", *k_index),
        terms=(Term(sums(("n",), out), (_reads("dO", n, f, *out_vars), _reads(x_name, n, channel_of_f, *windows))),),
        extents=filter_extent_all + channel_extents + tap_extents + batch + out_extents,
        lets=f_lets,
    )
    spread = None if not strided else Formula(
        lhs=_reads("S", n, f, *(_scaled(s, o) for s, o in zip(g.stride, out))),
        terms=(Term((), (_reads("dO", n, f, *out_vars),)),),
        extents=batch + filter_extent_all + out_extents,
    )
    source_extents = tuple(zip(pos, (hp - r for hp, r in zip(g.padded_spatial, reach))))
    padded_dy = Formula(
        lhs=_reads("P", n, f, *(affine(a, r) for a, r in zip(pos, reach))),
        terms=(Term((), (_reads(source, n, f, *(variable(a) for a in pos)),)),),
        extents=batch + filter_extent_all + source_extents,
    )

    lhs = _reads(dx_name, n, c, *in_vars)
    dx_extents = batch + (("c", g.channels),) + in_extents
    chain_rule = Formula(
        lhs=lhs,
        terms=(Term(sums(("f",), out), (
            _reads("dO", n, f, *out_vars),
            Derivative(_reads("O", n, f, *out_vars), _reads(x_name, n, c, *in_vars)),
        )),),
        extents=dx_extents + filter_extent_all + out_extents,
    )
    k_of_filter = (filter_of_c, k_depth)
    by_taps = Formula(
        lhs=lhs,
        terms=(Term(sums(filter_sums, taps), (
            _reads(source, n, filter_of_c, *(affine(i, (t, -d)) for i, t, d in zip(ins, taps, g.dilation))),
            _reads("K", *k_of_filter, *tap_vars),
        )),),
        extents=dx_extents + filter_extents + tap_extents,
        lets=c_lets,
    )
    window_plus = [affine(i, (t, d)) for i, t, d in zip(ins, primed, g.dilation)]
    rotated_taps = [affine(k - 1, (t, -1)) for k, t in zip(g.kernel_size, primed)]
    rotated = Formula(
        lhs=lhs,
        terms=(Term(sums(filter_sums, primed), (
            _reads("P", n, filter_of_c, *window_plus), _reads("K", *k_of_filter, *rotated_taps),
        )),),
        extents=dx_extents + filter_extents + primed_extents,
        lets=c_lets,
    )
    swapped_kernels = Formula(
        lhs=_reads("K'", c, filter_in_group, *primed_vars),
        terms=(Term((), (_reads("K", *k_of_filter, *rotated_taps),)),),
        extents=(("c", g.channels),) + filter_extents + primed_extents,
        lets=c_lets,
    )

    def correlation_with_swapped(lhs: Read, padded_dy: str, extents: tuple[tuple[str, int], ...]) -> Formula:
        return Formula(
            lhs=lhs,
            terms=(Term(sums(filter_sums, primed), (
                _reads(padded_dy, n, filter_of_c, *window_plus), _reads("K'", c, filter_in_group, *primed_vars),
            )),),
            extents=extents + filter_extents + primed_extents,
            lets=channel_filters.group_lets,
        )

    swapped = correlation_with_swapped(lhs, "P", dx_extents)
    cropped = shortcut_padded_dy = shortcut = None
    if padded:
        plain_extents = batch + (("c", g.channels),) + tuple(zip(ins, g.spatial))
        cropped = Formula(
            lhs=_reads("dX", n, c, *in_vars),
            terms=(Term((), (_reads("dXp", n, c, *(affine(i, p) for i, p in zip(ins, before))),)),),
            extents=plain_extents,
        )
        shortcut_padded_dy = Formula(
            lhs=_reads("Q", n, f, *(affine(a, r - p) for a, r, p in zip(pos, reach, before))),
            terms=(Term((), (_reads(source, n, f, *(variable(a) for a in pos)),)),),
            extents=batch + filter_extent_all + source_extents,
        )
        shortcut = correlation_with_swapped(_reads("dX", n, c, *in_vars), "Q", plain_extents)
    return LayerFormulas(
        forward=forward, padded_input=padded_input, bias=bias, weights=weights, spread=spread,
        padded_dy=padded_dy, chain_rule=chain_rule, by_taps=by_taps, rotated=rotated,
        swapped_kernels=swapped_kernels, swapped=swapped, cropped=cropped,
        shortcut_padded_dy=shortcut_padded_dy, shortcut=shortcut,
    )
