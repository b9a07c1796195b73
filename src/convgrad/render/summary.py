"""Rich renderables for a run of several cases: the cases grouped by cause, a summary table, the
totals line, a skipped case.

Reads reports only; every number shown was computed by the checker.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from convgrad.render.fit import Fields
from convgrad.render.table import STATUS_TEXT, format_error
from convgrad.report import CaseGroup, CaseReport, Status, SuiteReport

__all__ = ["render_summary", "render_totals", "render_domain", "render_skipped", "render_groups"]


def _verdict(case: CaseReport) -> Text:
    return Text(*STATUS_TEXT[case.status])


def render_summary(suite: SuiteReport) -> RenderableType:
    """One row per case (name, geometry, verdict, worst tensor, its error), then each reason."""
    table = Table(
        box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, header_style="bold", pad_edge=False,
        caption="N batch, s stride, p padding, d dilation, g groups", caption_style="dim",
    )
    table.add_column("case")
    table.add_column("geometry")  # wraps between its fields only (each shape or setting is one word)
    table.add_column("verdict", no_wrap=True)
    table.add_column("worst", no_wrap=True)
    table.add_column("rel err", justify="right", no_wrap=True)
    reasons: list[RenderableType] = []
    for case in suite.cases:
        worst = case.worst_tensor
        table.add_row(
            case.name,
            case.geometry.brief(),
            _verdict(case),
            worst.name if worst is not None else "-",
            format_error(worst.max_rel_error) if worst is not None else "-",
        )
        reason = case.failure_summary  # the why: each wrong tensor and its diagnosis
        if reason:
            reasons.append(Text.assemble(_verdict(case), f" {case.name}: {reason}"))
    return Group(table, *reasons)


# How the totals line names each status that is not a pass, in order of precedence.
_NOT_PASSED: tuple[tuple[Status, str], ...] = (
    ("failed", "failed"),
    ("lost precision", "lost precision (LOST BITS)"),
    ("not checked", "were not checked (NOT CHECKED)"),
    ("error", "could not be checked (ERROR)"),
)


def render_totals(suite: SuiteReport) -> Text:
    """'PASS: 12 of 14 cases passed, 2 skipped (...)' or 'FAIL: 1 of 14 cases failed, 1 lost
    precision (LOST BITS), 12 passed': every status counted as the JSON summary counts it."""
    passed, skipped = suite.count("passed"), suite.count("skipped")
    total = len(suite.cases)
    skip_note = f", {skipped} skipped (not checked, and not counted as passed)" if skipped else ""
    if suite.not_run:
        skip_note += f"; stopped at the first failure (--fail-fast): {suite.not_run} more not run"
    counted = [(suite.count(status), words) for status, words in _NOT_PASSED if suite.count(status)]
    if counted:
        (first, words), *rest = counted
        others = "".join(f", {n} {w}" for n, w in rest)
        return Text.assemble(
            ("FAIL", "bold red"), f": {first} of {total} cases {words}{others}, {passed} passed{skip_note}"
        )
    if not passed:
        return Text.assemble(("FAIL", "bold red"), f": nothing was checked; all {total} cases were skipped")
    return Text.assemble(STATUS_TEXT["passed"], f": {passed} of {total} cases passed{skip_note}")


def render_domain(suite: SuiteReport) -> Optional[Text]:
    """How the pairs of settings within the layer's own domain were covered, or None."""
    domain = suite.domain
    if domain is None:
        return None
    if domain.pairs == 0:
        return Text("pairs of settings: the layer runs none of the small 2-D cases, so none are counted", style="yellow")
    added = f", {domain.added} of them added for the layer's domain (domain 1 to {domain.added})" if domain.added else ""
    refused = f"; {domain.refused} more turned down at run time" if domain.refused else ""
    text = (
        f"pairs of settings within the layer's own domain: {domain.covered} of {domain.pairs} covered by "
        f"{domain.cases} 2-D cases{added}{refused}"
    )
    return Text(text, style="dim" if domain.complete else "yellow")


def render_skipped(case: CaseReport) -> RenderableType:
    return Group(
        Fields([Text(case.name, style="bold"), f"implementation: {case.implementation}"], separator="   "),
        Fields(case.geometry.describe_fields()),
        Text.assemble(STATUS_TEXT["skipped"], f": {case.skipped}"),
    )


_NUMBERED = re.compile(r"^(.*?) (\d+)(\b.*)$")  # "pairs 3", "sizes 4: 7x7 stem"


def _numbered(name: str) -> tuple[str, str, str]:
    """("pairs", "3", "") for "pairs 3", ("sizes", "4", ": 7x7 stem") for "sizes 4: 7x7 stem";
    ("", "", name) for a name without a number."""
    match = _NUMBERED.match(name)
    return (match.group(1), match.group(2), match.group(3)) if match is not None else ("", "", name)


def case_names(cases: Sequence[CaseReport]) -> str:
    """The cases' names, a numbered one after another of its kind without the kind: "basic 1, 2;
    pairs 3, 5; 1-D dilated, float32" (a comma only between bare numbers of one kind, as names
    may hold commas)."""
    text, previous = "", ("", "", "")
    for case in cases:
        kind, number, rest = _numbered(case.name)
        same_kind = bool(kind) and kind == previous[0]
        if not text:
            text = case.name
        elif same_kind and not rest and not previous[2]:
            text += ", " + number
        else:
            text += "; " + (number + rest if same_kind else case.name)
        previous = (kind, number, rest)
    return text


def _group_row(group: CaseGroup, shown: set[str]) -> tuple[Text, Text, Text, Text]:
    count = len(group.cases)
    what = Text(group.cause)
    if not group.alike:  # the cause shown is the first case's, with its own shapes and settings
        what.append(f" (as in {group.first.name}; the others with their own sizes and settings)", style="dim")
    names = case_names(group.cases)
    if group.first.name in shown:
        names += " (in full above)" if count == 1 else f" ({group.first.name} in full above)"
    if what.plain:
        what.append("\n")
    what.append(names, style="dim")
    return Text(*STATUS_TEXT[group.status]), Text(str(count)), Text("case" if count == 1 else "cases"), what


def render_groups(suite: SuiteReport, shown: Sequence[CaseReport] = ()) -> RenderableType:
    """One row per status and cause: how many cases, the cause in words, which cases; `shown`
    are the cases printed in full above."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True, justify="right")
    grid.add_column(no_wrap=True)
    grid.add_column()
    names = {case.name for case in shown}
    for group in suite.groups:
        grid.add_row(*_group_row(group, names))
    return grid
