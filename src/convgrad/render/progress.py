"""Progress on stderr: a bar in a terminal once a check has run for about a second, and plain
lines every few seconds elsewhere (a CI log), so a long check is never silent."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.text import Text

from convgrad.numerics.gradient import Progress as Advance

__all__ = ["DelayedProgress", "DELAY_S", "LOG_INTERVAL_S"]

DELAY_S = 1.0  # a check shorter than this shows no bar: fast output stays clean
LOG_INTERVAL_S = 5.0  # outside a terminal, a line this often: enough for a log, not a flood


class DelayedProgress:
    """Use as `with DelayedProgress(console, enabled) as progress: run_suite(..., progress)`.

    In a terminal, a transient bar; when the console is not a terminal, a plain line such as
    `[10 s] convgrad check: dX coloured 40/71 forward calls` every LOG_INTERVAL_S seconds. Nothing at all
    when disabled (--json, --quiet).
    """

    def __init__(self, console: Console, enabled: bool) -> None:
        self._console = console
        self._enabled = enabled
        self._terminal = console.is_terminal
        self._started = time.perf_counter()  # one delay for the whole check, not one per task
        self._last_line = self._started
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("forward calls"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )

    def __enter__(self) -> "DelayedProgress":
        return self

    def __exit__(
        self,
        kind: Optional[type[BaseException]],
        error: Optional[BaseException],
        trace: Optional[TracebackType],
    ) -> None:
        if self._bar.live.is_started:
            self._bar.stop()

    def _log(self, description: str, done: int, total: int) -> None:
        """One plain line, if LOG_INTERVAL_S has passed since the last one (or since the start)."""
        now = time.perf_counter()
        if now - self._last_line < LOG_INTERVAL_S:
            return
        self._last_line = now
        line = f"[{now - self._started:.0f} s] {description} {done}/{total} forward calls"
        self._console.print(Text(line), soft_wrap=True)  # one line whatever the log's width

    def __call__(self, description: str, total: int) -> Advance:
        """Start a task of `total` forward calls; returns the callback that advances it."""
        started = self._started
        bar = self._bar
        task: Optional[TaskID] = None
        done = 0

        def advance(calls: int) -> None:
            nonlocal task, done
            done += calls
            if not self._enabled:
                return
            if not self._terminal:
                self._log(description, done, total)
                return
            if task is None:
                if time.perf_counter() - started < DELAY_S:
                    return
                if not bar.live.is_started:
                    bar.start()
                task = bar.add_task(description, total=total, completed=done)
            else:
                bar.update(task, completed=done)

        return advance
