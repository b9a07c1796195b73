"""`convgrad explain` for people: the answer first, the trap named, then the derivation with the
layer's own numbers, pictures, worked coordinates and the proof, in 80 columns.

Reads a `Derivation` only: every shape shown is the shape of an array the derivation computed,
every value one it read or multiplied, and every formula is printed from the structure a test
evaluates (explain/formulas.py). Words are used in one sense throughout: a correlation slides a
kernel as it is, a convolution flips it first.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from rich.columns import Columns
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from convgrad.explain.derivation import Derivation, KernelGrid, PlaneMap, WorkedCoordinate, WorkedProduct
from convgrad.explain.formula import Formula, affine
from convgrad.explain.formulas import IN_INDEX, OUT_INDEX, TAP_INDEX
from convgrad.explain.library import transpose_call
from convgrad.geometry import LayerGeometry, format_axes, format_shape, plural
from convgrad.render.fit import Fields

__all__ = ["render_explain", "explain_sections", "Section"]

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


def _printed(formula: Formula, indent: int = 4) -> list[RenderableType]:
    """A formula as the structure prints it, and what its lets mean."""
    parts: list[RenderableType] = [_body(formula.text(), indent=indent)]
    if formula.lets:
        parts.append(_body(f"where {formula.where()}", style="dim", indent=indent + 2))
    return parts


# The sections' headings, in order.
ANSWER, TRAP, WHY, PICTURES, WORKED_DX, WORKED_DK, PROOF = (
    "The answer", "The trap", "Why: the derivation, index by index", "The swap and the rotation, pictured",
    "One coordinate of dX, worked out", "One coordinate of dK, worked out", "Proof",
)


def _section(title: str, rest: str = "") -> Text:
    return Text.assemble(("\n" + title, "bold"), rest)


def _steps(rows: list[tuple[str, str]]) -> Table:
    """Numbered steps, each with the shape it produces; wrapped text stays under its step."""
    table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False, show_edge=False, expand=True)
    table.add_column("number", justify="right", no_wrap=True)
    table.add_column("step", ratio=1)
    table.add_column("shape", justify="right", no_wrap=True, style="cyan")
    for number, (step, shape) in enumerate(rows, start=1):
        table.add_row(f"{number}.", step, shape)
    return table


def _answer(d: Derivation) -> list[RenderableType]:
    """How dO becomes dX for these numbers, shape by shape: the question the learner asked."""
    g = d.geometry
    f, depth = g.filters, d.kernels[1]
    per_group_f = d.swapped[1]  # F/g: the depth of K'
    rows: list[tuple[str, str]] = [(f"dO = ∂E/∂O, per sample ({plural(g.batch, 'sample')} in the batch)", format_shape(d.dy))]
    if d.spread is not None:
        zeros = f"S: insert stride−1 = {_zeros(d.between)} between neighbours"
        if any(d.trailing_zeros):
            zeros += f", and {_zeros(d.trailing_zeros)} at the end (positions no window reached)"
        rows.append((zeros, format_shape(d.spread)))
    source = d.source_name
    rows.append((f"P: pad {source} by dilation·(kernel−1) = {_zeros(d.reach)} on each side", format_shape(d.full)))
    rows.append((f"K: {plural(f, 'kernel')} of depth {depth}", format_shape(d.kernels)))
    swapped = (
        f"K': rotate each kernel 180° and swap the kernel and depth axes: "
        f"{plural(g.channels, 'kernel')} of depth {per_group_f}"
    )
    if g.groups > 1:
        swapped += (
            f" (per group: {plural(per_group_f, 'kernel')} of depth {depth} "
            f"{'becomes' if per_group_f == 1 else 'become'} {plural(depth, 'kernel')} of depth {per_group_f}, "
            f"in each of the {g.groups} groups)"
        )
    rows.append((swapped, format_shape(d.swapped)))
    if d.dilated is not None and d.dilated_extent is not None:
        rows.append((
            f"dilate them: {_zeros(d.tap_gaps)} between taps, so each spans "
            f"dilation·(kernel−1)+1 = {format_axes(d.dilated_extent)}",
            format_shape(d.dilated),
        ))
    valid = "a valid correlation of P with K' (each kernel slides over P unflipped, summing over its depth)"
    if g.groups > 1:
        valid += f", group by group ({plural(per_group_f, 'channel')} of P each)"
    if d.cropped is None:
        rows.append((f"dX = {valid}", format_shape(d.correlated)))
    else:
        rows.append((f"dXp = {valid}", format_shape(d.correlated)))
        rows.append((f"dX: crop {_cropped(g)} off" + ("" if g.uneven_padding else " each side"), format_shape(d.cropped)))
    return [
        _section(f"{ANSWER}: dO {format_shape(d.dy)} becomes dX {format_shape(g.in_shape)}"),
        Padding(_steps(rows), (0, 0, 0, 2)),
        _body(
            f"And dK {format_shape(g.w_shape)} is a valid correlation of {_input_words(d)} with dO"
            f"{_weight_spacing(g)}; db {g.filters} is dO summed over the samples and positions."
        ),
    ]


def _input_words(d: Derivation) -> str:
    return "Xp (X padded)" if d.padded else "X"


def _weight_spacing(g: LayerGeometry) -> str:
    """', dO's entries 2 apart (the stride) and the taps 2 apart (the dilation)', or ''."""
    how = []
    if any(s > 1 for s in g.stride):
        how.append(f"dO's entries {format_axes(g.stride)} apart (the stride)")
    if any(dil > 1 for dil in g.dilation):
        how.append(f"the taps {format_axes(g.dilation)} apart (the dilation)")
    return f", {' and '.join(how)}" if how else ""


