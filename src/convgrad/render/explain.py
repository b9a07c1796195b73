"""`convgrad explain` for people: the derivation with the layer's own numbers, in 80 columns.

Reads a `Derivation` (explain.py) only; every shape shown is the shape of an array the derivation
computed.
"""

from __future__ import annotations

from typing import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from convgrad.explain import PROOF_TOLERANCE, Derivation
from convgrad.geometry import format_axes, format_shape

__all__ = ["render_explain"]

_OUT_INDEX = {1: ("i",), 2: ("i", "j"), 3: ("h", "i", "j")}
_TAP_INDEX = {1: ("u",), 2: ("u", "v"), 3: ("t", "u", "v")}


def _position(stride: Sequence[int], dilation: Sequence[int], ndim: int) -> str:
    """'s*i + d*u, ...' with this layer's own numbers (factors of 1 left out)."""
    parts = []
    for s, d, o, t in zip(stride, dilation, _OUT_INDEX[ndim], _TAP_INDEX[ndim]):
        parts.append(f"{f'{s}{o}' if s > 1 else o}+{f'{d}{t}' if d > 1 else t}")
    return ",".join(parts)


def _body(text: str, style: str = "") -> Padding:
    """Indented text whose wrapped lines keep the indent."""
    return Padding(Text(text, style=style), (0, 0, 0, 2))


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


