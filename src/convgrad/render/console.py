"""The rich consoles convgrad prints to, built from parameters so tests can fix width and colour."""

from __future__ import annotations

from typing import IO, Optional

from rich.console import Console

__all__ = ["make_console"]


def make_console(
    *, stderr: bool = False, file: Optional[IO[str]] = None, width: Optional[int] = None, record: bool = False
) -> Console:
    """A rich Console; rich honours NO_COLOR and writes no colour codes into pipes.

    `record` keeps what was printed so --svg can save it.
    """
    return Console(stderr=stderr, file=file, width=width, highlight=False, soft_wrap=False, record=record)
