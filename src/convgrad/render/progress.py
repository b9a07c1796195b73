"""A progress bar on stderr that appears only once a check has run for about a second."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from convgrad.numerics.gradient import Progress as Advance

__all__ = ["DelayedProgress"]


class DelayedProgress:
    """Use as `with DelayedProgress(console, enabled) as progress: check_layer(..., progress=progress)`.

    Short checks never show a bar, so fast output stays clean; disabled when stderr is not a
    terminal, or for --json and --quiet.
    """

    def __init__(self, console: Console, enabled: bool, delay_s: float = 1.0) -> None:
        self._enabled = enabled and console.is_terminal
        self._delay_s = delay_s
        self._started = time.perf_counter()  # one delay for the whole check, not one per task
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
            if task is None:
                if time.perf_counter() - started < self._delay_s:
                    return
                if not bar.live.is_started:
                    bar.start()
                task = bar.add_task(description, total=total, completed=done)
            else:
                bar.update(task, completed=done)

        return advance
