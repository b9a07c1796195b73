"""Running one check in a child process, so an implementation that hangs or dies cannot take the
gate down with it: after `timeout` seconds the child is killed and the case fails with a reason.

The child is forked (it inherits the implementation under test, even one defined in a test or
loaded from a file, without pickling it) and sends back the finished `CaseReport`, a picklable
frozen dataclass. Progress is forwarded from the child to the caller's progress bar. Where fork is
not available the check runs in this process and the timeout cannot be enforced (a warning says so).
"""

from __future__ import annotations

import math
import multiprocessing
import signal
import time
from dataclasses import replace
from typing import Any

from convgrad.checker import ProgressFactory, _not_checked, check_layer
from convgrad.errors import ConvgradError, SettingError
from convgrad.geometry import LayerGeometry
from convgrad.implementation import GRADIENT_NAMES, ReferenceLayer
from convgrad.report import CaseReport
from convgrad.tolerances import Tolerances, tolerances_for

__all__ = ["DEFAULT_TIMEOUT_S", "check_layer_isolated", "validate_timeout", "can_isolate"]

DEFAULT_TIMEOUT_S = 600.0  # ten minutes: far above any layer a dense check finishes, short for CI
_PROGRESS_INTERVAL_S = 0.1  # how often the child reports progress; a message per call is wasteful
_KILL_GRACE_S = 5.0  # how long to wait for a killed child to be reaped
_POLL_SLICE_S = 60.0


def validate_timeout(timeout: float) -> float:
    """The timeout in seconds, or SettingError naming the fix."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise SettingError(
            f"--timeout {timeout!r} must be a number of seconds greater than 0, "
            f"like {DEFAULT_TIMEOUT_S:g}"
        )
    return float(timeout)


def can_isolate() -> bool:
    """Whether checks can run in a forked child (POSIX); elsewhere they run in this process."""
    return "fork" in multiprocessing.get_all_start_methods()


def check_layer_isolated(
    geometry: LayerGeometry,
    layer: Any = None,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    progress: ProgressFactory | None = None,
    **options: Any,
) -> CaseReport:
    """`check_layer(geometry, layer, progress=progress, **options)` in a child, at most `timeout` s.

    A child that runs out of time is killed and the case fails with "timed out after N s"; a child
    that dies (a crash in native code, os._exit) fails the case with how it died. Either way
    every tensor is reported as not checked.
    """
    timeout = validate_timeout(timeout)
    if not can_isolate():
        report = check_layer(geometry, layer, progress=progress, **options)
        return replace(report, warnings=(*report.warnings, "--timeout is not enforced: this platform cannot fork"))
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    # Not a daemon: a daemonic child could not start processes of its own, and an implementation
    # may need to. The `finally` below kills it whatever happens here.
    child = context.Process(target=_run_child, args=(sender, geometry, layer, options, progress is not None))
    start = time.perf_counter()
    child.start()
    sender.close()  # the child holds the only writing end now, so its death closes the pipe
    try:
        outcome = _receive(receiver, child, start + timeout, progress)
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(_KILL_GRACE_S)
    if isinstance(outcome, CaseReport):
        return outcome
    if outcome is None:
        reason = (
            f"timed out after {timeout:g} s; the implementation may hang, or the layer needs more "
            "time (raise --timeout)"
        )
    else:
        reason = outcome if isinstance(outcome, str) else _how_it_died(child.exitcode)
    return _unfinished_case(geometry, layer, reason, time.perf_counter() - start, options)


def _run_child(sender: Any, geometry: LayerGeometry, layer: Any, options: dict[str, Any], forward_progress: bool) -> None:
    try:
        progress = _ProgressSender(sender) if forward_progress else None
        report = check_layer(geometry, layer, progress=progress, **options)
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

    def __call__(self, description: str, total: int) -> Any:
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


def _receive(receiver: Any, child: Any, deadline: float, progress: ProgressFactory | None) -> Any:
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
        if kind == "report":
            return message[1]
        if kind == "error":
            return message[1]
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
    geometry: LayerGeometry, layer: Any, reason: str, elapsed_s: float, options: dict[str, Any]
) -> CaseReport:
    """A failed case whose tensors were not checked, with the reason the check did not finish."""
    tolerances: Tolerances = options.get("tolerances") or tolerances_for(geometry.dtype)
    layer = ReferenceLayer() if layer is None else layer
    expected = {"O": geometry.y_shape, "dX": geometry.x_shape, "dK": geometry.w_shape, "db": geometry.b_shape}
    forward_check = options.get("forward_check", True)
    method = options.get("method", "auto")
    return CaseReport(
        name=options.get("name") or "convgrad check",
        geometry=geometry,
        implementation=options.get("implementation_name") or getattr(layer, "name", type(layer).__name__),
        seed=options.get("seed", 0),
        tolerances=tolerances,
        tensors=tuple(
            _not_checked(n, expected[n], tolerances.rtol, "not checked: the check did not finish")
            for n in (("O",) if forward_check else ()) + GRADIENT_NAMES
        ),
        elapsed_s=elapsed_s,
        forward_calls=0,
        reason=reason,
        method=method,
        samples=options.get("samples") if method in ("sample", "projection") else None,
        forward_check=forward_check,
    )
