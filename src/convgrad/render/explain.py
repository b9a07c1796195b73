"""`convgrad explain` for people: the derivation with the layer's own numbers, in 80 columns.

Reads a `Derivation` (explain.py) only: every shape shown is the shape of an array the derivation
computed, every value one it read or multiplied. Words are used in one sense throughout: a
correlation slides a kernel as it is, a convolution flips it first.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from convgrad.explain import Derivation, KernelGrid, PaddedMap, Term, WorkedCoordinate
from convgrad.geometry import LayerGeometry, format_axes, format_shape, plural
from convgrad.render.fit import Fields

__all__ = ["render_explain"]

_OUT_INDEX = {1: ("i",), 2: ("i", "j"), 3: ("h", "i", "j")}  # positions in O
_TAP_INDEX = {1: ("u",), 2: ("u", "v"), 3: ("t", "u", "v")}  # taps in K
_IN_INDEX = {1: ("y",), 2: ("y", "x"), 3: ("z", "y", "x")}  # positions in X
_WINDOW_STYLE = "bold yellow"


def _zeros(values: Sequence[int]) -> str:
    """'1 zero', '2 zeros', '1x0 zeros' (per axis)."""
    return f"{format_axes(values)} zero{'' if all(v == 1 for v in values) else 's'}"


def _padding_sides(g: LayerGeometry) -> str:
    """'1x0 zeros of padding on each side', or 'the padding 0,1 (0 zeros before, 1 zero after)'
    when the sides differ (TensorFlow's 'SAME' at a stride)."""
    if not g.uneven_padding:
        return f"{_zeros(g.padding)} of padding on each side"
    return f"the padding {g.padding_text} ({_zeros(g.padding)} before, {_zeros(g.padding_end)} after)"


def _cropped(g: LayerGeometry) -> str:
    """'the padding 1', or 'the padding 0,1 (0 zeros before, 1 zero after)'."""
    return _padding_sides(g) if g.uneven_padding else f"the padding {g.padding_text}"


def _times(factor: int, index: str) -> str:
    """'2i', or 'i' for a factor of 1."""
    return f"{factor}{index}" if factor > 1 else index


def _join(parts: Sequence[str]) -> str:
    return ",".join(parts)


def _body(text: str | Text, style: str = "", indent: int = 2) -> Padding:
    """Indented text whose wrapped lines keep the indent."""
    return Padding(text if isinstance(text, Text) else Text(text, style=style), (0, 0, 0, indent))


def _formula(text: str, indent: int = 4) -> Padding:
    return _body(text, indent=indent)


def _section(title: str) -> Text:
    return Text(f"\n{title}", style="bold")


def _steps(rows: list[tuple[str, str]]) -> Table:
    """Numbered steps, each with the shape it produces; wrapped text stays under its step."""
    table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False, show_edge=False, expand=True)
    table.add_column("number", justify="right", no_wrap=True)
    table.add_column("step", ratio=1)
    table.add_column("shape", justify="right", no_wrap=True, style="cyan")
    for number, (step, shape) in enumerate(rows, start=1):
        table.add_row(f"{number}.", step, shape)
    return table


def _words() -> list[RenderableType]:
    return [
        _section("Words, as used below"),
        _body("correlation  (a ⋆ k)[y] = Σ_u a[y+u]·k[u]   k slides over a as it is"),
        _body("convolution  (a ∗ k)[y] = Σ_u a[y−u]·k[u]   k is flipped first"),
        _body(
            "So a convolution with k is a correlation with k rotated 180° (every axis reversed): "
            "np.convolve(a, k) = np.correlate(a, k[::-1], 'full'). Valid: only where k lies inside "
            "a. Full: wherever k overlaps a at all, which equals valid on a after padding it with "
            "(size of k)−1 zeros on each side."
        ),
        _body(
            "E is the loss, one number computed from O. Backward is given dO = ∂E/∂O and returns "
            "dX = ∂E/∂X, dK = ∂E/∂K and db = ∂E/∂b, each the shape of its own tensor."
        ),
    ]