def _forward(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    out, taps = _OUT_INDEX[g.ndim], _TAP_INDEX[g.ndim]
    depth = g.channels // g.groups
    over_c = "c" if g.groups == 1 else f"c in f's group ({depth} channels)"
    parts: list[RenderableType] = [
        _section("Forward: a cross-correlation"),
        _body(
            f"O[n,f,{','.join(out)}] = b[f] + Σ_{over_c} Σ_{','.join(taps)} "
            f"Xp[n,c,{_position(g.stride, g.dilation, g.ndim)}]·K[f,c,{','.join(taps)}]"
        ),
        _body(
            f"X {format_shape(g.x_shape)} (N x C x {' x '.join(g.axis_names)}), K {format_shape(g.w_shape)} "
            f"(F x C/g x k), b {g.filters}, O {format_shape(g.y_shape)}"
        ),
    ]
    if any(g.padding):
        padded = g.padded_spatial
        parts.append(_body(f"Xp is X zero-padded by {format_axes(g.padding)}: {g.channels}x{format_shape(padded)} per sample"))
    for name, h, p, k, dil, s, o in zip(g.axis_names, g.spatial, g.padding, g.kernel_size, g.dilation, g.stride, g.out_spatial):
        parts.append(_body(f"{name}: ⌊({h} + 2·{p} − {dil}·({k}−1) − 1) / {s}⌋ + 1 = {o}", style="dim"))
    return parts


def _bias(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    out = ",".join(_OUT_INDEX[g.ndim])
    return [
        _section("db: the sum of dO"),
        _body(f"db[f] = Σ_n Σ_{out} dO[n,f,{out}]"),
        _body(f"dO {format_shape(g.y_shape)} summed over N and {', '.join(g.axis_names)} gives db {g.filters}"),
    ]


def _weights(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    out, taps = ",".join(_OUT_INDEX[g.ndim]), ",".join(_TAP_INDEX[g.ndim])
    padded = g.padded_spatial
    x_name = "Xp" if any(g.padding) else "X"
    how = []
    if any(s > 1 for s in g.stride):
        how.append(f"dO's entries {format_axes(g.stride)} apart (the stride)")
    if any(dil > 1 for dil in g.dilation):
        how.append(f"the taps {format_axes(g.dilation)} apart (the dilation)")
    parts: list[RenderableType] = [
        _section("dK: a valid correlation of the input with dO"),
        _body(f"dK[f,c,{taps}] = Σ_n Σ_{out} dO[n,f,{out}]·{x_name}[n,c,{_position(g.stride, g.dilation, g.ndim)}]"),
        _body(
            f"{x_name} ({g.channels}x{format_shape(padded)}) correlated with each of the {g.filters} "
            f"channels of dO ({format_shape(d.dy)}) used as a kernel"
            + (f", {' and '.join(how)}" if how else "")
            + f", summed over the {g.batch} sample{'s' if g.batch > 1 else ''}: dK {format_shape(g.w_shape)}"
        ),
    ]
    if g.groups > 1:
        parts.append(_body(f"per group: kernel f only sees the {g.channels // g.groups} input channels of its group"))
    return parts


def _input(d: Derivation) -> list[RenderableType]:
    g = d.geometry
    f, depth = g.filters, g.channels // g.groups
    per_group_f = f // g.groups
    rows: list[tuple[str, str]] = [(f"dO, per sample ({g.batch} in the batch)", format_shape(d.dy))]
    if d.spread is not None:
        zeros = f"insert s−1 = {format_axes([s - 1 for s in g.stride])} zeros between neighbours (the stride)"
        if any(d.trailing_zeros):
            zeros += f", and {format_axes(d.trailing_zeros)} zeros at the end (positions no window reached)"
        rows.append((zeros, format_shape(d.spread)))
    rows.append((f"pad by dilation·(kernel−1) = {format_axes(d.reach)} on each side", format_shape(d.full)))
    rows.append((f"the kernels: {f} kernels of depth {depth}", format_shape(d.kernels)))
    swapped = (
        f"rotate each 180° and swap (transpose) the kernel and channel axes: "
        f"{g.channels} kernels of depth {per_group_f}"
    )
    if g.groups > 1:
        swapped += (
            f" (per group: {per_group_f} kernels of depth {depth} become {depth} kernels of depth "
            f"{per_group_f}, for each of the {g.groups} groups)"
        )
    rows.append((swapped, format_shape(d.swapped)))
    if d.dilated_extent is not None:
        rows.append((
            f"dilate them: {format_axes([v - 1 for v in g.dilation])} zeros between taps, so each spans "
            "dilation·(kernel−1)+1",
            format_axes(d.dilated_extent),
        ))
    valid = "a valid correlation of the padded dO with them"
    if g.groups > 1:
        valid += f", group by group ({per_group_f} channels of dO each)"
    rows.append((valid, format_shape(d.correlated)))
    if d.cropped is not None:
        rows.append((f"crop the padding {format_axes(g.padding)} off each side", format_shape(d.cropped)))
    return [
        _section("dX: a full convolution of dO with the kernels rotated 180°"),
        Padding(_steps(rows), (0, 0, 0, 2)),
        _body(f"dX[n,c] = Σ_f full_conv(dO[n,f], rot180(K[f,c]))" + ("  (f in c's group)" if g.groups > 1 else "")),
    ]


def _proof(d: Derivation) -> list[RenderableType]:
    parts: list[RenderableType] = [
        _section("Proof: the steps above against central finite differences"),
        _body(
            f"dX by zero_insert, pad, rotate_and_swap, correlate and crop exactly as shown; "
            f"dK and db by their sums. Every coordinate, float64, seed {d.seed}:",
            style="dim",
        ),
    ]
    for p in d.proofs:
        parts.append(_body(
            f"{p.tensor:<3} rel error {p.max_rel_error:.2e}  abs error {p.max_abs_error:.2e}  "
            f"over {p.checked} coordinates ({p.forward_calls} calls)"
        ))
    worst = max(p.max_rel_error for p in d.proofs)
    if d.holds:
        parts.append(Text.assemble(("HOLDS", "bold green"), f": every error is below {PROOF_TOLERANCE:g} (largest {worst:.2e})"))
    else:
        parts.append(Text.assemble(("DOES NOT HOLD", "bold red"), f": largest error {worst:.2e} is above {PROOF_TOLERANCE:g}"))
    return parts


def render_explain(d: Derivation) -> RenderableType:
    """The whole derivation: forward, db, dK, dX step by step, and the proof."""
    header = Text.assemble(("convgrad explain", "bold"), f"\n{d.geometry.describe()}")
    return Group(header, *_forward(d), *_bias(d), *_weights(d), *_input(d), *_proof(d))
