"""Running one case in a child process, so an implementation that hangs or dies cannot take the
gate down with it: after `options.timeout` seconds the child is killed and the case fails with a
reason. `run_case_isolated` has the signature of `run_case` and runs it.

The child is forked (it inherits the implementation under test, even one defined in a test or
loaded from a file, without pickling it) and sends back the finished `CaseReport`, a picklable
frozen dataclass. Progress is forwarded from the child to the caller's progress bar. Where fork is
not available the check runs in this process and the timeout cannot be enforced (a warning says so).
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from dataclasses import replace
from typing import Any, Optional, Union

from convgrad.errors import ConvgradError
from convgrad.geometry import GRADIENT_NAMES, LayerGeometry, TensorName
from convgrad.impl.protocol import Implementation
from convgrad.numerics.gradient import Progress, ProgressFactory
from convgrad.options import CheckOptions
from convgrad.report import CaseReport, TensorComparison
from convgrad.run.case import DEFAULT_CASE_NAME, run_case

__all__ = ["run_case_isolated", "can_isolate"]

_PROGRESS_INTERVAL_S = 0.1  # how often the child reports progress; a message per call is wasteful
_KILL_GRACE_S = 5.0  # how long to wait for a killed child to be reaped
_POLL_SLICE_S = 60.0


def can_isolate() -> bool:
    """Whether checks can run in a forked child (POSIX); elsewhere they run in this process."""
    return "fork" in multiprocessing.get_all_start_methods()


def run_case_isolated(
    geometry: LayerGeometry,
    implementation: Implementation,
    options: CheckOptions,
    *,
    name: Optional[str] = None,
    progress: Optional[ProgressFactory] = None,
) -> CaseReport:
    """`run_case(...)` in a child process that may run at most `options.timeout` seconds.

    A child that runs out of time is killed and the case fails with "timed out after N s"; a child
    that dies (a crash in native code, os._exit) fails the case with how it died. Either way
    every tensor is reported as not checked.
    """
    if not can_isolate():
        report = run_case(geometry, implementation, options, name=name, progress=progress)
        return replace(report, warnings=(*report.warnings, "the timeout is not enforced: this platform cannot fork"))
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    # Not a daemon: a daemonic child could not start processes of its own, and an implementation
    # may need to. The `finally` below kills it whatever happens here.
    child = context.Process(
        target=_run_child, args=(sender, geometry, implementation, options, name, progress is not None)
    )
    start = time.perf_counter()
    child.start()
    sender.close()  # the child holds the only writing end now, so its death closes the pipe
    try:
        outcome = _receive(receiver, child, start + options.timeout, progress)
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(_KILL_GRACE_S)
    if isinstance(outcome, CaseReport):
        return outcome
    if outcome is None:
        reason = (
            f"timed out after {options.timeout:g} s; the implementation may hang, or the layer needs "
            "more time (raise the timeout)"
        )
    else:
        reason = outcome if isinstance(outcome, str) else _how_it_died(child.exitcode)
    return _unfinished_case(geometry, implementation, options, name, reason, time.perf_counter() - start)


def _run_child(
    sender: Any,
    geometry: LayerGeometry,
    implementation: Implementation,
    options: CheckOptions,
    name: Optional[str],
    forward_progress: bool,
) -> None:
    try:
        progress = _ProgressSender(sender) if forward_progress else None
        report = run_case(geometry, implementation, options, name=name, progress=progress)
        sender.send(("report", report))
    except ConvgradError as error:  # the user's input: raised again in the parent (exit 2)
        sender.send(("input error", error))
    except BaseException as error:  # a bug or MemoryError in the check itself: report, never hang
        sender.send(("error", f"the check stopped: {type(error).__name__}: {error}".strip()))
    finally:
        sender.close()


class _ProgressSender:
    """The child's progress factory: forwards (description, total) and batched advances."""

    def __init__(self, sender: Any) -> None:
        self._sender = sender

    def __call__(self, description: str, total: int) -> Progress:
        self._sender.send(("start", description, total))
        pending = 0
        last = time.perf_counter()

        def advance(calls: int) -> None:
            nonlocal pending, last
            pending += calls
            now = time.perf_counter()
            if now - last >= _PROGRESS_INTERVAL_S:
                self._sender.send(("advance", pending))
                pending, last = 0, now

        return advance


def _receive(
    receiver: Any, child: Any, deadline: float, progress: Optional[ProgressFactory]
) -> Union[CaseReport, str, bool, None]:
    """The child's report, an error message, False if it died, or None if the deadline passed."""
    advance = None
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return None
        # In slices: a huge --timeout would overflow poll(), and the deadline is re-read anyway.
        if not receiver.poll(min(remaining, _POLL_SLICE_S)):
            continue
        try:
            message = receiver.recv()
        except (EOFError, OSError):  # the pipe closed without a report: the child died
            child.join(_KILL_GRACE_S)
            return False
        kind = message[0]
        if kind in ("report", "error"):
            outcome: Union[CaseReport, str] = message[1]
            return outcome
        if kind == "input error":
            raise message[1]
        if kind == "start" and progress is not None:
            advance = progress(message[1], message[2])
        elif kind == "advance" and advance is not None:
            advance(message[1])


def _how_it_died(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"the check process was killed by {name}; the implementation crashed (or ran out of memory)"
    return (
        f"the check process exited with code {exitcode} before reporting; the implementation "
        "ended the process (e.g. sys.exit or os._exit)"
    )


def _unfinished_case(
    geometry: LayerGeometry,
    implementation: Implementation,
    options: CheckOptions,
    name: Optional[str],
    reason: str,
    elapsed_s: float,
) -> CaseReport:
    """A failed case whose tensors were not checked, with the reason the check did not finish."""
    rtol = options.tolerances(geometry.dtype).rtol
    names: tuple[TensorName, ...] = (*(("O",) if options.forward_check else ()), *GRADIENT_NAMES)
    return CaseReport.build(
        name=name or DEFAULT_CASE_NAME,
        geometry=geometry,
        implementation=implementation.name,
        options=options,
        tensors=tuple(
            TensorComparison.not_checked(n, geometry, rtol, "not checked: the check did not finish") for n in names
        ),
        elapsed_s=elapsed_s,
        reason=reason,
    )
