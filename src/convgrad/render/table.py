"""Rich renderables for people: a case's header, table of tensors, failure details and verdict.

Reads reports only; every number shown was computed by the checker.
"""

from __future__ import annotations

from typing import Iterable, Optional

from rich import box
from rich.console import Group, JustifyMethod, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from convgrad.geometry import format_shape
from convgrad.render.fit import Fields, FittingTable
from convgrad.render.findings import render_findings
from convgrad.report import CallCheck, CaseReport, Status, TensorComparison

__all__ = ["render_case", "render_verdict", "render_brief", "format_error", "STATUS_TEXT"]

# How each status reads, wherever it is shown.
STATUS_TEXT: dict[Status, tuple[str, str]] = {
    "error": ("ERROR", "bold magenta"),
    "failed": ("FAIL", "bold red"),
    "lost precision": ("LOST BITS", "bold red"),
    "not checked": ("NOT CHECKED", "dim"),
    "skipped": ("SKIP", "bold yellow"),
    "passed": ("PASS", "bold green"),
}


def format_error(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2e}"


def _status(tensor: TensorComparison) -> Text:
    if tensor.absent is not None:  # e.g. db of a bias-free layer: neither a pass nor a failure
        return Text(tensor.absent, style="dim")
    return Text(*STATUS_TEXT[tensor.status])


def _header(case: CaseReport) -> RenderableType:
    # Lines break between whole fields, never inside a shape, a path or a setting.
    g = case.geometry
    tol = case.tolerances
    return Group(
        Fields([Text(case.name, style="bold"), f"implementation: {case.implementation}"], separator="   "),
        Fields(g.describe_fields()),
        Fields(
            [f"dtype {g.dtype}", f"step {tol.relative_step:g} (relative)",
             f"rtol {tol.rtol:g} of each tensor's scale", f"seed {case.seed}"],
            separator="   ", style="dim",
        ),
    )


def _calls(count: int) -> str:
    return f"{count} forward call{'' if count == 1 else 's'}"


def _checked(tensor: TensorComparison) -> str:
    if not tensor.compared:
        return "-"
    if tensor.method == "projection":
        return f"{tensor.checked} dir"
    return str(tensor.checked) if tensor.checked == tensor.total else f"{tensor.checked}/{tensor.total}"


def _table(case: CaseReport) -> FittingTable:
    """The table of tensors. Shapes are never split: at a narrow width the columns least needed
    go first (tol is in the header, abs err beside rel err, got when it equals expected)."""
    same_shapes = all(t.shape == t.expected_shape for t in case.rows)
    precise = bool(case.reference_gradients)  # below float64: say which row is which comparison
    optional = ["tol", "abs err", *(["got"] if same_shapes else []), *(["bits"] if precise else []), "checked"]

    def build(dropped: frozenset[str], fold: bool) -> Table:
        # Method and forward calls go on the line below the table.
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, header_style="bold", pad_edge=False)
        against: list[tuple[str, JustifyMethod]] = [("against", "left")] if precise else []
        bits: list[tuple[str, JustifyMethod]] = [("bits", "right")] if precise else []
        columns: list[tuple[str, JustifyMethod]] = [
            ("tensor", "left"), ("shape" if "got" in dropped else "expected", "left"), ("got", "left"),
            ("abs err", "right"), ("rel err", "right"), ("tol", "right"), *bits,
            ("checked", "right"), *against, ("status", "left"),
        ]
        kept = [title for title, _ in columns if title not in dropped]
        for title, justify in columns:
            if title not in dropped:
                table.add_column(title, justify=justify, no_wrap=not fold, overflow="fold")
        for t in case.rows:
            cells: dict[str, RenderableType] = {
                "tensor": t.label if t.wrt is not None else t.name,
                # "reference" or "differences" (of the layer's forward or, for --order 2, its backward)
                "against": "differences" if t.compared_with.startswith("differences") else t.compared_with.split()[-1],
                "bits": str(t.precision.bits) if t.precision else "-",
                "expected": format_shape(t.expected_shape),
                "shape": format_shape(t.expected_shape),
                "got": Text(format_shape(t.shape), style="" if t.shape == t.expected_shape else "red"),
                "abs err": format_error(t.max_abs_error),
                "rel err": format_error(t.max_rel_error),
                "tol": f"{t.tolerance:.0e}",
                "checked": _checked(t),
                "status": _status(t),
            }
            table.add_row(*(cells[title] for title in kept))
        return table

    return FittingTable(build, optional)