def _position(stride: Sequence[int], dilation: Sequence[int], ndim: int) -> str:
    """'s*i + d*u, ...' with this layer's own numbers (factors of 1 left out)."""
    return _join([
        f"{_times(s, o)}+{_times(d, t)}" for s, d, o, t in zip(stride, dilation, _OUT_INDEX[ndim], _TAP_INDEX[ndim])
    ])


def _forward(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    out, taps = _OUT_INDEX[g.ndim], _TAP_INDEX[g.ndim]
    depth = d.kernels[1]  # C/g, read off K
    over_c = "c" if g.groups == 1 else f"c in f's group ({plural(depth, 'channel')})"
    x_name = "Xp" if any(g.padding_totals) else "X"
    parts: list[RenderableType] = [
        _section(f"Forward: O is a valid correlation of {x_name} with the kernels, plus b"),
        _body(
            f"O[n,f,{_join(out)}] = b[f] + Σ_{over_c} Σ_{_join(taps)} "
            f"{x_name}[n,c,{_position(g.stride, g.dilation, g.ndim)}]·K[f,c,{_join(taps)}]"
        ),
        _body(
            f"X {format_shape(g.x_shape)} (N x C x {' x '.join(g.axis_names)}), K {format_shape(g.w_shape)} "
            f"(F x C/g x k), b {g.filters}, O {format_shape(g.y_shape)}"
        ),
    ]
    if any(g.padding_totals):
        parts.append(_body(
            f"Xp is X with {_padding_sides(g)}: "
            f"{g.channels}x{format_shape(g.padded_spatial)} per sample"
        ))
    if g.groups > 1:
        parts.append(_body(f"c' is c's place within its group of {plural(depth, 'channel')}, the depth index of K"))
    for name, h, (p, a), k, dil, s, o in zip(g.axis_names, g.spatial, g.padding_pairs, g.kernel_size, g.dilation,
                                            g.stride, g.out_spatial):
        padded = f"{h} + 2·{p}" if p == a else f"{h} + {p} + {a}"
        parts.append(_body(f"{name}: ⌊({padded} − {dil}·({k}−1) − 1) / {s}⌋ + 1 = {o}", style="dim"))
    return parts


def _bias(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    out = _join(_OUT_INDEX[g.ndim])
    return [
        _section("db: the sum of dO"),
        _body(f"db[f] = Σ_n Σ_{out} dO[n,f,{out}]"),
        _body(f"dO {format_shape(g.y_shape)} summed over N and {', '.join(g.axis_names)} gives db {g.filters}"),
    ]


def _weights(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    out, taps = _join(_OUT_INDEX[g.ndim]), _join(_TAP_INDEX[g.ndim])
    x_name = "Xp" if any(g.padding_totals) else "X"
    how = []
    if any(s > 1 for s in g.stride):
        how.append(f"dO's entries {format_axes(g.stride)} apart (the stride)")
    if any(dil > 1 for dil in g.dilation):
        how.append(f"the taps {format_axes(g.dilation)} apart (the dilation)")
    parts: list[RenderableType] = [
        _section("dK: a valid correlation of the input with dO"),
        _body(f"dK[f,c,{taps}] = Σ_n Σ_{out} dO[n,f,{out}]·{x_name}[n,c,{_position(g.stride, g.dilation, g.ndim)}]"),
        _body(
            f"{x_name} ({g.channels}x{format_shape(g.padded_spatial)}) correlated with each of the {g.filters} "
            f"channels of dO ({format_shape(d.dy)}) used as a kernel"
            + (f", {' and '.join(how)}" if how else "")
            + f", summed over the {plural(g.batch, 'sample')}: dK {format_shape(g.w_shape)}"
        ),
    ]
    if g.groups > 1:
        parts.append(_body(f"per group: kernel f only sees the {plural(d.kernels[1], 'input channel')} of its group"))
    return parts


def _dx_headline(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    source = "S" if d.spread is not None else "dO"
    kernel = "K[f,c']" if g.groups > 1 else "K[f,c]"
    qualifiers = []
    if d.spread is not None:
        qualifiers.append(f"S is dO with {_zeros(d.between)} inserted between neighbours (the stride)")
    if d.dilated is not None:
        qualifiers.append(f"the kernels' taps are {format_axes(g.dilation)} apart (the dilation)")
    if g.groups > 1:
        qualifiers.append("f runs over c's group only")
    if d.cropped is not None:
        qualifiers.append(f"the result is dXp, and dX is dXp with {_cropped(g)} cropped off")
    parts: list[RenderableType] = [
        _section("dX: a full correlation of dO with the kernels rotated 180° and swapped"),
        _body("(the same thing as a full convolution of dO with the kernels as they are)"),
        _formula(f"dX[n,c] = Σ_f full_corr({source}[n,f], rot180({kernel}))", indent=6),
        _formula(f"        = Σ_f full_conv({source}[n,f], {kernel})", indent=6),
    ]
    if qualifiers:
        parts.append(_body("where " + "; ".join(qualifiers) + "."))
    return parts


def _derivation(d: Derivation) -> list[RenderableType]:
    """The chain rule, the substitution u = k-1-u' (the rotation) and the sum over f (the swap),
    index by index, with this layer's numbers."""
    g = d.geometry
    nd = g.ndim
    out, taps, ins = _OUT_INDEX[nd], _TAP_INDEX[nd], _IN_INDEX[nd]
    primed = tuple(f"{t}'" for t in taps)
    padded = any(g.padding_totals)
    strided = d.spread is not None
    grouped = g.groups > 1
    xname, dxname = ("Xp", "dXp") if padded else ("X", "dX")
    source = "S" if strided else "dO"
    c_in_k = "c'" if grouped else "c"
    over_f = "Σ_f" if not grouped else "Σ_f∈group(c)"
    y = _join(ins)
    lhs = f"{dxname}[n,c,{y}]"
    forward_at = " and ".join(f"{_times(s, o)}+{_times(dil, t)} = {i}" for s, dil, o, t, i in zip(g.stride, g.dilation, out, taps, ins))
    tap_range = ", ".join(f"{t} in 0..{last}" for t, last in zip(taps, d.last_tap))
    minus = _join([f"{i}−{_times(dil, t)}" for i, dil, t in zip(ins, g.dilation, taps)])
    plus = _join([f"{i}+{_times(dil, t)}" for i, dil, t in zip(ins, g.dilation, primed)])
    rotated_taps = _join([f"{last}−{t}" for last, t in zip(d.last_tap, primed)])
    substitution = ", ".join(f"{t} = {last}−{tp}" for t, last, tp in zip(taps, d.last_tap, primed))
    shifted = ", ".join(
        f"{i}−{_times(dil, t)} = ({i}+{_times(dil, tp)})−{r}" for i, dil, t, tp, r in zip(ins, g.dilation, taps, primed, d.reach)
    )
    padded_index = _join([f"{a}−{r}" for a, r in zip(("a", "b", "e")[:nd], d.reach)])

    depth_after, kernels_after = d.swapped[1], d.swapped[0]
    f_in_k2 = "f'" if grouped else "f"
    where_source = (
        f"where S is dO spread out by the stride: S[n,f,{_join([_times(s, o) for s, o in zip(g.stride, out)])}] "
        f"= dO[n,f,{_join(out)}], with {_zeros(d.between)} between neighbours, 0 elsewhere."
        if strided else f"where dO is 0 outside its {format_shape(d.dy[1:])} positions."
    )
    steps: list[tuple[str, list[RenderableType]]] = [
        ("1.", [
            Text(f"The chain rule: {xname}[n,c,{y}] reaches E only through the outputs it feeds, so"),
            _formula(f"{lhs} = Σ_f Σ_{_join(out)} dO[n,f,{_join(out)}] · ∂O[n,f,{_join(out)}]/∂{xname}[n,c,{y}]"),
        ]),
        ("2.", [
            Text(
                f"By O's formula, ∂O[n,f,{_join(out)}]/∂{xname}[n,c,{y}] is K[f,{c_in_k},{_join(taps)}] for the "
                f"tap with {forward_at} ({tap_range}), and 0 where no tap lands on {y}. Keeping those terms:"
            ),
            _formula(f"{lhs} = {over_f} Σ_{_join(taps)} {source}[n,f,{minus}] · K[f,{c_in_k},{_join(taps)}]"),
            Text(f"{where_source} Position minus tap: a convolution of {source} with K."),
        ]),
        ("3.", [
            Text(
                f"The rotation. Substitute {substitution} (the primed taps run over the same range): "
                f"{shifted}. So with P, {source} padded by {_zeros(d.reach)} on each side, "
                f"P[n,f,{_join(('a', 'b', 'e')[:nd])}] = {source}[n,f,{padded_index}]:"
            ),
            _formula(f"{lhs} = {over_f} Σ_{_join(primed)} P[n,f,{plus}] · K[f,{c_in_k},{rotated_taps}]"),
            Text(f"Position plus tap: a correlation, with K[f,{c_in_k}] read back to front on every axis: rotated 180°."),
        ]),
        ("4.", [
            Text(
                f"The swap. For a fixed c the sum runs over f, the kernel axis of K. Name "
                f"K'[c,{f_in_k2},{_join(primed)}] = K[f,{c_in_k},{rotated_taps}]"
                + (f" (f' is f's place in c's group): K' has {kernels_after} kernels of depth {depth_after}"
                   if grouped else f": K' has {kernels_after} kernels (one per c) of depth {depth_after} (one per f)")
                + ", and"
            ),
            _formula(f"{lhs} = {over_f} Σ_{_join(primed)} P[n,f,{plus}] · K'[c,{f_in_k2},{_join(primed)}]"),
            Text(
                "is the forward's own formula with P for X and K' for K: a valid correlation of P with K'"
                + (f", its taps {format_axes(g.dilation)} apart" if d.dilated is not None else "")
                + "."
                + (f" Then dX[n,c,{y}] = dXp[n,c,{_join([f'{i}+{p}' for i, p in zip(ins, g.padding)])}]: "
                   "the padding is cropped off." if padded else "")
            ),
        ]),
    ]
    table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    table.add_column("number", no_wrap=True)
    table.add_column("step", ratio=1)
    for number, content in steps:
        table.add_row(number, Group(*content))
    parts: list[RenderableType] = [_section("Why: the derivation, index by index")]
    if padded:
        parts.append(_body("Work with the padded input Xp and its gradient dXp = ∂E/∂Xp (dX is dXp without the padding)."))
    parts.append(Padding(table, (0, 0, 0, 2)))
    return parts


def _tensor_steps(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    f, depth = g.filters, d.kernels[1]
    per_group_f = d.swapped[1]  # F/g: the depth of K'

    rows: list[tuple[str, str]] = [(f"dO, per sample ({g.batch} in the batch)", format_shape(d.dy))]
    if d.spread is not None:
        zeros = f"S: insert s−1 = {_zeros(d.between)} between neighbours (the stride)"
        if any(d.trailing_zeros):
            zeros += f", and {_zeros(d.trailing_zeros)} at the end (positions no window reached)"
        rows.append((zeros, format_shape(d.spread)))
    rows.append((f"P: pad by dilation·(kernel−1) = {_zeros(d.reach)} on each side", format_shape(d.full)))
    rows.append((f"K: {f} kernels of depth {depth}", format_shape(d.kernels)))
    swapped = (
        f"K': rotate each 180° and swap (transpose) the kernel and depth axes: "
        f"{g.channels} kernels of depth {per_group_f}"
    )
    if g.groups > 1:
        swapped += (
            f" (per group: {plural(per_group_f, 'kernel')} of depth {depth} become "
            f"{plural(depth, 'kernel')} of depth {per_group_f}, for each of the {g.groups} groups)"
        )
    rows.append((swapped, format_shape(d.swapped)))
    if d.dilated is not None and d.dilated_extent is not None:
        rows.append((
            f"dilate them: {_zeros(d.tap_gaps)} between taps, so each spans "
            f"dilation·(kernel−1)+1 = {format_axes(d.dilated_extent)}",
            format_shape(d.dilated),
        ))
    valid = "a valid correlation of P with them"
    if g.groups > 1:
        valid += f", group by group ({per_group_f} channels of P each)"
    rows.append((valid, format_shape(d.correlated)))
    if d.cropped is not None:
        rows.append((f"crop {_cropped(g)} off" + ("" if g.uneven_padding else " each side"), format_shape(d.cropped)))
    return [_section("As tensors, per sample"), Padding(_steps(rows), (0, 0, 0, 2))]


def _grid_table(grid: KernelGrid, row: str, column: str) -> Table:
    """Cell (r, k) shows 'f,c' of the kernel slice K[f,c] that sits there."""
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_header=True, header_style="dim")
    table.add_column("", style="dim", no_wrap=True)
    shown_columns = len(grid.cells[0]) if grid.cells else 0
    for k in range(shown_columns):
        table.add_column(f"{column}={k}", justify="center", no_wrap=True)
    if grid.columns > shown_columns:
        table.add_column("…", no_wrap=True)
    for r, cells in enumerate(grid.cells):
        table.add_row(f"{row}={r}", *(f"{f},{c}" for f, c in cells), *(["…"] if grid.columns > shown_columns else []))
    if grid.rows > len(grid.cells):
        table.add_row("⋮", *(["⋮"] * shown_columns), *([""] if grid.columns > shown_columns else []))
    return table


def _grid_picture(title: str, grid: KernelGrid, row: str, column: str) -> Group:
    return Group(Text(title, style="bold"), _grid_table(grid, row, column))


def _kernel_table(values: np.ndarray, rows: str, columns: str) -> Table:
    """The values of one 1-D or 2-D kernel slice, with its tap indices."""
    grid = values if values.ndim == 2 else values.reshape(1, -1)
    table = Table(box=None, padding=(0, 1), pad_edge=False, header_style="dim")
    table.add_column("", style="dim", no_wrap=True)
    for k in range(grid.shape[1]):
        table.add_column(f"{columns}={k}", justify="right", no_wrap=True)
    for r, row in enumerate(grid):
        table.add_row(f"{rows}={r}" if values.ndim == 2 else "", *(f"{v:+.2f}".replace("-", "−") for v in row))
    return table


def _pictures(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    f0, c_in_group, c0, f_in_group = d.kernel_slice
    before, after = d.kernel_before, d.kernel_after
    taps, primed = _TAP_INDEX[g.ndim], tuple(f"{t}'" for t in _TAP_INDEX[g.ndim])
    cut_before = cut_after = ""
    if before.ndim == 3:  # 3-D kernels: one depth slice each, the slices the rotation pairs up
        last = d.last_tap[0]
        before, after = before[last], after[0]
        cut_before, cut_after = f",{taps[0]}={last}", f",{primed[0]}=0"
    rotation = ", ".join(f"{t}' = {last}−{t}" for t, last in zip(taps, d.last_tap))
    capped = " (first rows and columns)" if (d.grid_before.rows > len(d.grid_before.cells)
                                             or d.grid_after.rows > len(d.grid_after.cells)) else ""
    grids = Columns(
        [
            _grid_picture(f"K: {g.filters} kernels x depth {d.kernels[1]}", d.grid_before, "f", "c'" if g.groups > 1 else "c"),
            _grid_picture(f"K': {g.channels} kernels x depth {d.swapped[1]}", d.grid_after, "c", "f'" if g.groups > 1 else "f"),
        ],
        padding=(0, 4),
    )
    kernels = Columns(
        [
            Group(Text(f"K[{f0},{c_in_group}{cut_before}]", style="bold"), _kernel_table(before, taps[-2] if before.ndim == 2 else "", taps[-1])),
            Group(Text(f"K'[{c0},{f_in_group}{cut_after}]: the same, rotated 180°", style="bold"),
                  _kernel_table(after, primed[-2] if after.ndim == 2 else "", primed[-1])),
        ],
        padding=(0, 4),
    )
    return [
        _section("The swap and the rotation, pictured"),
        _body(f"Each cell 'f,c' is the kernel slice K[f,c]; the swap moves it to row c, column f of K'{capped}:"),
        Padding(grids, (0, 0, 0, 2)),
        _body(f"and the rotation reverses its taps on every axis ({rotation}):"),
        Padding(kernels, (0, 0, 0, 2)),
    ]


_OUTSIDE = {"pad": "·", "zero": "∘", "value": "●"}
_INSIDE = {"pad": "□", "zero": "□", "value": "■"}


def _padded_map(m: PaddedMap, g: LayerGeometry) -> Text:
    """The padded dO of one filter as a map, the positions the worked window reads marked (by
    glyph as well as colour, so it reads with NO_COLOR)."""
    columns = len(m.kinds[0])
    flat = len(m.axes) == 1  # 1-D: a single row, positions along L
    text = Text()
    text.append("    " + "".join(f"{k:<10}" for k in range(0, columns, 5)).rstrip() + "\n", style="dim")
    for r, row in enumerate(m.kinds):
        text.append("    " if flat else f"{r:>3} ", style="dim")
        for k, kind in enumerate(row):
            read = ((k,) if flat else (r, k)) in m.taps
            text.append((_INSIDE if read else _OUTSIDE)[kind] + " ", style=_WINDOW_STYLE if read else "")
        text.append("\n")
    text.append("· padding  ", style="dim")
    if any(s > 1 for s in g.stride):
        text.append("∘ zero inserted by the stride  ", style="dim")
    text.append("● dO  □ ■ read by the window (on a zero, on dO)", style="dim")
    return text


def _term(t: Term) -> str:
    """'P·K′' of one product, negative factors in parentheses."""
    def value(v: float) -> str:
        return f"({v:.3f})".replace("-", "−") if v < 0 else f"{v:.3f}"

    return f"{value(t.dy)}·{value(t.kernel)}"


def _number(v: float, digits: int) -> str:
    return f"{v:.{digits}f}".replace("-", "−")


_TERMS_PER_FILTER = 6  # products listed per filter (two lines at 80 columns); the rest as "+ N more"


def _worked(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    w: WorkedCoordinate = d.worked
    nd = g.ndim
    primed = tuple(f"{t}'" for t in _TAP_INDEX[nd])
    index = _join([str(i) for i in w.index])
    n, c = w.index[:2]
    corner = [start for start, _ in w.window]
    position = _join([f"{y}+{_times(dil, t)}" for y, dil, t in zip(corner, g.dilation, primed)])
    window = _join([f"{start}:{stop}" for start, stop in w.window])
    over_f = "Σ_f" if g.groups == 1 else "Σ_f∈group(c)"
    f_name = "f" if g.groups == 1 else "f'"  # K's depth index: f itself, or f's place in its group
    m = d.padded_map
    names = [g.axis_names[a] for a in m.axes]
    plane = f"the {' x '.join(names)} plane at {g.axis_names[0]} = {format_axes(m.cut)}, " if m.cut else ""
    shown = format_shape([len(m.kinds), len(m.kinds[0])] if len(m.axes) == 2 else [len(m.kinds[0])])
    window = _join([f"{start}:{stop}" + (f":{dil}" if dil > 1 else "") for (start, stop), dil in zip(w.window, g.dilation)])
    parts: list[RenderableType] = [
        _section(f"One coordinate, worked out: dX[{index}]"),
        _formula(f"dX[{index}] = {over_f} Σ_{_join(primed)} P[{n},f,{position}] · K'[{c},{f_name},{_join(primed)}]", indent=6),
        _body(
            f"The window P[{n},f,{window}] of every filter f, on P of filter {m.filter} "
            f"({format_shape(d.full[1:])}; {plane}the first {shown} shown):"
        ),
        Padding(_padded_map(m, g), (0, 0, 0, 2)),
    ]
    example = next(
        (t for f in w.filters for t in f.terms if t.kind == "value" and t.tap != t.kernel_tap),
        next((t for f in w.filters for t in f.terms if t.kind == "value"), None),
    )
    if example is not None and example.dy_index is not None:
        f_example = next(f for f in w.filters if example in f.terms)
        parts.append(_body(
            f"A product is P times K' at the same tap: e.g. P[{n},{f_example.filter},{_join([str(q) for q in example.position])}] "
            f"= dO[{n},{f_example.filter},{_join([str(q) for q in example.dy_index])}] = {_number(example.dy, 3)}, times "
            f"K'[{c},{f_example.depth_index},{_join([str(u) for u in example.tap])}] "
            f"= K[{f_example.filter},{w.channel_in_group},{_join([str(u) for u in example.kernel_tap])}] = {_number(example.kernel, 3)}."
        ))
    parts.append(_body(
        f"The {w.nonzero_terms} products where the window lies on an entry of dO "
        f"(the other {w.zero_terms} of {w.all_terms} are 0):"
    ))
    lines = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    lines.add_column("f", no_wrap=True, style="dim")
    lines.add_column("products", ratio=1)
    lines.add_column("sum", justify="right", no_wrap=True)
    for filter_terms in w.filters[: w.shown]:
        values = [t for t in filter_terms.terms if t.kind == "value"]
        listed = " + ".join(_term(t) for t in values[:_TERMS_PER_FILTER]) or "(none)"
        if len(values) > _TERMS_PER_FILTER:
            listed += f" + {len(values) - _TERMS_PER_FILTER} more"
        lines.add_row(f"f={filter_terms.filter}", listed, f"= {_number(filter_terms.partial, 4)}")
    if w.hidden_filters:
        lines.add_row("", f"the other {plural(w.hidden_filters, 'filter')} together", f"= {_number(w.rest, 4)}")
    parts.append(Padding(lines, (0, 0, 0, 2)))
    parts.append(_body(Text.assemble(
        f"sum {_number(w.total, 9)}, and dX[{index}] computed by the steps is ",
        (_number(w.dx, 9), "bold"),
    )))
    return parts


def _proof(d: Derivation) -> list[RenderableType]:
    steps = "zero_insert, pad, rotate_and_swap, " + ("dilate, " if d.dilated is not None else "") + "correlate and crop"
    parts: list[RenderableType] = [
        _section("Proof: the steps above against central finite differences"),
        _body(
            f"dX by {steps} exactly as shown; dK and db by their sums. Every coordinate, float64, "
            f"seed {d.seed}:",
            style="dim",
        ),
    ]
    for p in d.proofs:
        parts.append(_body(
            f"{p.tensor:<3} rel error {p.max_rel_error:.2e}  abs error {p.max_abs_error:.2e}  "
            f"over {p.checked} coordinates ({plural(p.forward_calls, 'call')})"
        ))
    worst = max(p.max_rel_error for p in d.proofs)
    if d.holds:
        parts.append(Text.assemble(
            ("HOLDS", "bold green"),
            f": every error is within {d.tolerance:g} of its tensor's scale, the tolerance of convgrad "
            f"check in float64 (largest {worst:.2e})",
        ))
    else:
        parts.append(Text.assemble(
            ("DOES NOT HOLD", "bold red"),
            f": largest error {worst:.2e} is above {d.tolerance:g}, the tolerance of convgrad check in float64",
        ))
    return parts


def render_explain(d: Derivation) -> RenderableType:
    """The whole derivation: words, forward, db, dK, dX with its derivation, tensors, pictures, a
    worked coordinate, and the proof."""
    header = Group(Text("convgrad explain", style="bold"), Fields(d.geometry.describe_fields()))
    return Group(
        header, *_words(), *_forward(d), *_bias(d), *_weights(d), *_dx_headline(d), *_derivation(d),
        *_tensor_steps(d), *_pictures(d), *_worked(d), *_proof(d),
    )
