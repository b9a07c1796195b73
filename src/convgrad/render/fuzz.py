"""Rich renderables for `convgrad fuzz`: what was checked and covered, the shrunk failure and how
to reproduce it, and the progress line on stderr while it runs.

Reads results only; every number shown was counted by run/fuzz.py. The command line and the
suite case that reproduce a failure are given whole (`Reproduction`): they are printed unwrapped,
so they can be copied, when the console is printed to with `crop=False`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType
from typing import Optional

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from convgrad.geometry import plural
from convgrad.render.fit import Fields
from convgrad.render.progress import DELAY_S, LOG_INTERVAL_S
from convgrad.render.table import render_case
from convgrad.run.fuzz import FuzzFailure, FuzzResult, FuzzStatus

__all__ = ["Reproduction", "render_fuzz", "FuzzProgress", "COVERAGE_ROWS"]

# How the coverage is grouped for people (JSON lists every feature flat).
COVERAGE_ROWS = (
    ("rank", ("1-D", "2-D", "3-D")),
    ("groups", ("groups 1", "groups > 1", "depthwise", "depthwise x2")),
    ("settings", ("batch > 1", "strided", "padded", "dilated", "per-axis values", "stride does not tile")),
    ("kernels", ("rectangular kernel", "1x1 kernel")),
    ("dtype", ("float32",)),
)


@dataclass(frozen=True)
class Reproduction:
    """The shrunk case in the words a user pastes: a `convgrad check` command line (quoted for
    the shell) and a `[[case]]` table for a suite file."""

    command: str
    toml: str


def _header(result: FuzzResult) -> RenderableType:
    o = result.options
    return Group(
        Fields([Text("convgrad fuzz", style="bold"), f"implementation: {result.implementation}"], separator="   "),
        Fields([f"seed {result.seed}", f"budget {o.budget_s:g} s", f"dtype {' and '.join(o.dtypes)}"],
               separator="   ", style="dim"),
        Text(f"checked {plural(result.checked, 'random layer')} in {result.elapsed_s:.1f} s, "
             f"skipped {result.skipped}"),
        *(Text(f"  skipped {count}: {reason}", style="yellow") for reason, count in result.skip_reasons),
    )


def _coverage(result: FuzzResult) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    for label, names in COVERAGE_ROWS:
        grid.add_row(label, Fields([f"{name} {result.coverage.count(name)}" for name in names], separator="   "))
    return Group(Text("covered (layers checked with each feature):"), grid)


def _failure(failure: FuzzFailure, reproduction: Optional[Reproduction]) -> list[RenderableType]:
    first, shrunk = failure.first.geometry, failure.shrunk.geometry
    checked = plural(failure.tries, "simpler layer")
    how = [Text(f"shrunk in {plural(failure.steps, 'step')} ({checked} checked; none simpler fails the same "
                f"way): {shrunk.brief()}")]
    if failure.incomplete is not None:
        how = [Text(f"the simplest failing layer so far, after {plural(failure.steps, 'step')} ({checked} "
                    f"checked): {shrunk.brief()}"),
               Text(f"not known to be minimal: {failure.incomplete}", style="yellow")]
    parts: list[RenderableType] = [
        Text.assemble(("first failure: ", "bold red"), f"layer {failure.found_after}, {first.brief()}"),
        *how,
        Text(),
        render_case(failure.shrunk),
    ]
    if reproduction is not None:
        parts += [
            Text(),
            Text("reproduce it:", style="bold"),
            Text(reproduction.command, no_wrap=True, overflow="ignore"),
            Text("or add it to a suite file (--config):", style="bold"),
            *(Text(line, no_wrap=True, overflow="ignore") for line in reproduction.toml.splitlines()),
        ]
    return parts


def _verdict(result: FuzzResult) -> Text:
    if result.failure is not None:
        failure = result.failure
        stopped = "" if failure.complete else " (not known to be minimal)"  # why: said above
        errs = failure.shrunk.status == "error"  # the layer raised or returned the wrong shape there
        return Text.assemble(
            ("ERROR", "bold magenta") if errs else ("FAIL", "bold red"),
            f": {failure.shrunk.geometry.brief()} {'cannot be checked' if errs else 'fails'}; "
            f"shrunk from random layer {failure.found_after}{stopped}",
        )
    if result.checked == 0:
        why = f"all {result.skipped} layers drawn were skipped" if result.skipped else "the budget ran out first"
        return Text.assemble(("FAIL", "bold red"), f": nothing was checked; {why}")
    return Text.assemble(
        ("PASS", "bold green"),
        f": none of {plural(result.checked, 'random layer')} failed ({result.elapsed_s:.1f} s of a "
        f"{result.options.budget_s:g} s budget)",
    )


def render_fuzz(result: FuzzResult, reproduction: Optional[Reproduction] = None) -> RenderableType:
    """Header, what was checked and skipped, coverage, then the shrunk failure and how to reproduce
    it, then the verdict. Print with `crop=False` so the command line is never cut."""
    parts: list[RenderableType] = [_header(result), _coverage(result)]
    if result.failure is not None:
        parts += [Text(), *_failure(result.failure, reproduction)]
    parts.append(_verdict(result))
    return Group(*parts)


class FuzzProgress:
    """`with FuzzProgress(console, enabled) as progress: fuzz(..., status=progress)`.

    In a terminal, a transient spinner line once the run has taken DELAY_S; elsewhere (a CI log)
    a plain line every LOG_INTERVAL_S seconds. Nothing when disabled (--json).
    """

    def __init__(self, console: Console, enabled: bool) -> None:
        self._console = console
        self._enabled = enabled
        self._started = time.perf_counter()
        self._last_line = self._started
        self._status: Optional[FuzzStatus] = None
        self._spinner = Spinner("dots")
        self._live: Optional[Live] = None
        if enabled and console.is_terminal:
            self._live = Live(console=console, transient=True, get_renderable=self._line, refresh_per_second=8)

    def __enter__(self) -> "FuzzProgress":
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self, kind: Optional[type[BaseException]], error: Optional[BaseException], trace: Optional[TracebackType]
    ) -> None:
        if self._live is not None:
            self._live.stop()

    def __call__(self, status: FuzzStatus) -> None:
        self._status = status
        if not self._enabled or self._live is not None:
            return
        now = time.perf_counter()
        if now - self._last_line >= LOG_INTERVAL_S:
            self._last_line = now
            self._console.print(Text(f"[{now - self._started:.0f} s] {_describe(status)}"), soft_wrap=True)

    def _line(self) -> RenderableType:
        # Called by Live several times a second; blank until the run has taken DELAY_S.
        if self._status is None or time.perf_counter() - self._started < DELAY_S:
            return Text()
        grid = Table.grid(padding=(0, 1))
        grid.add_row(self._spinner, Text(_describe(self._status), no_wrap=True, overflow="ellipsis"))
        return grid


def _describe(status: FuzzStatus) -> str:
    clock = f"{status.elapsed_s:.0f}/{status.budget_s:g} s"
    if status.phase == "searching":
        done = f"searching: {status.checked} checked, {status.skipped} skipped"
    else:
        done = f"shrinking: {plural(status.steps, 'step')}, {status.tries} tried"
    return f"fuzz {clock}, {done}; now {status.geometry.brief()}"