def _methods(case: CaseReport) -> Text:
    """How each gradient's reference values were obtained, and what they cost."""
    large = case.large
    if large is not None:
        calls = sum(t.forward_calls for t in case.gradients)
        bound = "within rounding in the layer's dtype" if case.tensor("O").precision else "to the tolerance"
        return Text(
            f"a large case: every coordinate of O, {', '.join(case.compared_gradients)} against the float64 "
            f"reference ({bound}); each gradient tied to the layer's own forward along up to {large.samples} "
            f"random directions, one per coordinate at most ({_calls(calls)}); --method coloured differences "
            "every coordinate instead",
            style="dim",
        )
    parts = [
        f"{t.name} {t.method} ({_calls(t.forward_calls)})"
        for t in case.tensors
        if t.name != "O" and t.method != "none"
    ]
    text = "finite differences: " + ", ".join(parts) + "; " if parts else ""
    if not any(t.name == "O" for t in case.tensors):  # --no-forward-check
        return Text(text + "O not compared (--no-forward-check)", style="dim")
    o_row = case.tensor("O")
    if o_row.precision is None:
        return Text(text + "O against the reference convolution", style="dim")
    gradients = ", ".join(t.name for t in case.reference_gradients)
    also = f" and {gradients}" if gradients else ""
    return Text(
        text + f"O{also} against the float64 reference, each coordinate within "
        f"{o_row.precision.lam:g}·√n·u·B (u = 2^-{o_row.precision.dtype_bits}; bits: significant bits the "
        f"values carry, of {o_row.precision.dtype_bits})",
        style="dim",
    )


def _derivative_methods(case: CaseReport) -> list[Text]:
    """How the rows of `--order 2` and `--jvp` were compared, one dim line each."""
    lines = []
    second = [t for t in case.derivatives if t.wrt is not None and t.name != "O" and t.compared]
    if second:
        zeros = "dX wrt x, dK wrt w, db wrt x, w, b" if "db" in case.compared_gradients else "dX wrt x, dK wrt w"
        lines.append(Text(
            f"second order: {', '.join(t.label for t in second)}: the layer's backward differentiated by its "
            "framework, against central differences of its own backward and forward along random directions, "
            "every coordinate (two backward and two forward calls per tensor moved); the derivatives a "
            f"convolution keeps at zero ({zeros}), and those of every gradient together, are checked too and "
            "shown only when they do not hold",
            style="dim",
        ))
    unchecked = [t for t in case.derivatives if t.status == "not checked"]
    if unchecked:  # not wrong, so not among the failures below: say why here
        lines.append(Text(f"{', '.join(t.label for t in unchecked)}: {unchecked[0].reason}", style="dim"))
    forward = [t for t in case.derivatives if t.name == "O" and t.compared]
    if forward:
        lines.append(Text(
            "forward mode: " + ", ".join(f"{t.label} ({t.method.rpartition('(')[2].rstrip(')')})" for t in forward)
            + ", each output against the reference convolution's J·t: every entry of the Jacobian",
            style="dim",
        ))
    return lines


def _derivatives_too(case: CaseReport) -> str:
    """'; so do their derivatives (--order 2) and the forward mode (--jvp)' for a case checked with them."""
    asked = [what for what, on in (("their derivatives (--order 2)", case.order == 2), ("the forward mode (--jvp)", case.jvp))
             if on]
    verb = "does" if asked == ["the forward mode (--jvp)"] else "do"
    return f"; so {verb} {' and '.join(asked)}" if asked else ""


