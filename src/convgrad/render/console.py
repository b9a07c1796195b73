"""The rich consoles convgrad prints to, built from parameters so tests can fix width and colour."""

from __future__ import annotations

import io
import os
from typing import IO, Optional

from rich.console import Console

__all__ = ["make_console", "discard_rest"]


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


class _Console(Console):
    """A Console that keeps going, silently, when its reader closes the pipe."""

    def on_broken_pipe(self) -> None:
        # Not `quiet`, as rich does: what follows must still be recorded for --svg.
        discard_rest(self.file)


def make_console(
    *, stderr: bool = False, file: Optional[IO[str]] = None, width: Optional[int] = None, record: bool = False
) -> Console:
    """A rich Console; rich honours NO_COLOR and writes no colour codes into pipes.

    `record` keeps what was printed so --svg can save it.
    """
    return _Console(stderr=stderr, file=file, width=width, highlight=False, soft_wrap=False, record=record)