def _trap_settings(d: Derivation) -> str:
    """What the layer's settings add to 'the full correlation of dO with K rotated 180°'."""
    g = d.geometry
    parts = []
    if d.spread is not None:
        parts.append("dO first spread out by the stride (S)")
    if d.dilated is not None:
        parts.append("K's taps spread by the dilation")
    if g.groups > 1:
        parts.append("group by group")
    if d.padded:
        parts.append("the padding cropped off at the end")
    return f" ({', '.join(parts)})" if parts else ""


def _trap(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    call = transpose_call(g, d.trailing_zeros)
    library = (
        f"torch.nn.functional.{call} (or torch.nn.grad.conv{g.ndim}d_input)" if call is not None else
        f"torch's conv_transpose{g.ndim}d, which cannot express this padding"
    )
    return [
        _section(TRAP),
        _body(
            "Deep-learning libraries call the forward a convolution, but it is a correlation: "
            "Σ_u a[y+u]·k[u], the kernel slides as it is. A convolution flips the kernel first: "
            "Σ_u a[y−u]·k[u], so np.convolve(a, k) = np.correlate(a, k[::-1], 'full'). "
            "Valid: only where the kernel lies inside the input; full: wherever it overlaps it, "
            "which is valid after padding by (kernel extent)−1 zeros on each side."
        ),
        _body(
            "dX is the full convolution of dO with K as it is, which is the full correlation of dO "
            f"with K rotated 180°{_trap_settings(d)}, the steps above. Rotating K and then convolving "
            "(np.convolve, scipy.signal.convolve2d, \"a full convolution with the rotated kernel\") rotates "
            "twice: wrong."
        ),
        _body(
            f"Libraries call this dX the transposed convolution of dO with the same K: {library}; "
            f"tf.nn.conv{g.ndim}d_transpose; jax.lax.conv_transpose with transpose_kernel=True (without it, "
            "JAX does not flip the kernel); cuDNN's backward data."
        ),
    ]


def _forward(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    x_name = d.input_name
    parts: list[RenderableType] = [
        _body(
            "E is the loss, one number computed from O. Backward is given dO = ∂E/∂O and returns "
            "dX = ∂E/∂X, dK = ∂E/∂K and db = ∂E/∂b, each the shape of its own tensor."
        ),
        _body(f"Forward: O is a valid correlation of {x_name} with the kernels, plus b", style="bold"),
        *_printed(d.formulas.forward),
        _body(
            f"X {format_shape(g.x_shape)} (N x C x {' x '.join(g.axis_names)}), K {format_shape(g.w_shape)} "
            f"(F x C/groups x kernel), b {g.filters}, O {format_shape(g.y_shape)}"
        ),
    ]
    if d.formulas.padded_input is not None:
        parts.append(_body(f"Xp is X with {_padding_sides(g)}: {g.channels}x{format_shape(g.padded_spatial)} per sample"))
        parts.extend(_printed(d.formulas.padded_input))
    for name, h, (p, a), k, dil, s, o in zip(g.axis_names, g.spatial, g.padding_pairs, g.kernel_size, g.dilation,
                                            g.stride, g.out_spatial):
        padded = f"{h} + 2·{p}" if p == a else f"{h} + {p} + {a}"
        parts.append(_body(f"{name}: ⌊({padded} − {dil}·({k}−1) − 1) / {s}⌋ + 1 = {o}", style="dim", indent=4))
    return parts


def _bias_and_weights(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    x_name = d.input_name
    return [
        _body("db: the sum of dO", style="bold"),
        *_printed(d.formulas.bias),
        _body("dK: a valid correlation of the input with dO", style="bold"),
        *_printed(d.formulas.weights),
        _body(
            f"{x_name} ({g.channels}x{format_shape(g.padded_spatial)}) correlated with each channel of dO "
            f"({format_shape(d.dy)}) used as a kernel"
            + _weight_spacing(g)
            + f", summed over the batch ({plural(g.batch, 'sample')}): dK {format_shape(g.w_shape)}"
            + (f"; kernel f only sees the {plural(d.kernels[1], 'input channel')} of its group" if g.groups > 1 else "")
        ),
    ]


def _dx_steps(d: Derivation) -> list[RenderableType]:
    """The chain rule, the substitution u = k-1-u' (the rotation) and the sum over f (the swap),
    index by index, with this layer's numbers."""
    g = d.geometry
    fs = d.formulas
    nd = g.ndim
    out, taps, ins = OUT_INDEX[nd], TAP_INDEX[nd], IN_INDEX[nd]
    primed = tuple(f"{t}'" for t in taps)
    padded = d.padded
    xname = d.input_name
    source = d.source_name
    y = _join(ins)
    forward_at = " and ".join(
        f"{_times(s, o)}+{_times(dil, t)} = {i}" for s, dil, o, t, i in zip(g.stride, g.dilation, out, taps, ins)
    )
    tap_range = ", ".join(f"{t} in 0..{last}" for t, last in zip(taps, d.last_tap))
    substitution = ", ".join(f"{t} = {affine(last, (tp, -1)).text()}" for t, last, tp in zip(taps, d.last_tap, primed))
    shifted = ", ".join(
        f"{affine(i, (t, -dil)).text()} = {affine(i, (tp, dil), -r).text()}"
        for i, dil, t, tp, r in zip(ins, g.dilation, taps, primed, d.reach)
    )
    in_group = " of c's group" if g.groups > 1 else ""
    step2: list[RenderableType] = [
        Text(
            f"By O's formula, ∂O[n,f,{_join(out)}]/∂{xname}[n,c,{y}] is K's tap with {forward_at} "
            f"({tap_range}) for the filters f{in_group}, and 0 where no tap lands on {y}. Keeping those terms:"
        ),
        *_printed(fs.by_taps),
    ]
    if fs.spread is not None:
        step2 += [Text(f"where S is dO spread out by the stride, {_zeros(d.between)} between neighbours, 0 elsewhere:"),
                  *_printed(fs.spread)]
    else:
        step2.append(Text(f"where dO is 0 outside its {format_shape(d.dy[1:])} positions."))
    step2.append(Text(f"Position minus tap: a convolution of {source} with K."))
    steps: list[tuple[str, list[RenderableType]]] = [
        ("1.", [Text(f"The chain rule: {xname}[n,c,{y}] reaches E only through the outputs it feeds, so"),
                *_printed(fs.chain_rule)]),
        ("2.", step2),
        ("3.", [
            Text(
                f"The rotation. Substitute {substitution} (the primed taps run over the same range): "
                f"{shifted}. So with P, {source} padded by {_zeros(d.reach)} on each side,"
            ),
            *_printed(fs.padded_dy),
            *_printed(fs.rotated),
            Text("Position plus tap: a correlation, with K read back to front on every axis: rotated 180°."),
        ]),
        ("4.", [
            Text("The swap. For a fixed c the sum runs over the kernel axis of K. Name"),
            *_printed(fs.swapped_kernels),
            Text(
                f"K' has {plural(d.swapped[0], 'kernel')} (one per c) of depth {d.swapped[1]} "
                f"(one per filter{in_group}), and"
            ),
            *_printed(fs.swapped),
            Text(
                "is the forward's own formula with P for X and K' for K: a valid correlation of P with K'"
                + (f", its taps {format_axes(g.dilation)} apart" if d.dilated is not None else "") + "."
            ),
        ]),
    ]
    if fs.cropped is not None:
        steps.append(("5.", [Text("The padding is cropped off:"), *_printed(fs.cropped)]))
    table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    table.add_column("number", no_wrap=True)
    table.add_column("step", ratio=1)
    for number, content in steps:
        table.add_row(number, Group(*content))
    parts: list[RenderableType] = [_body("dX, in four steps" + (" and a crop" if padded else ""), style="bold")]
    if padded:
        parts.append(_body("Work with the padded input Xp and its gradient dXp = ∂E/∂Xp (dX is dXp without the padding)."))
    parts.append(Padding(table, (0, 0, 0, 2)))
    parts.extend(_shortcut(d))
    return parts


def _shortcut(d: Derivation) -> list[RenderableType]:
    """Padding by the reach and cropping p is padding by reach − p: one step less."""
    s, fs = d.shortcut, d.formulas
    if s is None or fs.shortcut_padded_dy is None or fs.shortcut is None:
        return []
    g = d.geometry
    source = d.source_name
    before, after = [b for b, _ in s.sides], [a for _, a in s.sides]
    if all(side >= 0 for side in before + after) and not g.uneven_padding:
        how = f"pad {source} by dilation·(kernel−1) − padding = {_zeros(before)} on each side"
    else:
        how = (f"pad {source} by dilation·(kernel−1) − padding: {_signed_axes(before)} before, "
               f"{_signed_axes(after)} after" + (" (negative: crop that many)" if min(before + after) < 0 else ""))
    return [
        _body(
            f"Shortcut: instead of padding by {_zeros(d.reach)} and cropping {_cropped(g)}, {how} "
            f"(Q, {format_shape(s.shape)}) and correlate; nothing is left to crop:"
        ),
        *_printed(fs.shortcut_padded_dy),
        *_printed(fs.shortcut),
        _body(f"the same dX (largest difference {s.max_difference:.1e}).", style="dim", indent=4),
    ]


def _signed_axes(values: Sequence[int]) -> str:
    """'1x0', '−1x2': per axis, with a minus sign that matches the formulas'."""
    return format_axes(values).replace("-", "−")


def _why(d: Derivation) -> list[RenderableType]:
    return [_section(WHY), *_forward(d), *_bias_and_weights(d), *_dx_steps(d)]


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
    taps, primed = TAP_INDEX[g.ndim], tuple(f"{t}'" for t in TAP_INDEX[g.ndim])
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
            _grid_picture(f"K: {plural(g.filters, 'kernel')} x depth {d.kernels[1]}", d.grid_before, "f", "c'" if g.groups > 1 else "c"),
            _grid_picture(f"K': {plural(g.channels, 'kernel')} x depth {d.swapped[1]}", d.grid_after, "c", "f'" if g.groups > 1 else "f"),
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
        _section(PICTURES),
        _body(
            f"Each cell 'f,c' is the kernel slice K[f,c]; the swap moves it to row c, column f of K'{capped}:"
            if g.groups == 1 else
            f"Each cell 'f,c'' is the kernel slice K[f,c']; the swap moves it to row c = "
            f"{affine(('g', d.kernels[1]), 'c' + chr(39)).text()}, column f' of K', g being f's group and f' f's "
            f"place in it{capped}:"
        ),
        Padding(grids, (0, 0, 0, 2)),
        _body(f"and the rotation reverses its taps on every axis ({rotation}):"),
        Padding(kernels, (0, 0, 0, 2)),
    ]



_OUTSIDE = {"pad": "·", "zero": "∘", "value": "●"}
_INSIDE = {"pad": "□", "zero": "□", "value": "■"}


def _position(m: PlaneMap, row: int, column: int) -> tuple[int, ...]:
    """Where the cell pictured at (row, column) lies in the plane, along its shown axes."""
    return (m.origin[0] + column,) if len(m.axes) == 1 else (m.origin[0] + row, m.origin[1] + column)


def _plane_map(m: PlaneMap, legend: str) -> Text:
    """A plane of a padded tensor from its corner, the positions read marked (by glyph as well as
    colour, so it reads with NO_COLOR)."""
    flat = len(m.axes) == 1  # 1-D: a single row, positions along L
    column0 = m.origin[-1]
    # Column labels every 5 positions, each starting above its own column (two characters apiece).
    labels = "".join(f"{column0 + k:<10}" for k in range(-column0 % 5, len(m.kinds[0]), 5))
    text = Text()
    text.append("    " + " " * 2 * (-column0 % 5) + labels.rstrip() + "\n", style="dim")
    for r, row in enumerate(m.kinds):
        text.append("    " if flat else f"{_position(m, r, 0)[0]:>3} ", style="dim")
        for k, kind in enumerate(row):
            read = _position(m, r, k) in m.taps
            text.append((_INSIDE if read else _OUTSIDE)[kind] + " ", style=_WINDOW_STYLE if read else "")
        text.append("\n")
    text.append(legend, style="dim")
    return text


def _value(v: float) -> str:
    """A factor of a product, negative ones in parentheses."""
    return f"({v:.3f})".replace("-", "−") if v < 0 else f"{v:.3f}"


def _term(t: WorkedProduct) -> str:
    return f"{_value(t.dy)}·{_value(t.kernel)}"


def _number(v: float, digits: int) -> str:
    return f"{v:.{digits}f}".replace("-", "−")


_TERMS_PER_FILTER = 6  # products listed per filter (two lines at 80 columns); the rest as "+ N more"


def _plane_caption(m: PlaneMap, g: LayerGeometry, shape: Sequence[int]) -> str:
    """'22x22; the first 10x10 shown' (or 'rows 10 to 45, columns 0 to 9 shown'), with the cut of a
    3-D plane."""
    names = [g.axis_names[a] for a in m.axes]
    plane = f"the {' x '.join(names)} plane at {g.axis_names[0]} = {format_axes(m.cut)}, " if m.cut else ""
    extents = [len(m.kinds), len(m.kinds[0])][-len(m.axes):]
    if tuple(m.size) == tuple(extents):
        shown = "all shown"
    elif not any(m.origin):
        shown = f"the first {format_shape(extents)} shown"
    else:
        spans = [f"{word} {start} to {start + n - 1}" for word, start, n in zip(("rows", "columns")[-len(m.axes):], m.origin, extents)]
        shown = f"{', '.join(spans)} shown"
    return f"{format_shape(shape)}; {plane}{shown}"


def _products(w: WorkedCoordinate) -> list[RenderableType]:
    """The non-zero products of a worked dX coordinate, filter by filter, and their sum."""
    zero = f" (the other {w.zero_terms} of {w.all_terms} read padding or inserted zeros: 0)" if w.zero_terms else ""
    parts: list[RenderableType] = [_body(f"The {plural(w.nonzero_terms, 'product')} where the window lies on an entry of dO{zero}:")]
    lines = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    lines.add_column("f", no_wrap=True, style="dim")
    lines.add_column("products", ratio=1)
    lines.add_column("sum", justify="right", no_wrap=True, vertical="bottom")
    for filter_terms in w.filters[: w.shown]:
        values = [t for t in filter_terms.terms if t.kind == "value"]
        listed = " + ".join(_term(t) for t in values[:_TERMS_PER_FILTER]) or "(none)"
        if len(values) > _TERMS_PER_FILTER:
            listed += f" + {len(values) - _TERMS_PER_FILTER} more"
        lines.add_row(f"f={filter_terms.filter}", listed, f"= {_number(filter_terms.partial, 4)}")
    if w.hidden_filters:
        lines.add_row("", f"the other {w.hidden_filters} filters together", f"= {_number(w.rest, 4)}")
    index = _join([str(i) for i in w.index])
    return parts + [
        Padding(lines, (0, 0, 0, 2)),
        _body(Text.assemble(f"sum {_number(w.total, 9)}, and dX[{index}] computed by the steps is ", (_number(w.dx, 9), "bold"))),
    ]


def _coordinate(formula: Formula, index: Sequence[int]) -> str:
    return formula.text_at(formula.coordinate_of(index))


def _worked_dx(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    w: WorkedCoordinate = d.worked
    n, c = w.index[:2]
    index = _join([str(i) for i in w.index])
    window = _join([f"{start}:{stop}" + (f":{dil}" if dil > 1 else "") for (start, stop), dil in zip(w.window, g.dilation)])
    m = d.padded_map
    inserted = " (and the zeros the stride inserts)" if d.spread is not None else ""
    where = (f"its window lies wholly on dO{inserted}" if d.whole_window else
             "no window of this layer lies wholly on dO; this one reads the most of it")
    dx_name = "dXp" if d.cropped is not None else "dX"
    filters = "every filter f" if g.groups == 1 else "each filter of c's group"
    padded_index = _join([str(i) for i in (n, c, *(q for q, _ in w.window))])
    parts: list[RenderableType] = [
        _section(WORKED_DX, f": dX[{index}]"),
        _body(f"Chosen because {where}. By " + (f"steps 4 and 5, dX[{index}] = dXp[{padded_index}] and" if d.cropped is not None else "step 4,")),
        _body(_coordinate(d.formulas.swapped, (n, c, *(q for q, _ in w.window)) if dx_name == "dXp" else w.index), indent=6),
        _body(
            f"The window P[{n},f,{window}] of {filters}, on P of filter {m.channel} "
            f"({_plane_caption(m, g, d.full[1:])}):"
        ),
        Padding(_plane_map(m, _legend(m, "dO")), (0, 0, 0, 2)),
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
    parts.extend(_products(w))
    if d.border is not None:
        b = d.border
        border_index = _join([str(i) for i in b.index])
        parts.append(_body(
            f"At the border, dX[{border_index}]: its window hangs over the padding of dO, so only "
            f"{b.nonzero_terms} of its {b.all_terms} products can be non-zero: fewer outputs read that input."
        ))
        parts.extend(_products(b)[1:])
    return parts


def _cells(m: PlaneMap) -> list[tuple[tuple[int, ...], str]]:
    """Every cell pictured, by its position in the plane (along the shown axes) and its kind."""
    return [(_position(m, r, k), kind) for r, row in enumerate(m.kinds) for k, kind in enumerate(row)]


def _legend(m: PlaneMap, value: str) -> str:
    """What the glyphs of this map mean, those it shows only."""
    shown = {(kind, position in m.taps) for position, kind in _cells(m)}
    meanings = [
        (("pad", False), "· padding"), (("zero", False), "∘ zero inserted by the stride"), (("value", False), f"● {value}"),
        (("pad", True), "□ read, on padding"), (("zero", True), "□ read, on an inserted zero"), (("value", True), f"■ read, on {value}"),
    ]
    return "  ".join(text for key, text in meanings if key in shown)


_WEIGHT_PRODUCTS = 4  # products of the worked dK listed; the rest as "+ N more"


def _worked_dk(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    k = d.weight
    index = _join([str(i) for i in k.index])
    x_name = "Xp" if any(g.padding_totals) else "X"
    # Products that read an entry of X first: those over the padding are 0 and teach nothing.
    terms = sorted(k.terms, key=lambda t: t.on_padding)
    listed = " + ".join(
        f"dO[{_join([str(t.dy_index[0]), str(k.index[0]), *map(str, t.dy_index[1:])])}]·"
        f"{x_name}[{_join([str(t.x_position[0]), str(k.channel), *map(str, t.x_position[1:])])}]"
        for t in terms[:_WEIGHT_PRODUCTS]
    )
    values = " + ".join(f"{_value(t.dy)}·{_value(t.x)}" for t in terms[:_WEIGHT_PRODUCTS])
    more = f" + {len(terms) - _WEIGHT_PRODUCTS} more" if len(terms) > _WEIGHT_PRODUCTS else ""
    on_padding = sum(t.on_padding for t in terms)
    padding_note = f" ({on_padding} of them read padding: 0)" if on_padding else ""
    m = d.input_map
    return [
        _section(WORKED_DK, f": dK[{index}]"),
        _body(_coordinate(d.formulas.weights, k.index), indent=6),
        _body(
            f"One product per sample and output position, {plural(len(terms), 'product')}{padding_note}: dO of "
            f"filter {k.index[0]} slides over {x_name} of channel {k.channel}, shifted by dilation·tap = "
            f"{format_axes([d_ * u for d_, u in zip(g.dilation, k.index[2:])])}. The positions of {x_name} it reads, in sample 0 "
            f"({_plane_caption(m, g, g.padded_spatial)}):"
        ),
        Padding(_plane_map(m, _legend(m, "X")), (0, 0, 0, 2)),
        _body(f"{listed}{more}", indent=4),
        _body(f"= {values}{more}", indent=4),
        _body(Text.assemble(
            f"sum {_number(k.total, 9)}, and dK[{index}] computed by the reference layer (its own dK formula) is ",
            (_number(k.dk, 9), "bold"),
        )),
    ]


def _proof(d: Derivation) -> list[RenderableType]:
    used = (["zero_insert"] if d.spread is not None else []) + ["pad", "rotate_and_swap"] + (
        ["dilate"] if d.dilated is not None else []) + ["correlate"] + (["crop"] if d.cropped is not None else [])
    steps = ", ".join(used[:-1]) + " and " + used[-1]
    parts: list[RenderableType] = [
        _section(PROOF, ": the steps above against central finite differences"),
        _body(
            f"dX by {steps}, exactly as shown; dK and db by their sums. At every coordinate, in float64, "
            f"seed {d.seed}:",
            style="dim",
        ),
    ]
    for p in d.proofs:
        parts.append(_body(
            f"{p.tensor:<3} rel error {p.max_rel_error:.2e}  abs error {p.max_abs_error:.2e}  "
            f"at {'the' if p.checked == 1 else 'all'} {plural(p.checked, 'coordinate')}"
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


Section = tuple[str, list[RenderableType]]  # a heading, and what follows it


def explain_sections(d: Derivation) -> list[Section]:
    """The answer and the trap first, then the derivation, pictures, worked coordinates and the
    proof: each section's heading and body, for the terminal and for the page alike."""
    sections = []
    for parts in (_answer(d), _trap(d), _why(d), _pictures(d), _worked_dx(d), _worked_dk(d), _proof(d)):
        heading, *body = parts
        assert isinstance(heading, Text)  # every section starts with its _section() heading
        sections.append((heading.plain.strip(), body))
    return sections


def render_explain(d: Derivation) -> RenderableType:
    """The whole explanation for the terminal: the layer, then every section under its heading."""
    header = Group(Text("convgrad explain", style="bold"), Fields(d.geometry.describe_fields()))
    return Group(header, *(part for heading, body in explain_sections(d) for part in (_section(heading), *body)))