def _failure_details(tensor: TensorComparison) -> list[RenderableType]:
    parts: list[RenderableType] = [Text.assemble((f"{tensor.label}: ", "bold red"), tensor.reason or "")]
    if tensor.worst and not tensor.passed and tensor.mismatches > 0:  # else it failed for its reason alone
        reference = ("numerical" if tensor.compared_with == "finite differences"
                     else "differences" if tensor.compared_with.startswith("differences") else "reference")
        bounded = tensor.precision is not None
        worst = Table(box=None, padding=(0, 2), header_style="dim")
        worst.add_column("index")
        worst.add_column("analytical", justify="right")
        worst.add_column(reference, justify="right")
        worst.add_column("error / bound" if bounded else "rel error", justify="right")
        for c in tensor.worst:
            measure = c.bound_ratio if bounded and c.bound_ratio is not None else c.rel_error
            if measure <= (1.0 if bounded else tensor.tolerance):
                break
            shown = f"{measure:.3g}" if bounded else f"{measure:.2e}"
            worst.add_row(str(list(c.index)), f"{c.analytical:.10g}", f"{c.numerical:.10g}", shown)
        parts.append(Text(f"  mismatched coordinates: {tensor.mismatches} / {tensor.checked}"))
        parts.append(worst)
    return parts


def render_verdict(case: CaseReport) -> Text:
    if case.skipped is not None:
        return Text.assemble(STATUS_TEXT["skipped"], f": {case.skipped}")
    if case.passed:
        cost = f"({_calls(case.forward_calls)}, {case.elapsed_s:.2f} s)"
        compared = case.compared_gradients
        gradients = ", ".join(compared[:-1]) + f" and {compared[-1]}" if len(compared) > 1 else "".join(compared)
        noted = [t.label for t in case.noted]  # e.g. all zero: passed, but proves nothing
        but = (f"; but see the note on {', '.join(noted)}" if noted else "", "yellow")
        if case.reference_gradients:
            cost = f"and the float64 reference to {case.geometry.dtype} rounding {cost}"
        if case.large is not None:
            return Text.assemble(
                STATUS_TEXT["passed"],
                f": {gradients} match the float64 reference in all {case.coordinates_checked} coordinates and "
                f"the layer's own forward along up to {case.large.samples} random directions each {cost}"
                f"{_derivatives_too(case)}",
                but,
            )
        if not case.every_coordinate:
            return Text.assemble(
                STATUS_TEXT["passed"],
                f": {gradients} match finite differences where checked ({case.coordinates_checked} of "
                f"{case.coordinates_total} coordinates or directions; not every coordinate) {cost}{_derivatives_too(case)}",
                but,
            )
        return Text.assemble(
            STATUS_TEXT["passed"],
            f": {gradients} match finite differences in all {case.coordinates_checked} coordinates "
            f"{cost}{_derivatives_too(case)}",
            but,
        )
    if case.status == "error":  # the layer raised, returned the wrong shape, hung or died
        unchecked = " (not checked)" if case.nothing_compared else ""
        return Text.assemble(STATUS_TEXT["error"], f"{unchecked}: {case.failure_summary}")
    if case.failure:  # the layer itself failed (e.g. wrote into its input): say that, not "mismatch"
        return Text.assemble(STATUS_TEXT[case.status], f": {case.failure}")
    failing = [t for t in case.failing if t.status != "not checked"]  # left unchecked after a failure: not news
    if not failing:  # the first call held; a later one did not
        calls = ", ".join(c.name for group in case.distinct_calls for c in group)
        more = f"; {len(case.repeats)} more fail as an earlier call does" if case.repeats else ""
        return Text.assemble(STATUS_TEXT[case.status], f": the first call matches, but not the later calls ({calls}{more})")
    # A tensor wrong against both the differences and the float64 reference is named once.
    own_row = {t.name for t in failing if not t.reference_gradient and t.wrt is None}
    labels = list(dict.fromkeys(t.name if t.name in own_row and t.wrt is None else t.label for t in failing))
    if not any(t.compared for t in failing):  # it raised, or wrote into what it was handed: no values to match
        return Text.assemble(STATUS_TEXT[case.status], f": {', '.join(labels)} could not be computed")
    return Text.assemble(STATUS_TEXT[case.status], f": {', '.join(labels)} {'does' if len(labels) == 1 else 'do'} not match")


def _names(checks: Iterable[CallCheck]) -> str:
    return ", ".join(c.name for c in checks)


def _repeat_clauses(repeats: Iterable[CallCheck]) -> list[str]:
    """'second call: fails as the first call does' and, for calls that follow an earlier later
    call, 'memory layouts 1, ...: fail as an earlier call does'."""
    clauses, calls = [], list(repeats)
    for follows, earlier in ((False, "the first call"), (True, "an earlier call")):
        same = [c for c in calls if c.follows == follows]
        if same:
            clauses.append(f"{_names(same)}: {'fails' if len(same) == 1 else 'fail'} as {earlier} does")
    return clauses


