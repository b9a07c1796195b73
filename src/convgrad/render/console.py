"""The rich consoles convgrad prints to, built from parameters so tests can fix width and colour."""

from __future__ import annotations

import io
import os
import re
from typing import IO, Iterable, Optional

from rich.console import Console
from rich.segment import Segment

__all__ = ["make_console", "discard_rest", "strip_line_ends"]


def discard_rest(stream: IO[str]) -> None:
    """The reader of `stream` went away (`convgrad check | head -1`): send the rest to /dev/null.

    A reader that stops early is not a failure of the check, so the command goes on and exits
    with the check's own code instead of rich's and click's exit 1 (or Python's complaint when it
    flushes a closed pipe at exit).
    """
    try:
        descriptor = stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (a test's buffer)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)


# Spaces (and tabs) at the end of a line, with any colour codes after them: rich pads table cells
# and wrapped text to the full width, which leaves every such line ending in spaces.
_LINE_END = re.compile(r"(?:[ \t]|\x1b\[[0-9;]*m)+$", re.MULTILINE)
_COLOUR_CODE = re.compile(r"\x1b\[[0-9;]*m")


def strip_line_ends(text: str) -> str:
    """`text` without spaces at the end of any line (a line of only spaces becomes empty); the
    colour codes among them are kept, so styles still end where they did."""
    return _LINE_END.sub(lambda end: "".join(_COLOUR_CODE.findall(end.group())), text)


class _Console(Console):
    """A Console that keeps going, silently, when its reader closes the pipe, and never ends a
    line in spaces (piped or not)."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        return strip_line_ends(super()._render_buffer(buffer))

    def on_broken_pipe(self) -> None:
        # Not `quiet`, as rich does: what follows must still be recorded for --svg.
        discard_rest(self.file)


def make_console(
    *, stderr: bool = False, file: Optional[IO[str]] = None, width: Optional[int] = None, record: bool = False
) -> Console:
    """A rich Console; rich honours NO_COLOR and writes no colour codes into pipes.

    `record` keeps what was printed so --svg can save it. No markup: text is printed as it is, so
    a user's `[bold]` or `[/x]` in a case or layer name is shown, not read as a style.
    """
    return _Console(stderr=stderr, file=file, width=width, highlight=False, markup=False, soft_wrap=False,
                    record=record)
