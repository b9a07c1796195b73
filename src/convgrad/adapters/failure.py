"""What a layer under test that misbehaves at run time becomes: an `ImplementationFailure` with a
one-line reason, and `describe_exception`, the one line of an exception the layer raised.

Beside the protocol (protocol.py: `Unsupported`, a case the layer cannot express) because every
stage that calls the layer raises or catches it: the adapters and frameworks that call it, the
numerical differences that call its forward, the guard (harness/guard.py) and run/.
"""

from __future__ import annotations

import os
import sysconfig
import traceback
from typing import Literal, Optional

__all__ = ["ImplementationFailure", "describe_exception"]

# convgrad's own frames (adapters, frameworks, harness, ...) are never where a layer went wrong.
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIBRARY_DIRS = tuple(
    os.path.abspath(p)
    for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
)


class ImplementationFailure(Exception):
    """The implementation under test misbehaved; str(self) is the one-line reason.

    `shape` is the shape of what it returned, when it returned an array at all. `status` says
    what it means for the check: "error" when the implementation could not be checked (it raised,
    or returned something that is not an array of the expected shape), "failed" when it ran and
    what it did is wrong in itself (NaN or Inf values, writing into its inputs).
    """

    def __init__(
        self, reason: str, shape: tuple[int, ...] | None = None, *, status: Literal["error", "failed"] = "error"
    ) -> None:
        super().__init__(reason)
        self.shape = shape
        self.status: Literal["error", "failed"] = status
        self.batch: Optional[int] = None  # the batch size of the call, set where it was not the case's


def describe_exception(error: BaseException) -> str:
    """'ValueError: bad thing (layer.py:42)': type, message and the line in the user's code."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = type(error).__name__ + (f": {message}" if message else "")
    frames = traceback.extract_tb(error.__traceback__)
    outside = [
        f for f in frames
        if not os.path.abspath(f.filename).startswith(_PACKAGE_DIR + os.sep) and not f.filename.startswith("<")
    ]
    theirs = [  # compiled code (numpy's "_common.pyx") names no file of the user's either
        f for f in outside
        if f.filename.endswith(".py") and not os.path.abspath(f.filename).startswith(_LIBRARY_DIRS)
    ]
    chosen = theirs or outside
    if chosen:
        frame = chosen[-1]
        text += f" (at {os.path.basename(frame.filename)}:{frame.lineno})"
    return text