def _later_calls(case: CaseReport) -> list[RenderableType]:
    """The later calls, after the first call's diagnosis: one dim line per part (the call
    protocol, the network scenario) with the calls that held or failed only because the first
    call did; then a block for each reason a later call fails in its own way."""
    if not case.calls:
        return []
    parts: list[RenderableType] = []
    repeats = case.repeats
    for part, title in (("call protocol", "later calls"), ("network scenario", "network scenario")):
        checks = [c for c in case.calls if c.part == part]
        if not checks:
            continue
        clauses = [", ".join(f"{c.name} {STATUS_TEXT[c.status][0]}" for c in checks if c not in repeats)]
        clauses += _repeat_clauses(c for c in checks if c in repeats)
        parts.append(Text(f"{title}: " + "; ".join(c for c in clauses if c), style="dim"))
    for group in case.distinct_calls:
        parts.append(Text.assemble((f"{_names(group)}: ", "bold red"), group[0].reason or "does not match"))
        if len(group) == 1:
            how = Text(f"called with {group[0].called_with}; compared with {group[0].compared_with}", style="dim")
            parts.append(Padding(how, (0, 0, 0, 2)))  # wrapped lines keep the indent
    return parts


def render_case(case: CaseReport) -> RenderableType:
    """Header, table, the first call's failures with where and why (the cause), then the later
    calls (the consequences, and what fails in its own way), notes and warnings, verdict."""
    parts: list[RenderableType] = [_header(case), _table(case), _methods(case), *_derivative_methods(case)]
    reasons = {t.reason for t in case.tensors} | {c.reason for c in case.calls}
    if case.failure and case.failure not in reasons:  # else the row or call that holds it says it
        parts.append(Text.assemble(("case: ", "bold red"), case.failure))
    said: set[Optional[str]] = set()  # rows not compared for one reason (a call that hung) say it once
    for tensor in case.wrong:
        if not tensor.compared:
            if tensor.reason in said:
                continue
            said.add(tensor.reason)
            labels = ", ".join(t.label for t in case.wrong if not t.compared and t.reason == tensor.reason)
            parts.append(Text.assemble((f"{labels}: ", "bold red"), tensor.reason or "not checked"))
        else:
            parts.extend(_failure_details(tensor))
        if tensor.wrt is not None:
            parts.extend(render_findings(tensor.label, None, case.diagnoses))
        elif not tensor.reference_gradient:  # where and why belong to the tensor's own row
            parts.extend(render_findings(tensor.name, tensor.location, case.diagnoses))
    parts.extend(_later_calls(case))
    for tensor in case.noted:
        parts.append(Text(f"note: {tensor.label}: {tensor.note}", style="yellow"))
    for warning in case.warnings:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    parts.append(render_verdict(case))
    return Group(*parts)


def render_brief(case: CaseReport) -> RenderableType:
    """--quiet: the verdict, then one line per failing tensor or note, so a failure says why."""
    parts: list[RenderableType] = [render_verdict(case)]
    said: set[Optional[str]] = set()  # rows not compared for one reason say it once
    for tensor in () if case.failure or case.status == "error" else case.wrong:  # the verdict says it
        if not tensor.compared:
            if tensor.reason in said:
                continue
            said.add(tensor.reason)
            labels = ", ".join(t.label for t in case.wrong if not t.compared and t.reason == tensor.reason)
            parts.append(Text(f"  {labels}: {tensor.reason or 'not checked'}"))
            continue
        parts.append(Text(f"  {tensor.label}: {tensor.reason or 'does not match'}"))
        parts.extend(Text(f"    why: {d.message}") for d in case.diagnoses if d.tensor == tensor.label)
    for group in case.distinct_calls:
        parts.append(Text(f"  {_names(group)}: {group[0].reason or 'does not match'}"))
    parts.extend(Text(f"  {clause}") for clause in _repeat_clauses(case.repeats))
    for tensor in case.noted:
        parts.append(Text(f"  note: {tensor.label}: {tensor.note}", style="yellow"))
    return Group(*parts)
