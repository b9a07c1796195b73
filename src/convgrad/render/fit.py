"""Fitting output to the terminal's width without cutting a shape or a setting in two.

rich wraps text at spaces and folds table cells anywhere, so at 80 columns `12x16x10x10x10` could
become `12x16x10x1` / `0`. Here a line breaks only between whole fields, and a table drops its
least needed columns until it fits.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence, Union

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

__all__ = ["Fields", "FittingTable"]


class Fields:
    """Fields such as `stride 2` or `rtol 1e-08`, joined by `separator` and broken only between
    fields: each line holds as many whole fields as fit."""

    def __init__(self, fields: Iterable[Union[str, Text]], separator: str = "  ", style: str = "") -> None:
        self._fields = [field if isinstance(field, Text) else Text(field) for field in fields]
        self._separator = separator
        self._style = style

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        line = Text(style=self._style)
        for field in self._fields:
            if line and line.cell_len + len(self._separator) + field.cell_len > options.max_width:
                yield line
                line = Text(style=self._style)
            if line:
                line.append(self._separator)
            line.append_text(field)
        yield line

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((field.cell_len for field in self._fields), default=0)
        joined = sum(field.cell_len for field in self._fields) + len(self._separator) * max(len(self._fields) - 1, 0)
        return Measurement(widest, joined)


class FittingTable:
    """The table `build(dropped)` makes with the fewest of `optional` columns dropped, in that
    order, that fits the width. Cells should not wrap (no_wrap), so a too-wide table shows as too
    wide instead of folding a shape; when even dropping them all is not enough, the narrowest table
    is shown and its cells fold (`build` gets `fold=True`)."""

    def __init__(self, build: Callable[[frozenset[str], bool], Table], optional: Sequence[str]) -> None:
        self._build = build
        self._optional = optional

    def _fitting(self, console: Console, options: ConsoleOptions) -> Table:
        dropped: set[str] = set()
        for name in (None, *self._optional):
            if name is not None:
                dropped.add(name)
            table = self._build(frozenset(dropped), False)
            if table.__rich_measure__(console, options).minimum <= options.max_width:
                return table
        return self._build(frozenset(dropped), True)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self._fitting(console, options)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return self._fitting(console, options).__rich_measure__(console, options)
