"""Rich renderables for a run of several cases: a summary table, the totals line, a skipped case.

Reads reports only; every number shown was computed by the checker.
"""

from __future__ import annotations

from typing import Optional

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from convgrad.render.fit import Fields
from convgrad.render.table import STATUS_TEXT, format_error
from convgrad.report import CaseReport, SuiteReport

__all__ = ["render_summary", "render_totals", "render_domain", "render_skipped"]


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


def render_totals(suite: SuiteReport) -> Text:
    """'PASS: 12 cases passed, 2 skipped (not checked)' or 'FAIL: 1 of 14 cases failed ...'."""
    passed, failed, errors, skipped = (suite.count(s) for s in ("passed", "failed", "error", "skipped"))
    total = len(suite.cases)
    skip_note = f", {skipped} skipped (not checked, and not counted as passed)" if skipped else ""
    if suite.not_run:
        skip_note += f"; stopped at the first failure (--fail-fast): {suite.not_run} more not run"
    unchecked = "could not be checked (ERROR)"
    if failed:
        errored = f", {errors} {unchecked}" if errors else ""
        return Text.assemble(
            ("FAIL", "bold red"), f": {failed} of {total} cases failed{errored}, {passed} passed{skip_note}"
        )
    if errors:
        return Text.assemble(("FAIL", "bold red"), f": {errors} of {total} cases {unchecked}, {passed} passed{skip_note}")
    if not passed:
        return Text.assemble(("FAIL", "bold red"), f": nothing was checked; all {total} cases were skipped")
    return Text.assemble(("PASS", "bold green"), f": {passed} of {total} cases passed{skip_note}")


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
        Text.assemble(("SKIP", "bold yellow"), f": {case.skipped}"),
    )
